"""The room store's event caches stay within their bounds: the parsed-event LRU keeps what
is read again, the rooms' recent buffers are bounded in total (the rooms written to least
recently lose theirs, and /sync then reads the database), and a redaction reaches both
copies of its target when the cache and a recent buffer hold different ones."""

from __future__ import annotations

import sys

import orjson
import pytest

from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.rooms import relations as relations_module
from ranvier.rooms import store as store_module
from ranvier.rooms.relations import RelationsService
from ranvier.rooms.store import EventRow, PersistedEvent, RoomStore

VERSION = ROOM_VERSIONS["10"]


def event(room: str, number: int, **extra) -> Event:
    pdu = {"type": "m.room.message", "room_id": room, "sender": "@a:hs", "depth": number,
           "content": {"body": str(number)}, **extra}
    return Event(pdu, VERSION, f"${room}-{number}")


def persisted(room: str, number: int, **extra) -> PersistedEvent:
    return PersistedEvent(event(room, number), stream_ordering=number, state_group_before=1,
                          history_visibility="shared", **extra)


def committed(store: RoomStore, items: list[PersistedEvent]) -> None:
    store.remember_persisted(items)
    store.after_commit(items)


def test_the_event_cache_evicts_the_least_recently_read(monkeypatch):
    monkeypatch.setattr(store_module, "_EVENT_CACHE_SIZE", 3)
    store = RoomStore(db=None)
    committed(store, [persisted("!r", 1), persisted("!r", 2), persisted("!r", 3)])
    store.cached_rows([("$!r-1",)])  # read again: now the most recent
    committed(store, [persisted("!r", 4)])
    assert store.cached_event("$!r-1") is not None, "a row read again stays"
    assert store.cached_event("$!r-2") is None, "the least recently used one went"
    assert [store.cached_event(f"$!r-{n}") is not None for n in (3, 4)] == [True, True]


def test_recent_buffers_are_bounded_in_total(monkeypatch):
    monkeypatch.setattr(store_module, "_RECENT_EVENTS_KEPT", 5)
    store = RoomStore(db=None)
    committed(store, [persisted("!a", 1), persisted("!a", 2)])
    committed(store, [persisted("!b", 3), persisted("!b", 4)])
    committed(store, [persisted("!a", 5)])  # !a is now the room written to last
    assert [row.stream_ordering for row in store.recent_rows("!a", 0, 10, 10)] == [1, 2, 5]
    committed(store, [persisted("!c", 6)])
    assert store.recent_rows("!b", 0, 10, 10) is None, "the room written to least recently lost its buffer"
    assert [row.stream_ordering for row in store.recent_rows("!a", 0, 10, 10)] == [1, 2, 5]
    assert [row.stream_ordering for row in store.recent_rows("!c", 5, 10, 10)] == [6]
    committed(store, [persisted("!b", 7)])
    assert store.recent_rows("!b", 6, 10, 10) == [store.cached_rows([("$!b-7",)])[0]], \
        "a new buffer is complete from its first row on"
    assert store.recent_rows("!b", 0, 10, 10) is None, "but cannot tell what came before it"


def test_forgetting_a_room_gives_its_share_of_the_bound_back(monkeypatch):
    monkeypatch.setattr(store_module, "_RECENT_EVENTS_KEPT", 3)
    store = RoomStore(db=None)
    committed(store, [persisted("!a", 1), persisted("!a", 2)])
    store.forget_room("!a", only={"$!a-1"})
    committed(store, [persisted("!b", 3), persisted("!b", 4)])
    assert [row.stream_ordering for row in store.recent_rows("!a", 1, 10, 10)] == [2]
    store.forget_room("!a")
    committed(store, [persisted("!c", 5), persisted("!c", 6)])
    assert store.recent_rows("!b", 0, 10, 10) is None
    assert len(store.recent_rows("!c", 4, 10, 10)) == 2


@pytest.mark.parametrize("reread", [False, True])
def test_a_redaction_marks_the_cached_and_the_recent_row(monkeypatch, reread):
    store = RoomStore(db=None)
    committed(store, [persisted("!r", 1)])
    recent_row = store.recent_rows("!r", 0, 10, 10)[0]
    if reread:  # the cache lost the row and read it again: a second object
        store.forget_events(["$!r-1"])
        store._remember(EventRow(event("!r", 1), 1, None, "shared", None, None, 1, None))
    cached_row = store.cached_rows([("$!r-1",)])[0]
    assert (cached_row is recent_row) is not reread
    redaction = PersistedEvent(event("!r", 2, type="m.room.redaction", redacts="$!r-1"), stream_ordering=2,
                               state_group_before=1, history_visibility="shared", redacts="$!r-1")
    committed(store, [redaction])
    assert cached_row.redacted_by == recent_row.redacted_by == "$!r-2"


def test_cached_events_share_their_recurring_strings():
    """Two events parsed apart hold their own copies of the room, sender and referenced IDs;
    once cached they point at one copy each, and every value is unchanged."""
    first_pdu = orjson.loads(orjson.dumps({"type": "m.room.member", "room_id": "!shared:hs", "sender": "@a:hs",
                                           "state_key": "@a:hs", "content": {"membership": "join"},
                                           "auth_events": ["$create"], "prev_events": ["$create"], "depth": 2}))
    first = Event(first_pdu, VERSION, "".join(["$", "first"]))
    second_pdu = orjson.loads(orjson.dumps({"type": "m.room.member", "room_id": "!shared:hs", "sender": "@a:hs",
                                            "state_key": "@a:hs", "content": {"membership": "join"},
                                            "auth_events": ["$create"], "prev_events": ["$first"], "depth": 3}))
    second = Event(second_pdu, VERSION, "$second")
    before = (orjson.dumps(first.pdu), orjson.dumps(second.pdu))
    assert first.pdu["room_id"] is not second.pdu["room_id"]
    store = RoomStore(db=None)
    committed(store, [PersistedEvent(first, 1, 1, "shared"), PersistedEvent(second, 2, 1, "shared")])
    assert (orjson.dumps(first.pdu), orjson.dumps(second.pdu)) == before, "no value changed"
    for key in ("room_id", "sender", "type", "state_key"):
        assert first.pdu[key] is second.pdu[key], key
    assert first.pdu["auth_events"][0] is second.pdu["auth_events"][0]
    assert second.pdu["prev_events"][0] is first.event_id, "a reference shares the referenced event's ID"
    assert first.content["membership"] is second.content["membership"]


def test_a_cached_events_pdu_is_held_at_its_size():
    """A parsed PDU keeps room to grow; cached, it is rebuilt without it, same keys in the same order."""
    pdu = orjson.loads(orjson.dumps({"type": "m.room.message", "room_id": "!r:hs", "sender": "@a:hs", "depth": 4,
                                     "content": {"body": "hi"}, "auth_events": ["$a", "$b", "$c"],
                                     "prev_events": ["$p"], "origin_server_ts": 1, "hashes": {"sha256": "h"},
                                     "signatures": {"hs": {"ed25519:k": "s"}}, "unsigned": {"age_ts": 1}}))
    parsed_size, keys = sys.getsizeof(pdu), list(pdu)
    cached = Event(pdu, VERSION, "$m")
    committed(RoomStore(db=None), [PersistedEvent(cached, 1, 1, "shared")])
    assert list(cached.pdu) == keys and cached.pdu == pdu
    assert sys.getsizeof(cached.pdu) < parsed_size


def relations_asking(store: RoomStore) -> tuple[RelationsService, list[list[str]]]:
    """A relations service whose database says no event has children, and what it was asked."""
    relations = RelationsService(store)
    asked: list[list[str]] = []

    async def relation_children(parent_ids, rel_types):
        asked.append(sorted(parent_ids))
        return []

    relations.queries.relation_children = relation_children
    return relations, asked


async def test_events_known_childless_are_bounded(monkeypatch):
    monkeypatch.setattr(relations_module, "_CHILDLESS_CACHED", 3)
    store = RoomStore(db=None)
    relations, asked = relations_asking(store)
    items = [persisted("!r", number) for number in range(1, 5)]
    committed(store, items)
    relations.committed([(item, ("new", None)) for item in items])
    await relations._children(store.cached_rows([(item.event.event_id,) for item in items]))
    assert asked == [["$!r-1"]], "only the oldest, past the bound, is asked about"


async def test_an_event_that_gained_a_relation_is_asked_about_again():
    store = RoomStore(db=None)
    relations, asked = relations_asking(store)
    items = [persisted("!r", number) for number in range(1, 4)]
    committed(store, items)
    relations.committed([(item, ("new", None)) for item in items])
    reply = persisted("!r", 4, relates_to="$!r-2", rel_type="m.reference")
    relations.committed([(reply, ("new", None))])
    await relations._children(store.cached_rows([(item.event.event_id,) for item in items]))
    assert asked == [["$!r-2"]]
