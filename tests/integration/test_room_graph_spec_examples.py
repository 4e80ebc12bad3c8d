"""The server-server API's own examples, played through `RoomServer.input`: the forward
extremities a new event names (E1..E6), soft failure of an event evading a ban and the
merge that follows (A, B, C, D), and two names set on two branches (E0..E5)."""

from __future__ import annotations

from graph_support import BOB, CAROL, RemoteServer, after
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.rooms.input import EventKind

V11 = ROOM_VERSIONS["11"]
NAME = ("m.room.name", "")
TOPIC = ("m.room.topic", "")


async def shared_room(api, hs, *remote_members):
    """Alice's public room, joined by remote users; (alice, room_id, server, state, last event)."""
    alice = await api.register("alice")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    remote = RemoteServer()
    head = await hs.rooms.head(room_id)
    state = dict(head.state)
    last = (await hs.rooms.store.get_events([head.latest_event_id]))[head.latest_event_id]
    for user_id in remote_members:
        join = remote.event(room_id, V11, state, [last], user_id, "m.room.member", {"membership": "join"}, user_id)
        assert (await hs.rooms.input(room_id, [join], EventKind.REMOTE))[join.event_id].accepted
        state, last = after(state, join), join
    return alice, room_id, remote, state, last


def message(remote, room_id, state, prevs, body):
    return remote.event(room_id, V11, state, prevs, BOB, "m.room.message", {"msgtype": "m.text", "body": body})


async def test_a_new_event_names_every_event_without_children(api, homeserver):
    """E1 <- E2 <- E3 <- E4, and E2 <- E5 <- E6: a new event names E4 and E6."""
    hs = homeserver
    alice, room_id, remote, state, e1 = await shared_room(api, hs, BOB)
    e2 = message(remote, room_id, state, [e1], "E2")
    e3 = message(remote, room_id, state, [e2], "E3")
    e4 = message(remote, room_id, state, [e3], "E4")
    e5 = message(remote, room_id, state, [e2], "E5")
    e6 = message(remote, room_id, state, [e5], "E6")
    outcomes = await hs.rooms.input(room_id, [e6, e4, e5, e3, e2], EventKind.REMOTE)  # any order
    assert all(outcome.accepted for outcome in outcomes.values())
    assert set((await hs.rooms.head(room_id)).extremities) == {e4.event_id, e6.event_id}
    new = await api.send_text(alice["access_token"], room_id, "new")
    assert sorted((await hs.rooms.store.get_events([new]))[new].prev_event_ids) == sorted([e4.event_id, e6.event_id])


async def test_an_event_evading_a_ban_is_soft_failed_and_a_merge_keeps_the_ban(api, homeserver):
    """A; B bans X; C, X's topic, names A: C is soft-failed, never named by new events.
    D names both B and C: it is handled as usual, and state resolution v2 puts the ban
    before the topic, which then fails."""
    hs = homeserver
    alice, room_id, remote, state, a = await shared_room(api, hs, BOB, CAROL)
    levels = {**state[("m.room.power_levels", "")].content}
    levels["users"] = {**levels["users"], BOB: 60, CAROL: 50}  # Bob may ban Carol, Carol may set the topic
    status, _ = await api.put(f"/rooms/{room_id}/state/m.room.power_levels", levels, token=alice["access_token"])
    assert status == 200
    head = await hs.rooms.head(room_id)
    state = dict(head.state)
    a = (await hs.rooms.store.get_events([head.latest_event_id]))[head.latest_event_id]
    b = remote.event(room_id, V11, state, [a], BOB, "m.room.member", {"membership": "ban"}, CAROL)
    c = remote.event(room_id, V11, state, [a], CAROL, "m.room.topic", {"topic": "evading"}, "")
    assert (await hs.rooms.input(room_id, [b], EventKind.REMOTE))[b.event_id].accepted
    outcome = (await hs.rooms.input(room_id, [c], EventKind.REMOTE))[c.event_id]
    assert outcome.soft_failed and outcome.rejected_reason is None
    assert list((await hs.rooms.head(room_id)).extremities) == [b.event_id]

    d = message(remote, room_id, after(state, b), [b, c], "D")
    assert (await hs.rooms.input(room_id, [d], EventKind.REMOTE))[d.event_id].accepted
    head = await hs.rooms.head(room_id)
    assert list(head.extremities) == [d.event_id]
    assert head.state[("m.room.member", CAROL)].event_id == b.event_id
    assert TOPIC not in head.state
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b"}, token=alice["access_token"])
    assert [e["event_id"] for e in page["chunk"]][:2] == [d.event_id, b.event_id]  # C is never shown


async def test_two_names_on_two_branches_are_resolved_where_they_meet(api, homeserver):
    """E0 <- E1, E1 <- E2 <- E3 and E1 <- E4, E5 names E3 and E4: E3 and E4 both set the
    name; the one sent later (by the clock, both senders equally powerful) is the name at E5."""
    hs = homeserver
    alice, room_id, remote, state, e0 = await shared_room(api, hs, BOB, CAROL)
    levels = {**state[("m.room.power_levels", "")].content}
    levels["users"] = {**levels["users"], BOB: 50, CAROL: 50}
    await api.put(f"/rooms/{room_id}/state/m.room.power_levels", levels, token=alice["access_token"])
    head = await hs.rooms.head(room_id)
    state = dict(head.state)
    e1 = (await hs.rooms.store.get_events([head.latest_event_id]))[head.latest_event_id]
    e2 = message(remote, room_id, state, [e1], "E2")
    e3 = remote.event(room_id, V11, state, [e2], BOB, "m.room.name", {"name": "by bob"}, "", ts=7_000_000_000_002)
    e4 = remote.event(room_id, V11, state, [e1], CAROL, "m.room.name", {"name": "by carol"}, "",
                      ts=7_000_000_000_001)
    e5 = message(remote, room_id, after(state, e3), [e3, e4], "E5")
    outcomes = await hs.rooms.input(room_id, [e2, e3, e4, e5], EventKind.REMOTE)
    assert all(outcome.accepted for outcome in outcomes.values())
    e5_row = (await hs.rooms.store.get_event_rows([e5.event_id]))[e5.event_id]
    state_at_e5 = await hs.rooms.state_group_ids(e5_row.state_group_before)
    assert state_at_e5[NAME] == e3.event_id
    assert (await hs.rooms.head(room_id)).state[NAME].event_id == e3.event_id
