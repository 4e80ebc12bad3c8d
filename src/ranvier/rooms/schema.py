"""Tables owned by the room server: rooms, events, state groups, memberships."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "rooms",
    (
        Migration(
            1,
            "rooms, events, state groups, current state, memberships, aliases",
            """
CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0,
    room_type TEXT,
    current_state_group BIGINT NOT NULL,
    last_event_id TEXT NOT NULL,
    last_depth BIGINT NOT NULL
);
CREATE TABLE events (
    stream_ordering BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    state_group_before BIGINT NOT NULL,
    history_visibility TEXT NOT NULL,
    contains_url INTEGER NOT NULL,
    relates_to TEXT,
    rel_type TEXT,
    replaces_state TEXT,
    redacted_by TEXT,
    txn_device TEXT,
    txn_id TEXT,
    json TEXT NOT NULL
);
CREATE INDEX events_by_room ON events (room_id, depth, stream_ordering);
CREATE INDEX events_by_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_by_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_by_relation ON events (relates_to, rel_type);
CREATE UNIQUE INDEX events_by_txn ON events (room_id, sender, txn_device, txn_id);
CREATE TABLE state_groups (
    state_group BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT,
    chain_length INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    state_group BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (state_group, type, state_key)
);
CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE TABLE memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    forgotten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id, membership);
CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);
CREATE TABLE membership_history (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    membership TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id, stream_ordering)
);
CREATE INDEX membership_history_by_user ON membership_history (user_id, stream_ordering);
""",
        ),
    ),
)
