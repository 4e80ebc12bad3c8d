"""Other servers' /hierarchy answers as the walk takes them: checked field by field
(`federation.space_answers`), and a remote space's children in the spec's order
(`rooms.hierarchy.remote_children`), and the lookups that ask for them and keep them
(`federation.hierarchy.RemoteSpaces`)."""

from __future__ import annotations

from ranvier.federation.client import FederationError, Unreachable
from ranvier.federation.hierarchy import ANSWER_TTL_S, FAILURE_TTL_S, RemoteSpaces
from ranvier.federation.space_answers import MAX_ITEMS, MAX_STRING, checked_answer, checked_entry
from ranvier.rooms.hierarchy import RemoteSpace, remote_children


def _child(room_id: str, ts: int = 1, **content) -> dict:
    return {"type": "m.space.child", "state_key": room_id, "sender": "@u:x", "origin_server_ts": ts,
            "content": {"via": ["x"], **content}}


def _entry(room_id: str, **fields) -> dict:
    return {"room_id": room_id, "num_joined_members": 3, "world_readable": False, "guest_can_join": False,
            "join_rule": "public", **fields}


def test_a_valid_answer_keeps_the_spec_fields_and_drops_the_rest():
    answer = {"room": _entry("!s:x", name="S", room_type="m.space", extra={"a": 1},
                             children_state=[_child("!a:x"), {"type": "m.room.name"}, _child("!b:x", ts="late")]),
              "children": [_entry("!a:x", name="A"), _entry("!s:x"), {"room_id": 5}, "no"],
              "inaccessible_children": ["!c:x", 7, "not a room"]}
    space = checked_answer("!s:x", answer)
    assert space.room["name"] == "S" and "extra" not in space.room
    assert [event["state_key"] for event in space.room["children_state"]] == ["!a:x"]
    assert list(space.children) == ["!a:x"] and space.children["!a:x"]["children_state"] == []
    assert space.inaccessible == {"!c:x"}


def test_answers_that_are_not_one_about_the_room_are_not_used():
    for answer in (None, [], {"room": "x"}, {"room": _entry("!other:x")}, {"room": {**_entry("!s:x"), "room_id": 4}},
                   {"room": _entry("!s:x", num_joined_members=-1)}, {"room": _entry("!s:x", join_rule=["public"])}):
        assert checked_answer("!s:x", answer) is None, answer


def test_fields_of_the_wrong_type_or_size_are_dropped_and_lists_cut():
    many = [_child(f"!{n}:x") for n in range(MAX_ITEMS + 100)]
    entry = checked_entry(_entry("!s:x", name=5, topic="t" * (MAX_STRING + 1), world_readable="yes",
                                 allowed_room_ids=["!a:x", None], children_state=many))
    assert "name" not in entry and "topic" not in entry and entry["world_readable"] is False
    assert entry["allowed_room_ids"] == ["!a:x"] and len(entry["children_state"]) == MAX_ITEMS
    without_rule = checked_entry({"room_id": "!s:x", "num_joined_members": 0})
    assert without_rule["join_rule"] == "public" and without_rule["children_state"] == []
    assert checked_entry(_entry("!s:x", children_state=[_child("!a:x", via=[]), _child("!b:x", via="x")])) \
        ["children_state"] == []


def test_remote_children_come_in_the_spec_order_without_the_inaccessible():
    entry = checked_entry(_entry("!s:x", children_state=[
        _child("!late:x", ts=9), _child("!early:x", ts=2), _child("!ordered:x", ts=50, order="a"),
        _child("!hidden:x", ts=1), _child("!bad_order:x", ts=3, order="\n")]))
    space = RemoteSpace(entry, {"!early:x": _entry("!early:x", name="Early")}, frozenset({"!hidden:x"}))
    children = remote_children(entry, space, suggested_only=False)
    assert [child.room_id for child in children] == ["!ordered:x", "!early:x", "!bad_order:x", "!late:x"]
    assert children[1].entry["name"] == "Early" and children[0].entry is None and children[0].via == ["x"]
    assert [c.room_id for c in remote_children(entry, None, False)][-1] == "!late:x"


def test_suggested_only_keeps_the_suggested_children():
    entry = checked_entry(_entry("!s:x", children_state=[_child("!a:x", suggested=True), _child("!b:x"),
                                                         _child("!c:x", suggested="true")]))
    assert [child.room_id for child in remote_children(entry, None, suggested_only=True)] == ["!a:x"]


class _Servers:
    """A federation client whose servers answer from a table: an answer, or an exception."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def get(self, server: str, path: str, **_) -> dict:
        self.asked.append(server)
        answer = self.answers[server]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_lookups_try_the_servers_in_turn_and_keep_answers_for_a_while():
    now = [0.0]
    servers = _Servers({"down": Unreachable("down"), "refuses": FederationError("refuses", 404, {}),
                        "garbled": {"room": "no"}, "up": {"room": _entry("!s:x"), "children": []}})
    spaces = RemoteSpaces(servers, clock=lambda: now[0])
    space = await spaces.lookup("!s:x", ["down", "refuses", "garbled", "up"], False)
    assert space is None and servers.asked == ["down", "refuses", "garbled"]
    space = await spaces.lookup("!s:x", ["up"], True)
    assert space.room["room_id"] == "!s:x" and servers.asked[-1] == "up"
    assert await spaces.lookup("!s:x", ["up"], True) is space and len(servers.asked) == 4
    assert await spaces.lookup("!s:x", ["up"], False) is None and len(servers.asked) == 4
    now[0] += FAILURE_TTL_S + 1
    assert await spaces.lookup("!s:x", ["up"], False) is not None and len(servers.asked) == 5
    now[0] += ANSWER_TTL_S
    await spaces.lookup("!s:x", ["up"], True)
    assert len(servers.asked) == 6
