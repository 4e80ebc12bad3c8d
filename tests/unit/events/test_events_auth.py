"""Authorisation rules of every room version, table-driven over versions."""

import math

import pytest
from unpaddedbase64 import encode_base64

from event_builders import ALL_VERSIONS, BOB, CHARLIE, CREATOR, Room, basic_room, key_for
from ranvier.events.auth import (
    AuthError,
    auth_state_from_auth_events,
    auth_types_for_event,
    check_auth,
    get_power_level,
    may_redact,
    notification_power_level,
    power_level_setting,
    required_power_level,
    room_creators,
)
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.events.signing import SigningKey, sign_json


def versions(condition):
    return [v for v in ALL_VERSIONS if condition(ROOM_VERSIONS[v])]


def allowed(room, event):
    try:
        room.check(event)
    except AuthError:
        return False
    return True


# --- m.room.create ------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_rules(version):
    rv = ROOM_VERSIONS[version]
    room = Room(version)
    base = {"room_version": version}
    if not rv.implicit_room_creator:
        base["creator"] = CREATOR

    def create(content, sender=CREATOR, **kwargs):
        event = room.make("m.room.create", sender, content, state_key="", auth_event_ids=[],
                          prev_event_ids=kwargs.pop("prev_event_ids", []), **kwargs)
        return allowed(room, event)

    assert create(base)
    assert not create(base, prev_event_ids=[room.create.event_id])
    assert not create({**base, "room_version": "999"})
    assert create({k: v for k, v in base.items() if k != "creator"}) is rv.implicit_room_creator
    # Before v12 the room ID's server must be the sender's.
    assert create(base, sender="@mallory:evil.example") is rv.room_id_is_create_event_id
    if rv.privileged_creators:
        assert create({**base, "additional_creators": [BOB]})
        assert not create({**base, "additional_creators": ["not-a-user"]})
        assert not create({**base, "additional_creators": BOB})


def test_v12_create_must_not_have_room_id():
    room = Room("12")
    event = room.make("m.room.create", CREATOR, {"room_version": "12"}, state_key="", auth_event_ids=[],
                      prev_event_ids=[])
    event.pdu["room_id"] = "!x"
    with pytest.raises(AuthError):
        room.check(event)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_needs_create_event_of_the_same_room(version):
    room = basic_room(version)
    event = room.make("m.room.message", CREATOR, {"body": "hi"})
    state_without_create = {k: v for k, v in room.state.items() if k[0] != "m.room.create"}
    with pytest.raises(AuthError):
        check_auth(room.room_version, event, state_without_create)
    other_room = Room(version, create_content={"org.example.other": True})
    other_room.room_id = other_room.create.room_id if other_room.room_version.room_id_is_create_event_id else "!b:a.example"
    other_create = other_room.make("m.room.create", CREATOR, other_room.create.content, state_key="",
                                   auth_event_ids=[], prev_event_ids=[])
    with pytest.raises(AuthError):
        check_auth(room.room_version, event, {**room.state, ("m.room.create", ""): other_create})
    room.create.rejected_reason = "test"
    with pytest.raises(AuthError):
        room.check(event)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_m_federate_false(version):
    room = Room(version, create_content={"m.federate": False})
    room.member(CREATOR, "join")
    room.send("m.room.join_rules", CREATOR, {"join_rule": "public"}, state_key="")
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "join"}, state_key=BOB))
    assert allowed(room, room.make("m.room.member", "@dave:a.example", {"membership": "join"},
                                   state_key="@dave:a.example"))


# --- joins --------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_creator_first_join_only_right_after_create(version):
    room = Room(version)
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "join"}, state_key=BOB))
    room.member(CREATOR, "join")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(
    "join_rule, invited, expected",
    [
        ("public", False, lambda rv: True),
        ("invite", False, lambda rv: False),
        ("invite", True, lambda rv: True),
        ("knock", False, lambda rv: False),
        ("knock", True, lambda rv: rv.knock_join_rule),
        ("restricted", True, lambda rv: rv.restricted_join_rule),
        ("knock_restricted", True, lambda rv: rv.knock_restricted_join_rule),
        ("private", True, lambda rv: False),
    ],
)
def test_join_by_join_rule(version, join_rule, invited, expected):
    room = basic_room(version, join_rule=join_rule)
    if invited:
        room.member(BOB, "invite", sender=CREATOR)
    assert allowed(room, room.make("m.room.member", BOB, {"membership": "join"}, state_key=BOB)) is expected(
        room.room_version
    )


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_join_cannot_be_for_someone_else_or_when_banned(version):
    room = basic_room(version, join_rule="public")
    assert not allowed(room, room.make("m.room.member", CREATOR, {"membership": "join"}, state_key=BOB))
    room.member(BOB, "ban", sender=CREATOR)
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "join"}, state_key=BOB))


@pytest.mark.parametrize("version, join_rule", [
    (version, join_rule)
    for join_rule, flag in (("restricted", "restricted_join_rule"), ("knock_restricted", "knock_restricted_join_rule"))
    for version in versions(lambda rv, flag=flag: getattr(rv, flag))
])
def test_restricted_join_via_authorising_user(version, join_rule):
    room = basic_room(version, join_rule=join_rule, users={CHARLIE: 0})
    room.send("m.room.power_levels", CREATOR, {"users": room.state[("m.room.power_levels", "")].content["users"],
                                                "invite": 10}, state_key="")
    via = {"membership": "join", "join_authorised_via_users_server": CREATOR}

    def join(content, signers=("a.example",)):
        return allowed(room, room.make("m.room.member", BOB, content, state_key=BOB, extra_signers=signers))

    assert join(via)
    assert not join({"membership": "join"})
    # The authorising server must have signed the event.
    assert not join(via, signers=())
    # The authorising user must be joined and able to invite.
    assert not join({"membership": "join", "join_authorised_via_users_server": "@ghost:a.example"})
    room.member(CHARLIE, "invite", sender=CREATOR)
    room.member(CHARLIE, "join")
    assert not join({"membership": "join", "join_authorised_via_users_server": CHARLIE}, signers=("c.example",))


# --- invites, leaves, kicks, bans, knocks ----------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invite_rules(version):
    room = basic_room(version, users={BOB: 0})
    room.send("m.room.power_levels", CREATOR,
              {"users": room.state[("m.room.power_levels", "")].content["users"], "invite": 50}, state_key="")
    room.member(BOB, "invite", sender=CREATOR)
    room.member(BOB, "join")
    # Bob is joined but below the invite level.
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "invite"}, state_key=CHARLIE))
    # Not joined senders cannot invite.
    assert not allowed(room, room.make("m.room.member", CHARLIE, {"membership": "invite"}, state_key="@d:d.example"))
    # Joined or banned targets cannot be invited.
    assert not allowed(room, room.make("m.room.member", CREATOR, {"membership": "invite"}, state_key=BOB))
    room.member(CHARLIE, "ban", sender=CREATOR)
    assert not allowed(room, room.make("m.room.member", CREATOR, {"membership": "invite"}, state_key=CHARLIE))
    assert allowed(room, room.make("m.room.member", CREATOR, {"membership": "invite"}, state_key="@d:d.example"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_leave_kick_ban_unban(version):
    rv = ROOM_VERSIONS[version]
    room = basic_room(version, join_rule="public", users={BOB: 50})
    room.member(BOB, "join")
    room.member(CHARLIE, "join")
    # Charlie (0) cannot kick Bob (50); Bob can kick Charlie; nobody kicks an equal.
    assert not allowed(room, room.make("m.room.member", CHARLIE, {"membership": "leave"}, state_key=BOB))
    assert allowed(room, room.make("m.room.member", BOB, {"membership": "leave"}, state_key=CHARLIE))
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "ban"}, state_key=CREATOR))
    # Leaving yourself is fine while joined or invited, not after leaving.
    assert allowed(room, room.make("m.room.member", CHARLIE, {"membership": "leave"}, state_key=CHARLIE))
    room.member(CHARLIE, "ban", sender=BOB)
    assert not allowed(room, room.make("m.room.member", CHARLIE, {"membership": "leave"}, state_key=CHARLIE))
    # Unbanning needs the ban level as well as the kick level.
    room.send("m.room.power_levels", CREATOR, {"users": {CREATOR: 100, BOB: 50} if not rv.privileged_creators
                                                else {BOB: 50}, "ban": 60}, state_key="")
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "leave"}, state_key=CHARLIE))
    assert allowed(room, room.make("m.room.member", CREATOR, {"membership": "leave"}, state_key=CHARLIE))
    # Non-members can do nothing to others.
    assert not allowed(room, room.make("m.room.member", "@x:x.example", {"membership": "ban"}, state_key=BOB))
    assert not allowed(room, room.make("m.room.member", BOB, {"membership": "dance"}, state_key=BOB))
    assert not allowed(room, room.make("m.room.member", BOB, {}, state_key=BOB))


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("join_rule", ["knock", "knock_restricted", "invite"])
def test_knock(version, join_rule):
    rv = ROOM_VERSIONS[version]
    room = basic_room(version, join_rule=join_rule)
    knock = room.make("m.room.member", BOB, {"membership": "knock"}, state_key=BOB)
    expected = rv.knock_join_rule and (
        join_rule == "knock" or (join_rule == "knock_restricted" and rv.knock_restricted_join_rule)
    )
    assert allowed(room, knock) is expected
    if expected:
        room.apply(knock)
        assert allowed(room, room.make("m.room.member", BOB, {"membership": "leave"}, state_key=BOB))
        assert not allowed(room, room.make("m.room.member", BOB, {"membership": "knock"}, state_key=CHARLIE))
        room.member(CHARLIE, "ban", sender=CREATOR)
        assert not allowed(room, room.make("m.room.member", CHARLIE, {"membership": "knock"}, state_key=CHARLIE))


def _third_party_setup(version):
    room = basic_room(version)
    identity_key = SigningKey(b"i" * 32, "0")
    room.send("m.room.third_party_invite", CREATOR,
              {"display_name": "b...", "key_validity_url": "https://id.example/v",
               "public_key": identity_key.public_key_base64,
               "public_keys": [{"public_key": encode_base64(bytes(key_for("other").verify_key))}]},
              state_key="tok")
    return room, identity_key


@pytest.mark.parametrize("version", ["1", "6", "11", "12"])
def test_third_party_invite(version):
    room, identity_key = _third_party_setup(version)
    signed = sign_json({"mxid": BOB, "token": "tok"}, "id.example", identity_key)

    def invite(signed_object, sender=CREATOR, target=BOB):
        content = {"membership": "invite", "third_party_invite": {"display_name": "b", "signed": signed_object}}
        return allowed(room, room.make("m.room.member", sender, content, state_key=target))

    assert invite(signed)
    # A key from public_keys also counts.
    assert invite(sign_json({"mxid": BOB, "token": "tok"}, "id.example", key_for("other")))
    assert not invite(sign_json({"mxid": BOB, "token": "tok"}, "id.example", SigningKey(b"z" * 32, "0")))
    assert not invite({**signed, "mxid": CHARLIE})
    assert not invite(signed, target=CHARLIE)
    assert not invite(sign_json({"mxid": BOB, "token": "nope"}, "id.example", identity_key))
    assert not invite({"mxid": BOB})
    room.member(CHARLIE, "invite", sender=CREATOR)
    room.member(CHARLIE, "join")
    assert not invite(signed, sender=CHARLIE)


# --- non-membership events ----------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_message_and_state_levels(version):
    room = basic_room(version, join_rule="public")
    room.member(BOB, "join")
    assert allowed(room, room.make("m.room.message", BOB, {"body": "hi"}))
    assert not allowed(room, room.make("m.room.message", CHARLIE, {"body": "not joined"}))
    assert not allowed(room, room.make("m.room.topic", BOB, {"topic": "t"}, state_key=""))
    assert allowed(room, room.make("m.room.topic", CREATOR, {"topic": "t"}, state_key=""))
    # State keys that are user IDs belong to that user.
    assert allowed(room, room.make("org.example.mine", CREATOR, {}, state_key=CREATOR))
    assert not allowed(room, room.make("org.example.mine", CREATOR, {}, state_key=BOB))
    assert not allowed(room, room.make("m.room.third_party_invite", CHARLIE, {}, state_key="x"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_aliases_special_case(version):
    rv = ROOM_VERSIONS[version]
    room = basic_room(version)
    # A non-member may set the aliases of its own server only in v1-v5.
    own = room.make("m.room.aliases", BOB, {"aliases": ["#a:b.example"]}, state_key="b.example")
    assert allowed(room, own) is rv.special_case_aliases_auth
    other = room.make("m.room.aliases", BOB, {"aliases": []}, state_key="a.example")
    assert not allowed(room, other)
    # From v6 the usual state rules apply.
    by_admin = room.make("m.room.aliases", CREATOR, {"aliases": []}, state_key="b.example")
    assert allowed(room, by_admin) is not rv.special_case_aliases_auth


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_redaction_rules(version):
    rv = ROOM_VERSIONS[version]
    room = basic_room(version, join_rule="public")
    room.member(BOB, "join")
    theirs = room.send("m.room.message", CREATOR, {"body": "x"})
    mine = room.send("m.room.message", BOB, {"body": "y"})
    redact_theirs = room.make("m.room.redaction", BOB, {}, redacts=theirs.event_id)
    redact_mine = room.make("m.room.redaction", BOB, {}, redacts=mine.event_id)
    # v1/v2: only with the redact level or for events from the same server (by event ID).
    assert allowed(room, redact_theirs) is not rv.redaction_in_auth_rules
    assert allowed(room, redact_mine)
    assert allowed(room, room.make("m.room.redaction", CREATOR, {}, redacts=mine.event_id))


# --- power levels ---------------------------------------------------------------------


def _levels_room(version, **extra):
    rv = ROOM_VERSIONS[version]
    room = Room(version)
    room.member(CREATOR, "join")
    users = {BOB: 50} if rv.privileged_creators else {CREATOR: 100, BOB: 50}
    room.send("m.room.power_levels", CREATOR, {"users": users, **extra}, state_key="")
    room.send("m.room.join_rules", CREATOR, {"join_rule": "public"}, state_key="")
    room.member(BOB, "join")
    room.member(CHARLIE, "join")
    return room, users


def _pl_allowed(room, sender, content):
    return allowed(room, room.make("m.room.power_levels", sender, content, state_key=""))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_power_level_changes(version):
    room, users = _levels_room(version, state_default=40)
    assert _pl_allowed(room, BOB, {"users": {**users, CHARLIE: 50}, "state_default": 40})
    assert not _pl_allowed(room, BOB, {"users": {**users, CHARLIE: 51}, "state_default": 40})
    # Bob may lower himself but not an equal, nor raise himself.
    assert _pl_allowed(room, BOB, {"users": {**users, BOB: 10}, "state_default": 40})
    assert not _pl_allowed(room, BOB, {"users": {**users, BOB: 60}, "state_default": 40})
    # Top-level settings above the sender cannot be set or changed.
    assert not _pl_allowed(room, BOB, {"users": users, "state_default": 40, "ban": 60})
    assert _pl_allowed(room, BOB, {"users": users, "state_default": 40, "ban": 50})
    assert not _pl_allowed(room, BOB, {"users": users, "state_default": 40, "events": {"m.room.name": 99}})
    # Users must be keyed by user IDs.
    assert not _pl_allowed(room, CREATOR, {"users": {**users, "not-a-user": 5}, "state_default": 40})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_cannot_demote_equal(version):
    room, users = _levels_room(version, state_default=40)
    room.send("m.room.power_levels", CREATOR, {"users": {**users, CHARLIE: 50}, "state_default": 40}, state_key="")
    assert not _pl_allowed(room, BOB, {"users": {**users, CHARLIE: 0}, "state_default": 40})
    assert not _pl_allowed(room, BOB, {"users": {**users, CHARLIE: 49}, "state_default": 40})
    assert _pl_allowed(room, CREATOR, {"users": {**users, CHARLIE: 0}, "state_default": 40})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_notifications_protected_from_v6(version):
    rv = ROOM_VERSIONS[version]
    room, users = _levels_room(version, state_default=40, notifications={"room": 100})
    changed = _pl_allowed(room, BOB, {"users": users, "state_default": 40, "notifications": {"room": 0}})
    assert changed is not rv.limit_notifications_power_levels


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(
    "content, accepted_before_v10",
    [
        ({"ban": "50"}, True),
        ({"ban": " +050 "}, True),
        ({"events": {"m.room.name": "50"}}, True),
        ({"users": {BOB: "10"}}, True),
        ({"ban": "fifty"}, False),
        ({"users": {BOB: True}}, False),
        ({"events": ["m.room.name"]}, False),
    ],
)
def test_string_power_levels(version, content, accepted_before_v10):
    rv = ROOM_VERSIONS[version]
    room, users = _levels_room(version)
    merged = {"users": {**users, **content.get("users", {})}, **{k: v for k, v in content.items() if k != "users"}}
    assert _pl_allowed(room, CREATOR, merged) is (accepted_before_v10 and not rv.enforce_int_power_levels)


def test_float_power_levels_read_in_v1_to_v5():
    room, users = _levels_room("1")
    room.send("m.room.power_levels", CREATOR, {"users": {**users, BOB: 50.57}}, state_key="", check=False)
    assert get_power_level(room.state, BOB) == 50


@pytest.mark.parametrize("version", ["11", "12"])
def test_v12_creators(version):
    rv = ROOM_VERSIONS[version]
    room = Room(version, create_content={"additional_creators": [BOB]})
    room.member(CREATOR, "join")
    room.send("m.room.join_rules", CREATOR, {"join_rule": "public"}, state_key="")
    room.member(BOB, "join")
    if rv.privileged_creators:
        assert room_creators(room.create) == {CREATOR, BOB}
        assert get_power_level(room.state, BOB) == math.inf
        assert not _pl_allowed(room, CREATOR, {"users": {BOB: 100}})
        assert _pl_allowed(room, CREATOR, {"users": {CHARLIE: 100}})
        # Creators cannot kick one another.
        assert not allowed(room, room.make("m.room.member", CREATOR, {"membership": "leave"}, state_key=BOB))
    else:
        assert room_creators(room.create) == {CREATOR}
        assert get_power_level(room.state, CREATOR) == 100
        assert get_power_level(room.state, BOB) == 0


# --- helpers and auth event selection ------------------------------------------------


def test_power_level_helpers_and_defaults():
    room = Room("11")
    room.member(CREATOR, "join")
    state = room.state
    assert get_power_level(state, CREATOR) == 100 and get_power_level(state, BOB) == 0
    assert required_power_level(state, "m.room.message", False) == 0
    assert required_power_level(state, "m.room.topic", True) == 50
    assert [power_level_setting(state, n) for n in ("ban", "kick", "redact", "invite")] == [50, 50, 50, 0]
    assert notification_power_level(state) == 50
    room.send("m.room.power_levels", CREATOR, {"users": {CREATOR: 100}, "users_default": 5, "events_default": 7,
                                                "events": {"m.room.topic": 20}, "notifications": {"room": 30}},
              state_key="")
    assert get_power_level(state, BOB) == 5
    assert required_power_level(state, "m.room.topic", True) == 20
    assert required_power_level(state, "m.room.message", False) == 7
    assert notification_power_level(state) == 30
    assert may_redact(state, CREATOR, BOB)
    assert may_redact(state, "@other:a.example", CREATOR)
    assert not may_redact(state, BOB, CREATOR)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_auth_types_for_event(version):
    rv = ROOM_VERSIONS[version]
    create = [("m.room.create", "")] if rv.create_event_in_auth_events else []
    base = create + [("m.room.power_levels", ""), ("m.room.member", BOB)]
    assert auth_types_for_event(rv, "m.room.create", CREATOR, "", {}) == []
    assert auth_types_for_event(rv, "m.room.message", BOB, None, {}) == base
    join = auth_types_for_event(rv, "m.room.member", BOB, BOB,
                                {"membership": "join", "join_authorised_via_users_server": CREATOR})
    expected_join = base + [("m.room.join_rules", "")]
    if rv.restricted_join_rule:
        expected_join.append(("m.room.member", CREATOR))
    assert join == expected_join
    invite = auth_types_for_event(rv, "m.room.member", CREATOR, BOB,
                                  {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}})
    assert invite == create + [("m.room.power_levels", ""), ("m.room.member", CREATOR), ("m.room.member", BOB),
                               ("m.room.join_rules", ""), ("m.room.third_party_invite", "t")]
    leave = auth_types_for_event(rv, "m.room.member", CREATOR, BOB, {"membership": "leave"})
    assert ("m.room.join_rules", "") not in leave


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_auth_state_from_auth_events(version):
    rv = ROOM_VERSIONS[version]
    room = basic_room(version, join_rule="public")
    event = room.make("m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    auth_events = [room.events[event_id] for event_id in event.auth_event_ids]
    state = auth_state_from_auth_events(rv, event, auth_events, create_event=room.create)
    assert state[("m.room.create", "")] is room.create
    check_auth(rv, event, state)
    with pytest.raises(AuthError):
        auth_state_from_auth_events(rv, event, auth_events + auth_events[:1], create_event=room.create)
    topic = room.send("m.room.topic", CREATOR, {"topic": "t"}, state_key="")
    with pytest.raises(AuthError):
        auth_state_from_auth_events(rv, event, auth_events + [topic], create_event=room.create)
    if rv.create_event_in_auth_events:
        without_create = [e for e in auth_events if e.type != "m.room.create"]
        with pytest.raises(AuthError):
            auth_state_from_auth_events(rv, event, without_create)
    else:
        with pytest.raises(AuthError):
            auth_state_from_auth_events(rv, event, auth_events)
        with pytest.raises(AuthError):
            auth_state_from_auth_events(rv, event, auth_events + [room.create], create_event=room.create)
    auth_events[-1].rejected_reason = "auth"
    with pytest.raises(AuthError):
        auth_state_from_auth_events(rv, event, auth_events, create_event=room.create)


def test_auth_error_has_reason():
    room = basic_room("11")
    with pytest.raises(AuthError) as caught:
        room.check(room.make("m.room.message", BOB, {"body": "x"}))
    assert "not joined" in caught.value.reason
