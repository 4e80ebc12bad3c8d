"""A user's own push rules (ordering, edits, storage as m.push_rules) and the audience index,
without a server; the spec's examples of the push module."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.push.audience import Audience, literal_part
from ranvier.push.rules import DEFAULT_RULESET, KINDS, Member, PushEvent, evaluate, matching_rule, notifies
from ranvier.push.user_rules import UserRules, check_actions, new_rule

ME = "@alice:example.org"
ROOM = "!dj234r78wl45Gh4D:matrix.org"


def message(body, *, room=ROOM, sender="@bob:example.org", members=20, **extra) -> PushEvent:
    pdu = {"type": "m.room.message", "sender": sender, "room_id": room,
           "content": {"msgtype": "m.text", "body": body, **extra}}
    return PushEvent.from_event(pdu, members)


def put(rules: UserRules, kind: str, rule_id: str, before=None, after=None, **body) -> None:
    rules.put(kind, new_rule(kind, rule_id, body), before=before, after=after)


def actions_for(rules: UserRules, event: PushEvent, member: Member = Member(ME, "Alice")):
    return evaluate(rules.compile(), event, member)


# -- the spec's examples ----------------------------------------------------------------


def test_a_room_rule_silences_a_room():
    rules = UserRules()
    put(rules, "room", ROOM, actions=[])
    assert actions_for(rules, message("lunch?")) == ()
    assert notifies(actions_for(rules, message("lunch?", room="!other:matrix.org"))) == (True, False)


def test_a_sender_rule_silences_a_sender():
    rules = UserRules()
    put(rules, "sender", "@spambot:matrix.org", actions=[])
    assert actions_for(rules, message("buy now", sender="@spambot:matrix.org")) == ()
    assert actions_for(rules, message("hello")) == ("notify",)


def test_content_rules_with_before_supersede_each_other():
    rules = UserRules()
    put(rules, "content", "SSByZWFsbHkgbGlrZSBjYWtl", pattern="cake",
        actions=["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}])
    put(rules, "content", "U3BvbmdlIGNha2UgaXMgYmVzdA", before="SSByZWFsbHkgbGlrZSBjYWtl", pattern="cake*lie",
        actions=["notify"])
    assert [r["rule_id"] for r in rules.own["content"]] == ["U3BvbmdlIGNha2UgaXMgYmVzdA", "SSByZWFsbHkgbGlrZSBjYWtl"]
    assert actions_for(rules, message("the cake is a lie")) == ("notify",)
    assert actions_for(rules, message("any cake left?"))[1] == {"set_tweak": "sound", "value": "cakealarm.wav"}


def test_an_override_with_conditions_beats_content_rules():
    rules = UserRules()
    put(rules, "content", "cake", pattern="beer", actions=["notify"])
    put(rules, "override", "U2VlIHlvdSBpbiBUaGUgRHVrZQ",
        conditions=[{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                    {"kind": "room_member_count", "is": "<=10"}],
        actions=["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}])
    assert actions_for(rules, message("beer time", members=10))[1]["value"] == "beeroclock.wav"
    assert actions_for(rules, message("beer time", members=11)) == ("notify",)


# -- ordering and edits -----------------------------------------------------------------


def test_merged_order_is_master_then_own_rules_before_defaults_in_each_kind():
    rules = UserRules()
    put(rules, "override", "mine", actions=[], conditions=[])
    put(rules, "underride", "late", actions=["notify"], conditions=[])
    merged = rules.merged()
    assert [r["rule_id"] for r in merged["override"]][:3] == [".m.rule.master", "mine", ".m.rule.suppress_notices"]
    assert merged["underride"][0]["rule_id"] == "late"
    assert [kind for kind in merged] == list(KINDS)


def test_the_master_rule_beats_user_overrides():
    rules = UserRules()
    put(rules, "override", "loud", actions=["notify", {"set_tweak": "highlight"}], conditions=[])
    rules.set_attribute("override", ".m.rule.master", "enabled", True)
    assert actions_for(rules, message("x")) == ()


def test_new_rules_go_first_and_after_places_them():
    rules = UserRules()
    for rule_id in ("a", "b"):
        put(rules, "override", rule_id, actions=[])
    put(rules, "override", "c", after="b", actions=[])
    put(rules, "override", "d", before="b", after="a", actions=[])  # before wins
    assert [r["rule_id"] for r in rules.own["override"]] == ["d", "b", "c", "a"]
    put(rules, "override", "c", actions=["notify"])  # replaced in place
    assert [r["rule_id"] for r in rules.own["override"]] == ["d", "b", "c", "a"]
    with pytest.raises(MatrixError) as error:
        put(rules, "override", "e", before="nope", actions=[])
    assert error.value.errcode == "M_UNKNOWN"
    with pytest.raises(MatrixError):
        put(rules, "override", "e", after=".m.rule.master", actions=[])


def test_rule_ids_of_the_server_and_with_slashes_are_refused():
    for bad in (".m.rule.mine", "a/b", "a\\b"):
        with pytest.raises(MatrixError) as error:
            new_rule("override", bad, {"actions": []})
        assert error.value.errcode == "M_INVALID_PARAM"


def test_defaults_cannot_be_deleted_but_can_be_disabled_and_changed():
    rules = UserRules()
    with pytest.raises(MatrixError) as error:
        rules.delete("underride", ".m.rule.message")
    assert error.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(MatrixError) as error:
        rules.delete("underride", "unknown")
    assert error.value.errcode == "M_NOT_FOUND"
    rules.set_attribute("underride", ".m.rule.message", "actions", ["notify", {"set_tweak": "sound", "value": "x"}])
    assert actions_for(rules, message("hi"))[1] == {"set_tweak": "sound", "value": "x"}
    rules.set_attribute("underride", ".m.rule.message", "enabled", False)
    assert actions_for(rules, message("hi")) == ()
    rules.set_attribute("underride", ".m.rule.message", "enabled", True)
    rules.set_attribute("underride", ".m.rule.message", "actions", ["notify"])
    assert rules.is_default


def test_actions_are_checked_and_historical_ones_dropped():
    assert check_actions(["notify", "dont_notify", "coalesce", {"set_tweak": "sound", "value": "bing"}]) == [
        "notify", {"set_tweak": "sound", "value": "bing"}]
    for bad in ("notify", ["explode"], [{"value": 1}], [3]):
        with pytest.raises(MatrixError):
            check_actions(bad)


def test_malformed_conditions_are_refused_and_unknown_kinds_kept():
    for bad in ([{"kind": "event_match", "key": "type"}], [{"kind": "room_member_count", "is": "lots"}],
                [{"kind": "event_property_is", "key": "x", "value": [1]}], ["x"], {"kind": "event_match"}):
        with pytest.raises(MatrixError):
            new_rule("override", "r", {"actions": [], "conditions": bad})
    rule = new_rule("override", "r", {"actions": ["notify"], "conditions": [{"kind": "org.example.future"}]})
    rules = UserRules()
    rules.put("override", rule, before=None, after=None)
    assert actions_for(rules, message("hi")) == ("notify",)  # the unknown condition never matches


def test_stored_content_reads_back_and_follows_changed_defaults():
    rules = UserRules()
    put(rules, "content", "kw", pattern="ranvier", actions=["notify", {"set_tweak": "highlight"}])
    rules.set_attribute("override", ".m.rule.suppress_notices", "enabled", False)
    content = {"global": rules.content(ME)}
    back = UserRules.from_content(content)
    assert back == rules
    shown = {r["rule_id"]: r for r in content["global"]["override"]}
    mention = shown[".m.rule.is_user_mention"]["conditions"][0]
    assert mention["value"] == ME and "value_type" not in mention
    user_name = content["global"]["content"][-1]
    assert user_name["rule_id"] == ".m.rule.contains_user_name" and user_name["pattern"] == "alice"
    assert UserRules.from_content({"global": {"override": "junk", "room": [3, {"rule_id": 4}]}}).is_default


def test_user_rules_compiled_agree_with_the_defaults_when_unchanged():
    event = message("hello @alice", **{"m.mentions": {"user_ids": [ME]}})
    member = Member(ME, "Alice")
    assert evaluate(UserRules().compile(), event, member) == evaluate(DEFAULT_RULESET, event, member)


# -- the audience index -----------------------------------------------------------------


class Join:
    def __init__(self, name=None):
        self.content = {"membership": "join", **({"displayname": name} if name else {})}


def audience(rules_by_user=None, room=ROOM, **joined_names):
    joined = {f"@{local}:example.org": Join(name) for local, name in joined_names.items()}
    joined["@remote:elsewhere.org"] = Join("Remote")
    rules_by_user = rules_by_user or {}
    return Audience.build(room, joined, lambda u: u.endswith(":example.org"), rules_by_user.get)


def candidates(aud: Audience, event: PushEvent):
    return aud.candidates(event, DEFAULT_RULESET.narrow(event), "m.room.message", event.flat["sender"])


def test_literal_part_is_the_longest_run_without_wildcards():
    assert literal_part("cake*lie") == "cake"
    assert literal_part("B?eer*") == "eer"
    assert literal_part("*") == ""


def test_only_members_a_condition_names_are_candidates():
    aud = audience(alice="Alice", carol="Carol Ann", dave=None)
    assert aud.local == {"@alice:example.org", "@carol:example.org", "@dave:example.org"}
    assert candidates(aud, message("lunch?")) == set()
    assert candidates(aud, message("carol ann, lunch?")) == {"@carol:example.org"}
    assert candidates(aud, message("dave?")) == {"@dave:example.org"}  # the localpart rule
    mentioned = message("hi", **{"m.mentions": {"user_ids": ["@alice:example.org", "@remote:elsewhere.org"]}})
    assert candidates(aud, mentioned) == {"@alice:example.org"}


def test_own_rules_make_candidates_only_where_they_can_match():
    own = UserRules()
    put(own, "sender", "@bob:example.org", actions=[])
    muted_elsewhere = UserRules()
    put(muted_elsewhere, "room", "!elsewhere:example.org", actions=[])
    muted_here = UserRules()
    put(muted_here, "override", "mute", actions=[], conditions=[{"kind": "event_match", "key": "room_id",
                                                                   "pattern": ROOM}])
    keyword = UserRules()
    put(keyword, "content", "k", pattern="deploy*", actions=["notify", {"set_tweak": "highlight"}])
    changed = UserRules()
    changed.set_attribute("underride", ".m.rule.call", "enabled", False)
    aud = audience({"@u1:example.org": own, "@u2:example.org": muted_elsewhere, "@u3:example.org": muted_here,
                    "@u4:example.org": keyword, "@u5:example.org": changed}, u1=None, u2=None, u3=None, u4=None,
                   u5=None)
    assert aud.always == {"@u3:example.org"}
    assert candidates(aud, message("hi")) == {"@u1:example.org", "@u3:example.org"}
    assert candidates(aud, message("hi", sender="@zed:example.org")) == {"@u3:example.org"}
    assert candidates(aud, message("deploying now", sender="@zed:example.org")) == {"@u3:example.org",
                                                                                     "@u4:example.org"}


def test_candidates_cover_every_member_whose_outcome_differs():
    """For every member who is not a candidate, the generic outcome is their outcome."""
    mute = UserRules()
    put(mute, "room", ROOM, actions=[])
    keyword = UserRules()
    put(keyword, "content", "k", pattern="ship", actions=["notify", {"set_tweak": "highlight"}])
    rules_by_user = {"@m:example.org": mute, "@k:example.org": keyword}
    aud = audience(rules_by_user, m="Em", k="Kay", alice="Alice", bob="Bob")
    for event in (message("ship it"), message("hi Alice"), message("x", **{"m.mentions": {"room": True}}),
                  message("bob?", sender="@zed:example.org")):
        narrowed = DEFAULT_RULESET.narrow(event)
        found = aud.candidates(event, narrowed, "m.room.message", "@zed:example.org")
        generic = matching_rule(narrowed, event, Member("@nobody:example.org"))
        for user_id in aud.local - found:
            rules = rules_by_user[user_id].compile() if user_id in rules_by_user else DEFAULT_RULESET
            own = matching_rule(rules, event, Member(user_id, aud.joined[user_id].content.get("displayname")))
            assert (own.actions if own else ()) == (generic.actions if generic else ()), (user_id, event.flat)


def test_a_room_upgrade_copies_the_enabled_rules_about_the_old_room():
    new_room = "!replacement:example.org"
    rules = UserRules()
    put(rules, "room", ROOM, actions=[])
    put(rules, "override", "mute", actions=[], conditions=[
        {"kind": "event_match", "key": "room_id", "pattern": ROOM},
        {"kind": "event_match", "key": "type", "pattern": "m.room.message"}])
    put(rules, "underride", "off", actions=["notify"], conditions=[{"kind": "event_match", "key": "room_id", "pattern": ROOM}])
    rules.set_attribute("underride", "off", "enabled", False)
    put(rules, "override", "elsewhere", actions=[], conditions=[
        {"kind": "event_match", "key": "room_id", "pattern": "!other:example.org"}])

    assert rules.copy_room_rules(ROOM, new_room) is True
    assert rules.find("room", new_room)["actions"] == []
    copied = rules.find("override", new_room)
    assert copied["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": new_room},
                                    {"kind": "event_match", "key": "type", "pattern": "m.room.message"}]
    assert rules.find("override", "mute")["conditions"][0]["pattern"] == ROOM  # the original stays
    assert [rule["rule_id"] for rule in rules.own["underride"]] == ["off"]  # disabled: not copied
    assert actions_for(rules, message("hello", room=new_room)) == ()
    # Copying again changes nothing: the copies exist.
    assert rules.copy_room_rules(ROOM, new_room) is False
