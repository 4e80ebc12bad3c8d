"""Tables of account moderation by server admins (users/moderation.py)."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "moderation",
    (
        Migration(
            1,
            "shadow-banned accounts and per-user rate limit overrides",
            """
CREATE TABLE shadow_banned_users (
    user_id TEXT PRIMARY KEY,
    banned_ts BIGINT NOT NULL
);
CREATE TABLE ratelimit_overrides (
    user_id TEXT PRIMARY KEY,
    messages_per_second INTEGER NOT NULL,
    burst_count INTEGER NOT NULL
);
""",
        ),
    ),
)
