"""The redaction algorithm of every room version, table-driven."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ranvier.events.redaction import redact
from ranvier.events.room_versions import ROOM_VERSIONS

ALL = list(ROOM_VERSIONS)
BEFORE_11 = [v for v in ALL if int(v) < 11]
FROM_11 = [v for v in ALL if int(v) >= 11]

TOP_LEVEL = {
    "event_id": "$e:x",
    "type": "m.room.message",
    "room_id": "!r:x",
    "sender": "@u:x",
    "content": {"body": "secret"},
    "hashes": {"sha256": "h"},
    "signatures": {"x": {"ed25519:1": "s"}},
    "depth": 4,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "origin_server_ts": 5,
    "origin": "x",
    "membership": "join",
    "prev_state": [],
    "unsigned": {"age": 1},
    "redacts": "$old",
    "extra": "gone",
}


@pytest.mark.parametrize("version", ALL)
def test_top_level_keys(version):
    redacted = redact(TOP_LEVEL, ROOM_VERSIONS[version])
    kept = {"event_id", "type", "room_id", "sender", "content", "hashes", "signatures", "depth",
            "prev_events", "auth_events", "origin_server_ts"}
    if version in BEFORE_11:
        kept |= {"origin", "membership", "prev_state"}
    assert set(redacted) == kept
    assert redacted["content"] == {}


def test_state_key_survives():
    assert redact({"type": "m.room.topic", "state_key": "", "content": {"topic": "t"}}, ROOM_VERSIONS["1"]) == {
        "type": "m.room.topic", "state_key": "", "content": {}
    }


POWER_LEVELS = {"ban": 50, "events": {"a": 1}, "events_default": 0, "invite": 0, "kick": 50, "redact": 50,
                "state_default": 50, "users": {"@u:x": 100}, "users_default": 0, "notifications": {"room": 50},
                "historical": 100}
PL_KEPT_OLD = {k: v for k, v in POWER_LEVELS.items() if k not in ("invite", "notifications", "historical")}
PL_KEPT_V11 = {**PL_KEPT_OLD, "invite": 0}
THIRD_PARTY = {"display_name": "d", "signed": {"mxid": "@u:x", "token": "t", "signatures": {}}}
MEMBER = {"membership": "join", "displayname": "U", "join_authorised_via_users_server": "@v:x",
          "third_party_invite": THIRD_PARTY, "avatar_url": "mxc://x/y"}

# (event type, content, {version-range: expected content})
CONTENT_TABLE = [
    ("m.room.member", MEMBER, {
        ("1", "2", "3", "4", "5", "6", "7", "8"): {"membership": "join"},
        ("9", "10"): {"membership": "join", "join_authorised_via_users_server": "@v:x"},
        ("11", "12"): {"membership": "join", "join_authorised_via_users_server": "@v:x",
                       "third_party_invite": {"signed": THIRD_PARTY["signed"]}},
    }),
    ("m.room.create", {"creator": "@u:x", "room_version": "5", "m.federate": False}, {
        tuple(BEFORE_11): {"creator": "@u:x"},
        tuple(FROM_11): {"creator": "@u:x", "room_version": "5", "m.federate": False},
    }),
    ("m.room.join_rules", {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}, {
        ("1", "2", "3", "4", "5", "6", "7"): {"join_rule": "restricted"},
        ("8", "9", "10", "11", "12"): {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
    }),
    ("m.room.power_levels", POWER_LEVELS, {tuple(BEFORE_11): PL_KEPT_OLD, tuple(FROM_11): PL_KEPT_V11}),
    ("m.room.aliases", {"aliases": ["#a:x"]}, {
        ("1", "2", "3", "4", "5"): {"aliases": ["#a:x"]},
        ("6", "7", "8", "9", "10", "11", "12"): {},
    }),
    ("m.room.history_visibility", {"history_visibility": "shared", "x": 1}, {
        tuple(ALL): {"history_visibility": "shared"},
    }),
    ("m.room.redaction", {"redacts": "$e", "reason": "spam"}, {
        tuple(BEFORE_11): {},
        tuple(FROM_11): {"redacts": "$e"},
    }),
    ("m.room.name", {"name": "n"}, {tuple(ALL): {}}),
]


def _cases():
    for event_type, content, expectations in CONTENT_TABLE:
        covered = [v for versions in expectations for v in versions]
        assert sorted(covered, key=int) == ALL, f"{event_type} table must cover every version once"
        for versions, expected in expectations.items():
            for version in versions:
                yield pytest.param(event_type, content, version, expected, id=f"{event_type}-v{version}")


@pytest.mark.parametrize("event_type, content, version, expected", list(_cases()))
def test_content_keys(event_type, content, version, expected):
    redacted = redact({"type": event_type, "content": content, "state_key": ""}, ROOM_VERSIONS[version])
    assert redacted["content"] == expected


def test_member_third_party_invite_without_signed_is_dropped():
    redacted = redact({"type": "m.room.member", "content": {"membership": "invite", "third_party_invite": {"x": 1}}},
                      ROOM_VERSIONS["11"])
    assert redacted["content"] == {"membership": "invite"}


def test_input_is_not_modified_and_bad_content_tolerated():
    event = {"type": "m.room.message", "content": {"body": "b"}}
    redact(event, ROOM_VERSIONS["11"])
    assert event == {"type": "m.room.message", "content": {"body": "b"}}
    assert redact({"type": "m.room.member", "content": "oops"}, ROOM_VERSIONS["1"])["content"] == {}


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                          max_leaves=10)
event_types = st.sampled_from(["m.room.member", "m.room.create", "m.room.join_rules", "m.room.power_levels",
                               "m.room.aliases", "m.room.history_visibility", "m.room.redaction", "m.room.message"])
content_keys = st.sampled_from(["membership", "creator", "join_rule", "allow", "ban", "users", "invite", "aliases",
                                "history_visibility", "redacts", "third_party_invite", "body",
                                "join_authorised_via_users_server"])


@given(
    st.sampled_from(ALL),
    event_types,
    st.dictionaries(content_keys, json_value | st.fixed_dictionaries({"signed": json_value, "x": json_value})),
    st.dictionaries(st.sampled_from(sorted(TOP_LEVEL)), json_value),
)
def test_redaction_is_idempotent(version, event_type, content, top_level):
    rv = ROOM_VERSIONS[version]
    event = {**top_level, "type": event_type, "content": content}
    once = redact(event, rv)
    assert redact(once, rv) == once
    assert set(once) <= set(event) | {"content"}
