"""Tables owned by the relations service: the thread list of each room."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "relations",
    (
        Migration(
            1,
            "threads: each root with its latest reply (listed newest first) and who took part",
            """
CREATE TABLE threads (
    root_event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    latest_event_id TEXT NOT NULL,
    latest_stream BIGINT NOT NULL
);
CREATE INDEX threads_by_room ON threads (room_id, latest_stream);
CREATE TABLE thread_participants (
    root_event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (root_event_id, user_id)
);
""",
        ),
    ),
)
