"""Tables owned by the room server: rooms, events, the room graph, state groups, memberships,
aliases and the room directories."""

from ranvier.storage.engine import Transaction, split_statements
from ranvier.storage.migrations import Migration, Schema

_GRAPH = """
ALTER TABLE events ADD COLUMN state_group_after BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN outlier INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN backfilled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN soft_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN rejected_reason TEXT;
UPDATE events SET state_group_after = state_group_before WHERE state_key IS NULL;
UPDATE events SET state_group_after = COALESCE(
    (SELECT n.state_group_before FROM events n WHERE n.room_id = events.room_id
     AND n.stream_ordering > events.stream_ordering ORDER BY n.stream_ordering LIMIT 1),
    (SELECT r.current_state_group FROM rooms r WHERE r.room_id = events.room_id))
WHERE state_key IS NOT NULL;
CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);
ALTER TABLE rooms ADD COLUMN forward_extremities TEXT NOT NULL DEFAULT '[]';
UPDATE rooms SET forward_extremities = '["' || last_event_id || '"]';
CREATE TABLE backward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    depth BIGINT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);
CREATE TABLE current_state_deltas (
    stream_ordering BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,
    PRIMARY KEY (room_id, stream_ordering, type, state_key)
);
INSERT INTO current_state_deltas (stream_ordering, room_id, type, state_key, event_id)
SELECT stream_ordering, room_id, type, state_key, event_id FROM events WHERE state_key IS NOT NULL;
ALTER TABLE rooms DROP COLUMN last_event_id;
ALTER TABLE rooms DROP COLUMN last_depth;
"""
# prev_events and auth_events are IDs, or [ID, hashes] pairs in versions 1 and 2; auth
# edges are kept for state events, the only ones auth chains pass through. Each engine
# reads JSON its own way.
_GRAPH_EDGES = {"sqlite": """
INSERT INTO event_edges (event_id, prev_event_id, room_id)
SELECT e.event_id, CASE j.type WHEN 'array' THEN json_extract(j.value, '$[0]') ELSE j.value END, e.room_id
FROM events e, json_each(e.json, '$.prev_events') j WHERE true ON CONFLICT DO NOTHING;
INSERT INTO event_auth (event_id, auth_id, room_id)
SELECT e.event_id, CASE j.type WHEN 'array' THEN json_extract(j.value, '$[0]') ELSE j.value END, e.room_id
FROM events e, json_each(e.json, '$.auth_events') j WHERE e.state_key IS NOT NULL ON CONFLICT DO NOTHING;
""", "postgresql": """
INSERT INTO event_edges (event_id, prev_event_id, room_id)
SELECT e.event_id, CASE jsonb_typeof(j.value) WHEN 'array' THEN j.value ->> 0 ELSE j.value #>> '{}' END, e.room_id
FROM events e CROSS JOIN LATERAL jsonb_array_elements(e.json::jsonb -> 'prev_events') j ON CONFLICT DO NOTHING;
INSERT INTO event_auth (event_id, auth_id, room_id)
SELECT e.event_id, CASE jsonb_typeof(j.value) WHEN 'array' THEN j.value ->> 0 ELSE j.value #>> '{}' END, e.room_id
FROM events e CROSS JOIN LATERAL jsonb_array_elements(e.json::jsonb -> 'auth_events') j
WHERE e.state_key IS NOT NULL ON CONFLICT DO NOTHING;
"""}


async def _fill_graph_edges(txn: Transaction, dialect: str) -> None:
    """The edges of the rooms stored before the graph, read from their events' JSON."""
    for statement in split_statements(_GRAPH_EDGES[dialect]):
        await txn.execute(statement)


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
        Migration(
            2,
            "the room graph: prev and auth edges, forward and backward extremities, outliers, "
            "backfilled, soft-failed and rejected events, the state after each event, current state deltas",
            _GRAPH,
            fill=_fill_graph_edges,
        ),
        Migration(
            3,
            "the room directories of application services' networks",
            """
CREATE TABLE appservice_room_list (
    appservice_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (appservice_id, network_id, room_id)
);
CREATE INDEX appservice_room_list_by_room ON appservice_room_list (room_id);
""",
        ),
    ),
)
