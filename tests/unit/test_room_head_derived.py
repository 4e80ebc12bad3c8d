"""A value derived from a room head's state is computed once per head, and again for the
head that replaces it when the state changes; the /sync summary is counted that way."""

from __future__ import annotations

from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.rooms.head import RoomHead
from ranvier.sync.room_members import _count_members

VERSION = ROOM_VERSIONS["10"]


def member(user_id: str, membership: str, depth: int) -> Event:
    pdu = {"type": "m.room.member", "state_key": user_id, "sender": user_id, "room_id": "!r:hs",
           "depth": depth, "content": {"membership": membership}}
    return Event(pdu, VERSION, f"$m{depth}")


def head_of(*members: Event, group: int) -> RoomHead:
    return RoomHead("!r:hs", VERSION, {("m.room.member", e.state_key): e for e in members}, group, 0, {"$x": 1})


def counting():
    """A derivation (the state's size) and the list of states it was called with."""
    calls: list = []

    def count(state):
        calls.append(state)
        return len(state)

    return calls, count


def test_derived_values_are_computed_once_per_head():
    calls, count = counting()
    first = head_of(member("@a:hs", "join", 1), group=1)
    assert (first.derived(count), first.derived(count)) == (1, 1)
    assert len(calls) == 1
    second = head_of(member("@a:hs", "join", 1), member("@b:hs", "join", 2), group=2)
    assert second.derived(count) == 2 and len(calls) == 2
    assert first.derived(count) == 1 and len(calls) == 2, "each head keeps its own value"


def test_the_member_summary_follows_the_state_of_each_head():
    before = head_of(member("@a:hs", "join", 1), member("@b:hs", "invite", 2), group=1)
    after = head_of(member("@a:hs", "join", 1), member("@b:hs", "join", 3), member("@c:hs", "leave", 4), group=2)
    assert before.derived(_count_members) == (1, 1, ["@a:hs", "@b:hs"], [])
    assert after.derived(_count_members) == (2, 0, ["@a:hs", "@b:hs"], ["@c:hs"])
    assert before.derived(_count_members) == (1, 1, ["@a:hs", "@b:hs"], [])


def test_a_head_after_a_message_keeps_what_was_derived():
    calls, count = counting()
    head = head_of(member("@a:hs", "join", 1), group=1)
    head.derived(count)
    later = head.with_extremities({"$message": 2})
    assert later.extremities == {"$message": 2} and later.state is head.state and later.joined is head.joined
    assert later.derived(count) == 1 and len(calls) == 1
