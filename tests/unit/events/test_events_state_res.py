"""State resolution on hand-built forks."""

import pytest

from event_builders import BOB, CHARLIE, CREATOR, basic_room
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.events.state_res import _auth_state_for, _conflicted_state_subgraph, resolve_state

V2_VERSIONS = ["2", "6", "11", "12"]
TOPIC = ("m.room.topic", "")
JOIN_RULES = ("m.room.join_rules", "")
POWER_LEVELS = ("m.room.power_levels", "")


def resolve(room, *forks, **kwargs):
    return resolve_state(room.room_version, [fork.state_ids() for fork in forks], room.events, **kwargs)


def admin_room(version):
    """Alice is the admin (100, or creator in v12), Bob a moderator (50), Charlie has 0."""
    rv = ROOM_VERSIONS[version]
    users = {BOB: 50} if rv.privileged_creators else {CREATOR: 100, BOB: 50}
    room = basic_room(version, join_rule="public", users=users)
    room.member(BOB, "join")
    room.member(CHARLIE, "join")
    room.send("m.room.topic", CREATOR, {"topic": "original"}, state_key="")
    return room


@pytest.mark.parametrize("version", ["1"] + V2_VERSIONS)
def test_no_conflict_is_the_union(version):
    room = admin_room(version)
    assert resolve(room, room) == room.state_ids()
    assert resolve(room, room, room.fork()) == room.state_ids()
    assert resolve_state(room.room_version, [], room.events) == {}


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_key_present_in_one_fork_only(version):
    room = admin_room(version)
    fork = room.fork()
    name = fork.send("m.room.name", BOB, {"name": "n"}, state_key="")
    assert resolve(room, room, fork)[("m.room.name", "")] == name.event_id


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_topic_conflict_newest_timestamp_wins(version):
    room = admin_room(version)
    left, right = room.fork(), room.fork()
    older = left.send("m.room.topic", CREATOR, {"topic": "left"}, state_key="", ts=5000)
    newer = right.send("m.room.topic", BOB, {"topic": "right"}, state_key="", ts=6000)
    assert resolve(room, left, right)[TOPIC] == newer.event_id
    assert resolve(room, right, left)[TOPIC] == newer.event_id
    assert older.event_id != newer.event_id


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_topic_conflict_same_timestamp_larger_event_id_wins(version):
    room = admin_room(version)
    left, right = room.fork(), room.fork()
    one = left.send("m.room.topic", CREATOR, {"topic": "a"}, state_key="", ts=5000)
    two = right.send("m.room.topic", BOB, {"topic": "b"}, state_key="", ts=5000)
    assert resolve(room, left, right)[TOPIC] == max(one.event_id, two.event_id)


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_ban_beats_concurrent_topic_change(version):
    room = admin_room(version)
    room.send("m.room.power_levels", CREATOR, {"users": room.state[POWER_LEVELS].content["users"] | {CHARLIE: 50},
                                                "state_default": 50}, state_key="")
    left, right = room.fork(), room.fork()
    ban = left.member(CHARLIE, "ban", sender=CREATOR)
    right.send("m.room.topic", CHARLIE, {"topic": "charlie's"}, state_key="", ts=left.clock + 100)
    resolved = resolve(room, left, right)
    assert resolved[("m.room.member", CHARLIE)] == ban.event_id
    # Charlie's topic is checked against the resolved state, where Charlie is banned.
    assert resolved[TOPIC] == room.state[TOPIC].event_id


@pytest.mark.parametrize("version", V2_VERSIONS)
@pytest.mark.parametrize("bob_first", [True, False])
def test_power_level_conflict_ordered_by_timestamp(version, bob_first):
    room = admin_room(version)
    # Bob's own events carry the same power, so their timestamps decide the order.
    left, right = room.fork(), room.fork()
    demoted_users = room.state[POWER_LEVELS].content["users"] | {BOB: 0}
    demote = left.send("m.room.power_levels", BOB, {"users": demoted_users}, state_key="", ts=5000)
    public_to_invite = right.send("m.room.join_rules", BOB, {"join_rule": "invite"}, state_key="",
                                  ts=4000 if bob_first else 6000)
    resolved = resolve(room, left, right)
    assert resolved[POWER_LEVELS] == demote.event_id
    # Bob's join rule change survives only if it sorts before his demotion.
    expected = public_to_invite.event_id if bob_first else room.state[JOIN_RULES].event_id
    assert resolved[JOIN_RULES] == expected


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_higher_power_sorts_first(version):
    # Two power level events at the same time: the one from the more powerful sender
    # is applied first, so the other (from the less powerful one) is applied last and wins
    # when allowed.
    room = admin_room(version)
    users = room.state[POWER_LEVELS].content["users"]
    room.send("m.room.power_levels", CREATOR, {"users": users | {CHARLIE: 50}}, state_key="")
    left, right = room.fork(), room.fork()
    left.send("m.room.power_levels", CREATOR, {"users": users | {CHARLIE: 50}, "events_default": 1},
              state_key="", ts=5000)
    by_charlie = right.send("m.room.power_levels", CHARLIE, {"users": users | {CHARLIE: 50}, "events_default": 2},
                            state_key="", ts=5000)
    assert resolve(room, left, right)[POWER_LEVELS] == by_charlie.event_id


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_membership_conflict_join_vs_kick(version):
    room = admin_room(version)
    left, right = room.fork(), room.fork()
    kick = left.member(CHARLIE, "leave", sender=BOB)
    right.send("m.room.name", CHARLIE, {"name": "x"}, state_key="", check=False)
    resolved = resolve(room, left, right)
    assert resolved[("m.room.member", CHARLIE)] == kick.event_id
    assert ("m.room.name", "") not in resolved  # Charlie lacks the level, and is kicked.


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_precomputed_auth_chains_give_the_same_result(version):
    room = admin_room(version)
    left, right = room.fork(), room.fork()
    left.member(CHARLIE, "ban", sender=CREATOR)
    right.send("m.room.topic", BOB, {"topic": "b"}, state_key="")
    chains = {}

    def chain(event_id):
        if event_id not in chains:
            result = set()
            for auth_id in room.events[event_id].auth_event_ids:
                result |= {auth_id} | chain(auth_id)
            chains[event_id] = result
        return chains[event_id]

    assert resolve(room, left, right, auth_chain_ids_of=chain) == resolve(room, left, right)


def test_rejected_auth_events_are_not_used():
    room = admin_room("11")
    topic = room.send("m.room.topic", BOB, {"topic": "b"}, state_key="")
    bob_key = ("m.room.member", BOB)
    assert bob_key in _auth_state_for(room.room_version, topic, {}, room.events)
    room.state[bob_key].rejected_reason = "test"
    assert bob_key not in _auth_state_for(room.room_version, topic, {}, room.events)
    # The resolved state still takes precedence over the event's own auth events.
    assert bob_key in _auth_state_for(room.room_version, topic, room.state_ids(), room.events)


def test_conflicted_state_subgraph():
    room = admin_room("12")
    events = room.events
    create, power_levels = room.create.event_id, room.state[POWER_LEVELS].event_id
    top = room.send("m.room.topic", BOB, {"topic": "x"}, state_key="")
    # Paths from the topic down to the power levels include Bob's join but not Charlie's.
    subgraph = _conflicted_state_subgraph({top.event_id, power_levels}, events)
    assert {top.event_id, power_levels, room.state[("m.room.member", BOB)].event_id} <= subgraph
    assert room.state[("m.room.member", CHARLIE)].event_id not in subgraph
    assert create not in subgraph  # v12 events do not cite the create event
    assert _conflicted_state_subgraph({top.event_id}, events) == {top.event_id}


def test_v12_starts_from_empty_state_but_keeps_unconflicted():
    room = admin_room("12")
    left, right = room.fork(), room.fork()
    left.send("m.room.topic", CREATOR, {"topic": "a"}, state_key="", ts=5000)
    right_topic = right.send("m.room.topic", BOB, {"topic": "b"}, state_key="", ts=6000)
    resolved = resolve(room, left, right)
    assert resolved[TOPIC] == right_topic.event_id
    unconflicted = {k: v for k, v in room.state_ids().items() if k != TOPIC}
    assert {k: resolved[k] for k in unconflicted} == unconflicted


def test_v1_takes_deepest_event_passing_auth():
    room = admin_room("1")
    left, right = room.fork(), room.fork()
    left.send("m.room.topic", CREATOR, {"topic": "shallow"}, state_key="")
    right.send("m.room.message", BOB, {"body": "filler"})
    deep = right.send("m.room.topic", BOB, {"topic": "deep"}, state_key="")
    assert resolve(room, left, right)[TOPIC] == deep.event_id


def test_v1_power_levels_applied_oldest_first_until_one_fails():
    room = admin_room("1")
    users = room.state[POWER_LEVELS].content["users"]
    left, right = room.fork(), room.fork()
    demote_bob = left.send("m.room.power_levels", CREATOR, {"users": users | {BOB: 0}}, state_key="")
    right.send("m.room.message", BOB, {"body": "filler"})
    right.send("m.room.power_levels", BOB, {"users": users | {CHARLIE: 10}}, state_key="")
    assert resolve(room, left, right)[POWER_LEVELS] == demote_bob.event_id


@pytest.mark.parametrize("version", V2_VERSIONS)
def test_mainline_position_beats_timestamp(version):
    # A topic based on newer power levels is applied after one based on older power
    # levels, even though it is older by the clock.
    room = admin_room(version)
    users = room.state[POWER_LEVELS].content["users"]
    left, right = room.fork(), room.fork()
    left.send("m.room.topic", BOB, {"topic": "on old power levels"}, state_key="", ts=9000)
    right.send("m.room.power_levels", CREATOR, {"users": users, "events_default": 1}, state_key="", ts=4000)
    newer_based = right.send("m.room.topic", BOB, {"topic": "on new power levels"}, state_key="", ts=5000)
    assert resolve(room, left, right)[TOPIC] == newer_based.event_id
