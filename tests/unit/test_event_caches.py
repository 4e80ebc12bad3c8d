"""The room store's event caches stay within their bounds: the parsed-event LRU keeps what
is read again, the rooms' recent buffers are bounded in total (the rooms written to least
recently lose theirs, and /sync then reads the database), and a redaction reaches both
copies of its target when the cache and a recent buffer hold different ones."""

from __future__ import annotations

import pytest

from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.rooms import store as store_module
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
