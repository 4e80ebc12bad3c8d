"""Tables owned by the push service."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "push",
    (
        Migration(
            1,
            "push actions of each event for each member, read positions per room and thread",
            """
CREATE TABLE event_push_actions (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    notify INTEGER NOT NULL,
    highlight INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id, stream_ordering)
);
CREATE TABLE push_read_positions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);
""",
        ),
        Migration(
            2,
            "thread actions indexed apart, so counting a thread scans only threads",
            """
CREATE INDEX event_push_actions_threads ON event_push_actions (user_id, room_id, stream_ordering)
    WHERE thread_id <> 'main';
""",
        ),
    ),
)
