"""Tables of the draft API: what the 2014 draft records that today's model has no place for."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "legacy_api",
    (
        Migration(
            1,
            "message IDs chosen by draft clients, delivery and read feedback, draft presence states, presence lists",
            """
CREATE TABLE legacy_messages (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    msg_id TEXT NOT NULL
);
CREATE UNIQUE INDEX legacy_messages_by_msg_id ON legacy_messages (room_id, sender, msg_id);
CREATE TABLE legacy_feedback (
    stream_id BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    message_stream BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    feedback TEXT NOT NULL,
    sender_ts BIGINT,
    hs_ts BIGINT NOT NULL
);
CREATE UNIQUE INDEX legacy_feedback_once ON legacy_feedback (event_id, user_id, feedback);
CREATE INDEX legacy_feedback_by_room ON legacy_feedback (room_id, stream_id);
CREATE TABLE legacy_presence_states (
    user_id TEXT PRIMARY KEY,
    state INTEGER NOT NULL,
    presence_stream BIGINT NOT NULL
);
CREATE TABLE legacy_presence_lists (
    user_id TEXT NOT NULL,
    observed TEXT NOT NULL,
    PRIMARY KEY (user_id, observed)
);
""",
        ),
    ),
)
