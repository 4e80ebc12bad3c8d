"""Tables of account erasure (POST /account/deactivate with `erase: true`)."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "erasure",
    (
        Migration(
            1,
            "accounts whose events are served redacted to those who joined after them",
            """
CREATE TABLE erased_users (
    user_id TEXT PRIMARY KEY,
    erased_ts BIGINT NOT NULL
);
""",
        ),
    ),
)
