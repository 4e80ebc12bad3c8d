"""The push rule evaluator and the spec's default rules, without a server."""

from __future__ import annotations

import pytest

from ranvier.push.rules import (
    DEFAULT_RULESET,
    Member,
    PushEvent,
    RuleSet,
    default_rules,
    evaluate,
    flatten,
    notifies,
)

ALICE = Member("@alice:example.org", "Alice Liddell")
BOB = Member("@bob:example.org", "Bob")


def event(content=None, *, type="m.room.message", sender="@bob:example.org", members=3, sender_level=0,
          levels=None, **fields) -> PushEvent:
    pdu = {"type": type, "sender": sender, "room_id": "!room:example.org", "content": content or {}, **fields}
    return PushEvent.from_event(pdu, members, sender_level, levels)


def message(body, members=3, **extra) -> PushEvent:
    return event({"msgtype": "m.text", "body": body, **extra}, members=members)


def rule(*conditions, actions=("notify",)) -> RuleSet:
    return RuleSet.compile({"override": [{"rule_id": "r", "conditions": list(conditions), "actions": list(actions)}]})


def matches(condition, ev: PushEvent, member: Member = ALICE) -> bool:
    return evaluate(rule(condition), ev, member) == ("notify",)


def outcome(ev: PushEvent, member: Member = ALICE) -> tuple[bool, bool]:
    """(notify, highlight) under the default rules; also checks the narrowed set agrees."""
    actions = evaluate(DEFAULT_RULESET, ev, member)
    assert evaluate(DEFAULT_RULESET.narrow(ev), ev, member) == actions
    return notifies(actions)


# -- flattening ---------------------------------------------------------------------------


def test_flatten_escapes_dots_and_backslashes_in_property_names():
    flat = flatten({"content": {"m.relates_to": {"rel_type": "m.replace"}, "m\\foo": "x", "n": {"a": 1}}})
    assert flat == {"content.m\\.relates_to.rel_type": "m.replace", "content.m\\\\foo": "x", "content.n.a": 1}


def test_flatten_keeps_only_canonical_json_scalars_and_arrays_of_them():
    flat = flatten({"f": 1.5, "big": 2**53, "ok": -(2**53) + 1, "n": None, "b": False, "l": [1, "a", {"x": 1}, [2], True]})
    assert flat == {"ok": -(2**53) + 1, "n": None, "b": False, "l": frozenset({(int, 1), (str, "a"), (bool, True)})}


# -- event_match ----------------------------------------------------------------------------


@pytest.mark.parametrize("topic, expected", [
    ("Lunch plans", True), ("LUNCH", True), (" lunch", False), ("lunc", False), (None, False), (5, False),
])
def test_event_match_globs_the_whole_value_case_insensitively(topic, expected):
    ev = event({"topic": topic}, type="m.room.topic", state_key="")
    assert matches({"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}, ev) is expected


def test_event_match_never_matches_an_absent_property_even_with_star():
    assert not matches({"kind": "event_match", "key": "content.topic", "pattern": "*"}, event({}))
    assert matches({"kind": "event_match", "key": "content.topic", "pattern": "*"}, event({"topic": ""}))


def test_event_match_treats_regex_characters_literally():
    ev = event({"topic": "a+b"})
    assert matches({"kind": "event_match", "key": "content.topic", "pattern": "a+b"}, ev)
    assert not matches({"kind": "event_match", "key": "content.topic", "pattern": "a.b"}, ev)


@pytest.mark.parametrize("body, expected", [
    ("An example event.", True), ("exple", True), ("An exciting triple-whammy", True), ("examples", False),
    ("an_example", False), ("multi\nline example", True),
])
def test_event_match_on_body_matches_words(body, expected):
    assert matches({"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}, message(body)) is expected


def test_event_match_with_escaped_key():
    ev = event({"m.relates_to": {"rel_type": "m.thread"}})
    assert matches({"kind": "event_match", "key": "content.m\\.relates_to.rel_type", "pattern": "m.thread"}, ev)
    assert not matches({"kind": "event_match", "key": "content.m.relates_to.rel_type", "pattern": "m.thread"}, ev)


# -- event_property_is / event_property_contains ----------------------------------------------


@pytest.mark.parametrize("value, expected", [(True, True), ("true", False), (1, False), (None, False)])
def test_event_property_is_compares_exactly(value, expected):
    ev = event({"m.federate": value}, type="m.room.create", state_key="")
    assert matches({"kind": "event_property_is", "key": "content.m\\.federate", "value": True}, ev) is expected


def test_event_property_is_matches_null_only_when_present():
    condition = {"kind": "event_property_is", "key": "content.x", "value": None}
    assert matches(condition, event({"x": None}))
    assert not matches(condition, event({}))


def test_event_property_contains_looks_for_an_exact_item():
    ev = event({"alt_aliases": ["#somewhere:example.org", "#myroom:example.com"], "flags": [True], "n": "x"})
    contains = {"kind": "event_property_contains", "key": "content.alt_aliases"}
    assert matches({**contains, "value": "#myroom:example.com"}, ev)
    assert not matches({**contains, "value": ":example.com"}, ev)
    assert not matches({"kind": "event_property_contains", "key": "content.flags", "value": 1}, ev)
    assert matches({"kind": "event_property_contains", "key": "content.flags", "value": True}, ev)
    assert not matches({"kind": "event_property_contains", "key": "content.n", "value": "x"}, ev)


# -- contains_display_name, room_member_count, sender_notification_permission --------------------


@pytest.mark.parametrize("body, name, expected", [
    ("hi alice liddell!", "Alice Liddell", True),
    ("ALICE LIDDELL", "Alice Liddell", True),
    ("alice liddells", "Alice Liddell", False),
    ("ask Dr. Who? now", "Dr. Who?", True),
    ("ask Dr. Whom now", "Dr. Who?", False),
    ("anything", "", False),
    ("anything", None, False),
])
def test_contains_display_name(body, name, expected):
    member = Member("@alice:example.org", name)
    assert matches({"kind": "contains_display_name"}, message(body), member) is expected


def test_contains_display_name_needs_a_string_body():
    assert not matches({"kind": "contains_display_name"}, event({"body": 5}))


@pytest.mark.parametrize("is_, count, expected", [
    ("2", 2, True), ("2", 3, False), ("==2", 2, True), ("<3", 2, True), ("<2", 2, False), (">2", 3, True),
    (">2", 2, False), (">=2", 2, True), ("<=2", 3, False), ("<=2", 1, True), ("two", 2, False), (2, 2, False),
])
def test_room_member_count(is_, count, expected):
    assert matches({"kind": "room_member_count", "is": is_}, event({}, members=count)) is expected


def test_sender_notification_permission():
    condition = {"kind": "sender_notification_permission", "key": "room"}
    assert matches(condition, event({}, sender_level=50))
    assert not matches(condition, event({}, sender_level=49))
    assert matches(condition, event({}, sender_level=10, levels={"room": 10}))
    assert not matches({"kind": "sender_notification_permission"}, event({}, sender_level=100))


def test_an_unknown_condition_disables_the_rule():
    assert not matches({"kind": "org.example.unknown"}, event({}))
    assert evaluate(rule(), event({}), ALICE) == ("notify",)  # no conditions: always matches


# -- rule sets ----------------------------------------------------------------------------


def test_rules_are_checked_by_kind_then_order_and_disabled_rules_never_match():
    rules = RuleSet.compile({
        "underride": [{"rule_id": "u", "conditions": [], "actions": ["notify"]}],
        "sender": [{"rule_id": "@bob:example.org", "actions": []}],
        "room": [{"rule_id": "!other:example.org", "actions": ["notify", {"set_tweak": "highlight"}]}],
        "content": [{"rule_id": "c", "pattern": "cake", "actions": ["notify", {"set_tweak": "sound", "value": "x"}]}],
        "override": [{"rule_id": "o", "enabled": False, "conditions": [], "actions": ["dont_notify"]}],
    })
    assert evaluate(rules, message("cake please"), ALICE) == ("notify", {"set_tweak": "sound", "value": "x"})
    assert evaluate(rules, message("no"), ALICE) == ()  # the sender rule
    assert evaluate(rules, event({}, sender="@carol:example.org"), ALICE) == ("notify",)


def test_historical_actions_are_ignored():
    assert evaluate(rule(actions=["dont_notify", "coalesce"]), event({}), ALICE) == ()


def test_notifies_reads_the_highlight_tweak():
    assert notifies(["notify"]) == (True, False)
    assert notifies(["notify", {"set_tweak": "highlight"}]) == (True, True)
    assert notifies(["notify", {"set_tweak": "highlight", "value": False}]) == (True, False)
    assert notifies([{"set_tweak": "sound", "value": "default"}]) == (False, False)


def test_default_rules_are_in_the_spec_order():
    rules = default_rules()
    assert [r["rule_id"] for r in rules["override"]] == [
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
        ".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif",
        ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in rules["content"]] == [".m.rule.contains_user_name"]
    assert [r["rule_id"] for r in rules["underride"]][:5] == [
        ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message",
        ".m.rule.encrypted",
    ]
    assert all(r["default"] for kind in rules.values() for r in kind)


def test_the_master_rule_silences_everything_when_enabled():
    rules = default_rules()
    rules["override"][0]["enabled"] = True
    assert evaluate(RuleSet.compile(rules), message("Alice Liddell", members=2), ALICE) == ()


# -- the default rules against the spec's cases ----------------------------------------------------


def test_one_to_one_rooms_notify_with_sound():
    actions = evaluate(DEFAULT_RULESET, message("hi", members=2), ALICE)
    assert actions == ("notify", {"set_tweak": "sound", "value": "default"})
    assert outcome(event({"ciphertext": "x"}, type="m.room.encrypted", members=2)) == (True, False)


def test_group_rooms_notify_without_highlight():
    assert outcome(message("hi all")) == (True, False)
    assert evaluate(DEFAULT_RULESET, message("hi all"), ALICE) == ("notify",)
    assert outcome(event({"ciphertext": "x"}, type="m.room.encrypted")) == (True, False)


def test_display_name_and_user_id_mentions_highlight():
    assert outcome(message("thanks alice liddell")) == (True, True)
    assert outcome(message("ask @Alice:example.org")) == (True, True)
    assert outcome(message("ask alice")) == (True, True)
    assert outcome(message("malice aforethought")) == (True, False)
    assert outcome(message("Alice Liddell"), BOB) == (True, False)


def test_room_mentions_need_the_senders_notification_level():
    body = {"msgtype": "m.text", "body": "@room lunch"}
    assert outcome(event(body, sender_level=50)) == (True, True)
    assert outcome(event(body, sender_level=0)) == (True, False)
    assert outcome(event({**body, "m.mentions": {"room": True}}, sender_level=100)) == (True, True)
    assert outcome(event({**body, "m.mentions": {"room": True}}, sender_level=0)) == (True, False)
    assert outcome(event({**body, "m.mentions": {"room": True}}, sender_level=5, levels={"room": 5})) == (True, True)


def test_intentional_mentions_are_respected_and_skip_the_body_rules():
    mentions_alice = {"user_ids": ["@alice:example.org"]}
    assert outcome(message("no names here", **{"m.mentions": mentions_alice})) == (True, True)
    assert outcome(message("Alice Liddell and alice", **{"m.mentions": {"user_ids": ["@bob:example.org"]}})) \
        == (True, False)
    assert outcome(message("Alice Liddell", **{"m.mentions": {}})) == (True, False)
    sender_level_100 = event({"body": "@room", "msgtype": "m.text", "m.mentions": {}}, sender_level=100)
    assert outcome(sender_level_100) == (True, False)


def test_notices_edits_reactions_acls_and_member_events_do_not_notify():
    assert outcome(event({"msgtype": "m.notice", "body": "Alice Liddell"})) == (False, False)
    edit = {"msgtype": "m.text", "body": "* alice", "m.new_content": {"body": "alice"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}
    assert outcome(event(edit, members=2)) == (False, False)
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "alice"}}
    assert outcome(event(reaction, type="m.reaction", members=2)) == (False, False)
    assert outcome(event({"allow": ["*"]}, type="m.room.server_acl", state_key="")) == (False, False)
    join = {"membership": "join", "displayname": "Alice Liddell"}
    assert outcome(event(join, type="m.room.member", state_key="@bob:example.org", members=2)) == (False, False)


def test_invites_notify_only_the_invitee():
    invite = event({"membership": "invite"}, type="m.room.member", state_key="@alice:example.org")
    assert evaluate(DEFAULT_RULESET, invite, ALICE) == ("notify", {"set_tweak": "sound", "value": "default"})
    assert outcome(invite, BOB) == (False, False)


def test_tombstones_highlight_and_calls_ring():
    assert outcome(event({"body": "moved", "replacement_room": "!new:x"}, type="m.room.tombstone", state_key="")) \
        == (True, True)
    assert outcome(event({"body": "moved"}, type="m.room.tombstone")) == (False, False)  # not a state event
    assert evaluate(DEFAULT_RULESET, event({}, type="m.call.invite"), ALICE) == (
        "notify", {"set_tweak": "sound", "value": "ring"})


def test_other_event_types_do_not_notify():
    assert outcome(event({"name": "Alice Liddell"}, type="m.room.name", state_key="")) == (False, False)


def test_narrowing_keeps_only_what_can_still_match():
    narrowed = DEFAULT_RULESET.narrow(message("hello", **{"m.mentions": {}}))
    assert [r.rule_id for r in narrowed.rules] == [".m.rule.is_user_mention", ".m.rule.message"]
    assert [len(r.conditions) for r in narrowed.rules] == [1, 0]
    assert DEFAULT_RULESET.narrow(event({"msgtype": "m.notice", "body": "x"})).rules[0].actions == ()
