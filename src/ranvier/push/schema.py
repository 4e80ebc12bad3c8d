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
        Migration(
            3,
            "one row per notifying event for the whole room; per-member rows only where a member "
            "differs; the actions of each; pushers",
            """
CREATE TABLE push_notifications (
    stream_ordering BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    notify INTEGER NOT NULL,
    highlight INTEGER NOT NULL,
    actions TEXT NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX push_notifications_by_room ON push_notifications (room_id, stream_ordering);
CREATE INDEX push_notifications_threads ON push_notifications (room_id, stream_ordering)
    WHERE thread_id <> 'main';
ALTER TABLE event_push_actions ADD COLUMN actions TEXT;
ALTER TABLE event_push_actions ADD COLUMN ts BIGINT;
CREATE INDEX event_push_actions_by_user ON event_push_actions (user_id, stream_ordering);
CREATE TABLE pushers (
    pusher_id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (user_id, app_id, pushkey)
);
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
""",
        ),
    ),
)
