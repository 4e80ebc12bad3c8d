"""The room graph migration: rooms stored as a line of events (the first schema) gain their
prev edges and the auth edges of their state events (read from the events' JSON, in both reference formats), forward
extremities, the state after each event, and current state deltas."""

from __future__ import annotations

import orjson
import pytest

from ranvier.events.model import build_event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.events.signing import SigningKey
from ranvier.rooms.schema import SCHEMA as ROOMS_SCHEMA
from ranvier.storage.engine import open_database
from ranvier.storage.migrations import Schema, apply_migrations

KEY = SigningKey.generate()
ALICE = "@alice:localhost"


def linear_room(version_id: str, room_id: str) -> list:
    """create, join, power levels, a message: each event after the one before, as the
    first schema's room server built them."""
    version = ROOM_VERSIONS[version_id]
    events, state = [], {}

    def add(event_type, content, state_key=None):
        auth = [state[k].event_id for k in (("m.room.create", ""), ("m.room.power_levels", ""),
                                             ("m.room.member", ALICE)) if k in state]
        event = build_event(version, room_id=room_id, sender=ALICE, type=event_type, content=content,
                            state_key=state_key, prev_event_ids=[events[-1].event_id] if events else [],
                            auth_event_ids=auth, depth=len(events) + 1, origin_server_ts=1000 + len(events),
                            signing_key=KEY, server_name="localhost")
        events.append(event)
        if state_key is not None:
            state[(event_type, state_key)] = event
        return event

    add("m.room.create", {"creator": ALICE, "room_version": version_id}, "")
    add("m.room.member", {"membership": "join"}, ALICE)
    add("m.room.power_levels", {"users": {ALICE: 100}}, "")
    add("m.room.message", {"body": "hello"})
    return events


async def test_a_linear_room_becomes_a_graph(database_url):
    db = await open_database(database_url)
    try:
        await apply_migrations(db, [Schema("rooms", ROOMS_SCHEMA.migrations[:1])])
        rooms = {"1": linear_room("1", "!one:localhost"), "11": linear_room("11", "!eleven:localhost")}
        stream = 0
        for version_id, events in rooms.items():
            room_id = events[0].room_id
            group = 0
            async with db.transaction() as txn:
                for event in events:
                    stream += 1
                    before = group
                    if event.is_state:
                        group = stream  # one snapshot group per state event, numbered like its stream
                        await txn.execute("INSERT INTO state_groups (state_group, room_id, prev_group, chain_length) "
                                          "VALUES (?, ?, NULL, 0)", group, room_id)
                        await txn.execute("INSERT INTO current_state (room_id, type, state_key, event_id) "
                                          "VALUES (?, ?, ?, ?)", room_id, event.type, event.state_key, event.event_id)
                    await txn.execute(
                        "INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth, "
                        "origin_server_ts, state_group_before, history_visibility, contains_url, json) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'shared', 0, ?)",
                        stream, event.event_id, room_id, event.type, event.state_key, event.sender, event.depth,
                        event.origin_server_ts, before, orjson.dumps(event.pdu).decode())
                await txn.execute(
                    "INSERT INTO rooms (room_id, room_version, creator, created_ts, current_state_group, "
                    "last_event_id, last_depth) VALUES (?, ?, ?, 0, ?, ?, ?)",
                    room_id, version_id, ALICE, group, events[-1].event_id, events[-1].depth)

        assert await apply_migrations(db, [ROOMS_SCHEMA]) == {"rooms": ROOMS_SCHEMA.latest - 1}

        for version_id, events in rooms.items():
            room_id = events[0].room_id
            edges = await db.fetchall("SELECT event_id, prev_event_id FROM event_edges WHERE room_id = ?", room_id)
            assert sorted(edges) == sorted((e.event_id, p.event_id) for p, e in zip(events, events[1:]))
            auth = await db.fetchall("SELECT event_id, auth_id FROM event_auth WHERE room_id = ?", room_id)
            assert sorted(auth) == sorted((e.event_id, a) for e in events if e.is_state for a in e.auth_event_ids)
            extremities = await db.fetchval("SELECT forward_extremities FROM rooms WHERE room_id = ?", room_id)
            assert orjson.loads(extremities) == [events[-1].event_id]
            after = dict(await db.fetchall("SELECT event_id, state_group_after FROM events WHERE room_id = ?", room_id))
            befores = dict(await db.fetchall("SELECT event_id, state_group_before FROM events WHERE room_id = ?",
                                             room_id))
            for event, following in zip(events, events[1:]):
                assert after[event.event_id] == befores[following.event_id]
            assert after[events[-1].event_id] == befores[events[-1].event_id]  # a message changes no state
            deltas = await db.fetchall("SELECT event_id FROM current_state_deltas WHERE room_id = ? "
                                       "ORDER BY stream_ordering", room_id)
            assert [d[0] for d in deltas] == [e.event_id for e in events if e.is_state]
        with pytest.raises(Exception):
            await db.fetchall("SELECT last_event_id FROM rooms")
    finally:
        await db.close()
