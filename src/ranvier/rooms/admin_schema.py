"""Tables of room administration (rooms/admin.py): rooms blocked by a server admin."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "room_admin",
    (
        Migration(
            1,
            "rooms blocked by a server admin (no joins, invites or knocks)",
            """
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    blocked_ts BIGINT NOT NULL
);
""",
        ),
    ),
)
