"""The sliding sync request: both dialects parse to the same settings, and required_state
matches as the proposal says (wildcards, `$ME`, exclusions, lazy members)."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.sync.sliding_request import RequiredState, RoomConfig, StateRule, parse_request, parse_required_state

ME = "@me:example.org"


def matches(required_state: RequiredState, event_type: str, state_key: str) -> bool:
    return required_state.matches(event_type, state_key, ME)


def test_pairs_dialect_wildcards_me_and_lazy():
    rs = parse_required_state([["m.room.name", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
                               ["m.space.child", "*"], ["*", "org.example.key"]], "required_state")
    assert rs.lazy_members
    assert matches(rs, "m.room.name", "") and not matches(rs, "m.room.name", "x")
    assert matches(rs, "m.room.member", ME) and not matches(rs, "m.room.member", "@other:example.org")
    assert matches(rs, "m.space.child", "!a:b") and matches(rs, "m.space.child", "")
    assert matches(rs, "org.example.type", "org.example.key") and not matches(rs, "org.example.type", "")
    assert not rs.exact_keys


def test_object_dialect_include_exclude_and_lazy():
    rs = parse_required_state({"include": [{}], "exclude": [{"type": "m.room.create"}], "lazy_members": True}, "rs")
    assert matches(rs, "m.room.topic", "") and matches(rs, "org.example", "any")
    assert not matches(rs, "m.room.create", "")
    assert not matches(rs, "m.room.member", ME), "members come only lazily, or by their state key"
    explicit = parse_required_state({"include": [{}, {"type": "m.room.member", "state_key": "$ME"}],
                                     "lazy_members": True}, "rs")
    assert matches(explicit, "m.room.member", ME)
    keyed = parse_required_state({"include": [{"state_key": ""}]}, "rs")
    assert matches(keyed, "m.room.name", "") and not matches(keyed, "m.room.member", ME)


def test_a_wildcard_over_members_turns_lazy_loading_off_in_the_pairs_dialect():
    assert not parse_required_state([["*", "*"], ["m.room.member", "$LAZY"]], "rs").lazy_members
    assert not parse_required_state([["m.room.member", "*"], ["m.room.member", "$LAZY"]], "rs").lazy_members
    assert parse_required_state([["m.room.name", "*"], ["m.room.member", "$LAZY"]], "rs").lazy_members
    assert parse_required_state([["m.room.topic", "$LAZY"]], "rs") == RequiredState()


def test_the_two_dialects_agree():
    pairs = parse_request({"lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 1,
                                             "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
                                             "filters": {"is_invite": True}}}}, {"pos": "1_2_ab", "timeout": "30000",
                                                                                 "set_presence": "offline"})
    objects = parse_request({"pos": "1_2_ab", "timeout": 30000, "set_presence": "offline",
                             "lists": {"all": {"range": [0, 19], "timeline_limit": 1, "filters": {"is_invited": True},
                                               "required_state": {"include": [{"type": "m.room.name", "state_key": ""}],
                                                                  "lazy_members": True}}}}, {})
    assert pairs == objects
    assert objects.pos == "1_2_ab" and objects.timeout_ms == 30000 and objects.set_presence == "offline"
    assert objects.lists["all"].filters.is_invited is True


def test_the_body_wins_over_the_query():
    request = parse_request({"pos": "1_1_a", "timeout": 5}, {"pos": "2_2_b", "timeout": "10"})
    assert (request.pos, request.timeout_ms) == ("1_1_a", 5)


def test_combined_configs_are_the_superset():
    name = RoomConfig(1, frozenset([RequiredState((StateRule("m.room.name", ""),))]))
    lazy = RoomConfig(20, frozenset([RequiredState((StateRule("m.room.topic", ""),), (), True)]))
    combined = RoomConfig.combine([name, lazy])
    assert combined.timeline_limit == 20 and combined.lazy_members
    assert combined.matches("m.room.name", "", ME) and combined.matches("m.room.topic", "", ME)
    assert not combined.matches("m.room.avatar", "", ME)
    assert RoomConfig.combine([name]) is name


def test_ranges():
    request = parse_request({"lists": {"a": {"timeline_limit": 0, "ranges": [[0, 4], [10, 12]]},
                                       "b": {"timeline_limit": 0}}}, {})
    ranged, unbounded = request.lists["a"], request.lists["b"]
    assert [i for i in range(20) if ranged.in_range(i)] == [0, 1, 2, 3, 4, 10, 11, 12]
    assert ranged.window_end == 13 and unbounded.window_end is None and unbounded.in_range(10_000)


def test_extensions_keep_only_enabled_ones():
    request = parse_request({"extensions": {"typing": {"enabled": True, "lists": ["a"], "rooms": ["*"]},
                                            "receipts": {"enabled": False}, "account_data": {},
                                            "to_device": {"enabled": True, "since": "17", "limit": 5}}}, {})
    assert set(request.extensions) == {"typing", "to_device"}
    assert request.extensions["typing"].lists == ("a",) and request.extensions["typing"].rooms == ("*",)
    assert request.extensions["to_device"].since == "17" and request.extensions["to_device"].limit == 5


@pytest.mark.parametrize("body, errcode", [
    ({"lists": {"all": {"timeline_limit": 1, "range": [1]}}}, "M_BAD_JSON"),
    ({"lists": {"all": {"timeline_limit": 1, "range": [2, 1]}}}, "M_INVALID_PARAM"),
    ({"lists": {"all": {"timeline_limit": True}}}, "M_BAD_JSON"),
    ({"lists": {"all": {}}}, "M_MISSING_PARAM"),
    ({"lists": {"all": {"timeline_limit": 1, "required_state": "all"}}}, "M_BAD_JSON"),
    ({"lists": {"all": {"timeline_limit": 1, "required_state": {"include": [{"type": 1}]}}}}, "M_BAD_JSON"),
    ({"lists": {"all": {"timeline_limit": 1, "filters": {"spaces": "!a:b"}}}}, "M_BAD_JSON"),
    ({"lists": {"": {"timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"room_subscriptions": {"#alias:b": {"timeline_limit": 1}}}, "M_INVALID_PARAM"),
    ({"room_subscriptions": {"!a:b": []}}, "M_BAD_JSON"),
    ({"extensions": []}, "M_BAD_JSON"),
    ({"extensions": {"to_device": {"enabled": True, "limit": -1}}}, "M_INVALID_PARAM"),
    ({"extensions": {"to_device": {"enabled": True, "since": "\u00b2"}}}, "M_INVALID_PARAM"),
    ({"timeout": -1}, "M_INVALID_PARAM"),
    ({"lists": {"all": {"timeline_limit": 1, "ranges": [[i, i] for i in range(101)]}}}, "M_INVALID_PARAM"),
])
def test_bad_requests(body, errcode):
    with pytest.raises(MatrixError) as raised:
        parse_request(body, {})
    assert raised.value.errcode == errcode
