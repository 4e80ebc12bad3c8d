"""The statements that write a batch of events: the events rows with their edges, state
groups, and the move of the room's head (extremities, current state, memberships)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ranvier.events.model import MEMBER, Event
from ranvier.storage.engine import Statement

if TYPE_CHECKING:
    from ranvier.rooms.store import HeadChange, NewRoom, NewStateGroup, PersistedEvent


def in_clause(count: int) -> str:
    """The placeholders of an `IN (...)` list."""
    return ", ".join("?" * count)


def new_room_statement(room: NewRoom, state_group: int, *, if_absent: bool = False) -> Statement:
    return Statement(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts, is_public, room_type, current_state_group) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)" + (" ON CONFLICT (room_id) DO NOTHING" if if_absent else
                                          " ON CONFLICT (room_id) DO UPDATE SET creator = excluded.creator, "
                                          "created_ts = excluded.created_ts, room_type = excluded.room_type"),
        (room.room_id, room.room_version, room.creator, room.created_ts, int(room.is_public), room.room_type,
         state_group),
    )


def event_statements(items: list[PersistedEvent]) -> list[Statement]:
    """The events rows, their prev edges, and the auth edges of state events: auth chains
    only ever pass through state events, and the auth events of any other event are read
    from the event itself."""
    return [
        Statement(
            "INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth, "
            "origin_server_ts, state_group_before, state_group_after, history_visibility, contains_url, relates_to, "
            "rel_type, replaces_state, redacted_by, txn_device, txn_id, outlier, backfilled, soft_failed, "
            "rejected_reason, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    item.stream_ordering, item.event.event_id, item.event.room_id, item.event.type,
                    item.event.state_key, item.event.sender, item.event.depth, item.event.origin_server_ts,
                    item.state_group_before, item.state_group_after, item.history_visibility,
                    int(item.contains_url), item.relates_to, item.rel_type, item.replaces_state, item.txn_device,
                    item.txn_id, int(item.outlier), int(item.backfilled), int(item.soft_failed),
                    item.rejected_reason, orjson.dumps(item.event.pdu).decode(),
                )
                for item in items
            ],
            many=True,
        ),
        Statement(
            "INSERT INTO event_edges (event_id, prev_event_id, room_id) VALUES (?, ?, ?) "
            "ON CONFLICT (event_id, prev_event_id) DO NOTHING",
            [(item.event.event_id, prev_id, item.event.room_id) for item in items
             for prev_id in dict.fromkeys(item.event.prev_event_ids)],
            many=True,
        ),
        Statement(
            "INSERT INTO event_auth (event_id, auth_id, room_id) VALUES (?, ?, ?) "
            "ON CONFLICT (event_id, auth_id) DO NOTHING",
            [(item.event.event_id, auth_id, item.event.room_id) for item in items if item.event.is_state
             for auth_id in dict.fromkeys(item.event.auth_event_ids)],
            many=True,
        ),
    ]


def state_group_statements(groups: list[NewStateGroup], room_id: str) -> list[Statement]:
    if not groups:
        return []
    return [
        Statement("INSERT INTO state_groups (state_group, room_id, prev_group, chain_length) VALUES (?, ?, ?, ?)",
                  [(g.state_group, room_id, g.prev_group, g.chain_length) for g in groups], many=True),
        Statement("INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES (?, ?, ?, ?)",
                  [(g.state_group, t, sk, eid) for g in groups for (t, sk), eid in g.entries.items()], many=True),
    ]


def head_statements(change: HeadChange) -> list[Statement]:
    """Forward and backward extremities, the current state and the memberships it holds."""
    room_id = change.room_id
    statements: list[Statement] = []
    if change.extremities is not None and change.state_group is not None:
        statements.append(Statement("UPDATE rooms SET forward_extremities = ?, current_state_group = ? WHERE room_id = ?",
                                    (orjson.dumps(change.extremities).decode(), change.state_group, room_id)))
    elif change.extremities is not None:
        statements.append(Statement("UPDATE rooms SET forward_extremities = ? WHERE room_id = ?",
                                    (orjson.dumps(change.extremities).decode(), room_id)))
    elif change.state_group is not None:
        statements.append(Statement("UPDATE rooms SET current_state_group = ? WHERE room_id = ?",
                                    (change.state_group, room_id)))
    if change.backward_removed:
        statements.append(Statement(
            f"DELETE FROM backward_extremities WHERE room_id = ? AND event_id IN ({in_clause(len(change.backward_removed))})",
            (room_id, *change.backward_removed)))
    if change.backward_added:
        statements.append(Statement(
            "INSERT INTO backward_extremities (room_id, event_id, depth) VALUES (?, ?, ?) "
            "ON CONFLICT (room_id, event_id) DO UPDATE SET depth = excluded.depth "
            "WHERE excluded.depth > backward_extremities.depth",
            [(room_id, event_id, depth) for event_id, depth in change.backward_added], many=True))
    if change.state_changes:
        statements += [
            Statement("INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
                      [(room_id, key[0], key[1], event.event_id) for _, key, event in change.state_changes], many=True),
            Statement("INSERT INTO current_state_deltas (stream_ordering, room_id, type, state_key, event_id) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_ordering, type, state_key) "
                      "DO UPDATE SET event_id = excluded.event_id",
                      [(stream, room_id, key[0], key[1], event.event_id) for stream, key, event in change.state_changes],
                      many=True),
        ]
        statements += membership_statements(room_id, [(stream, event) for stream, key, event in change.state_changes
                                                       if key[0] == MEMBER])
    return statements


def membership_statements(room_id: str, changes: list[tuple[int, Event]]) -> list[Statement]:
    """The memberships rows (each user's latest) and their history, of member events."""
    changes = [(stream, event) for stream, event in changes if event.membership is not None]
    if not changes:
        return []
    return [
        Statement("INSERT INTO memberships (room_id, user_id, membership, event_id, stream_ordering, forgotten) "
                  "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (room_id, user_id) DO UPDATE SET "
                  "membership = excluded.membership, event_id = excluded.event_id, "
                  "stream_ordering = excluded.stream_ordering, forgotten = 0",
                  [(room_id, event.state_key, event.membership, event.event_id, stream) for stream, event in changes],
                  many=True),
        Statement("INSERT INTO membership_history (room_id, user_id, stream_ordering, membership) "
                  "VALUES (?, ?, ?, ?) ON CONFLICT (room_id, user_id, stream_ordering) DO UPDATE SET "
                  "membership = excluded.membership",
                  [(room_id, event.state_key, stream, event.membership) for stream, event in changes], many=True),
    ]
