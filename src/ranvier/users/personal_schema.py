"""Tables of the personal data a user keeps on their server: extended profile fields,
account data, presence and the user directory's view of public rooms.

Each area is its own component so it can migrate on its own.
"""

from ranvier.storage.migrations import Migration, Schema

PROFILE_FIELDS_SCHEMA = Schema(
    "profile_fields",
    (
        Migration(
            1,
            "extended profile fields besides displayname and avatar_url",
            """
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
);
""",
        ),
    ),
)

ACCOUNT_DATA_SCHEMA = Schema(
    "account_data",
    (
        Migration(
            1,
            "global and per-room account data, one row per (user, room, type)",
            """
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_stream ON account_data (user_id, stream_id);
""",
        ),
    ),
)

PRESENCE_SCHEMA = Schema(
    "presence",
    (
        Migration(
            1,
            "the stored presence of each user",
            """
CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts BIGINT NOT NULL,
    last_seen_ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL
);
CREATE INDEX presence_by_stream ON presence (stream_id);
""",
        ),
    ),
)

DIRECTORY_SCHEMA = Schema(
    "user_directory",
    (
        Migration(
            1,
            "rooms whose join rule is public, kept in step with their m.room.join_rules events",
            """
CREATE TABLE directory_public_rooms (
    room_id TEXT PRIMARY KEY
);
""",
        ),
    ),
)
