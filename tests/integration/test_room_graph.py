"""Rooms as a graph: events of another server enter through `RoomServer.input`, forks and
merges, state resolution of the current state, soft failure, rejection, backfilled
history and outliers, and what clients see of each (/messages, /state, /sync)."""

from __future__ import annotations

import pytest

from graph_support import BOB, CAROL, REMOTE, RemoteServer, after
from ranvier.events.auth import auth_types_for_event
from ranvier.events.model import build_event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.rooms.input import EventKind

DAVE = f"@dave:{REMOTE}"
PL = ("m.room.power_levels", "")


async def room_with_remote_members(api, hs, *members: str, version: str = "11"):
    """Alice's public room on this server, which remote users join; returns
    (alice, room_id, remote server, state, last event)."""
    alice = await api.register("alice")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", room_version=version)
    remote = RemoteServer()
    head = await hs.rooms.head(room_id)
    state = dict(head.state)
    last = (await hs.rooms.store.get_events(head.prev_event_ids()))[head.latest_event_id]
    for user_id in members:
        join = remote.event(room_id, head.version, state, [last], user_id, "m.room.member", {"membership": "join"},
                            user_id)
        outcome = (await hs.rooms.input(room_id, [join], EventKind.REMOTE))[join.event_id]
        assert outcome.accepted and outcome.stream_ordering > 0
        state, last = after(state, join), join
    return alice, room_id, remote, state, last


async def messages(api, token, room_id, limit=50):
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "limit": str(limit)}, token=token)
    assert status == 200, page
    return page["chunk"]


async def test_a_fork_is_merged_by_the_next_local_event(api, homeserver):
    hs = homeserver
    alice, room_id, remote, state, bob_join = await room_with_remote_members(api, hs, BOB)
    token = alice["access_token"]
    since = (await api.sync(token))["next_batch"]
    ours = await api.send_text(token, room_id, "ours")
    theirs = remote.event(room_id, ROOM_VERSIONS["11"], state, [bob_join], BOB, "m.room.message",
                          {"msgtype": "m.text", "body": "theirs"})
    assert (await hs.rooms.input(room_id, [theirs], EventKind.REMOTE))[theirs.event_id].accepted
    head = await hs.rooms.head(room_id)
    assert set(head.extremities) == {ours, theirs.event_id}

    merge = await api.send_text(token, room_id, "merge")
    merged = (await hs.rooms.store.get_events([merge]))[merge]
    assert sorted(merged.prev_event_ids) == sorted([ours, theirs.event_id])
    assert merged.depth == bob_join.depth + 2
    assert list((await hs.rooms.head(room_id)).extremities) == [merge]

    bodies = [e["content"].get("body") for e in await messages(api, token, room_id) if e["type"] == "m.room.message"]
    assert bodies == ["merge", "theirs", "ours"]  # topological order, the branches by arrival
    synced = await api.sync(token, since=since)
    timeline = synced["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"]["body"] for e in timeline] == ["ours", "theirs", "merge"]


@pytest.mark.parametrize("bob_first", [True, False])
async def test_power_level_changes_on_two_branches_resolve_whatever_the_order(api, homeserver, bob_first):
    """Bob and Carol, both at 100, change the power levels at once: each change is allowed by
    the room's current state when it arrives, so the room has two extremities and its
    current state is their resolution, the later change applied last."""
    hs = homeserver
    alice, room_id, remote, state, last = await room_with_remote_members(api, hs, BOB, CAROL)
    levels = dict(state[PL].content, users={**state[PL].content["users"], BOB: 100, CAROL: 100})
    status, _ = await api.put(f"/rooms/{room_id}/state/m.room.power_levels", levels, token=alice["access_token"])
    assert status == 200
    head = await hs.rooms.head(room_id)
    state = dict(head.state)
    parent = (await hs.rooms.store.get_events([head.latest_event_id]))[head.latest_event_id]
    version = ROOM_VERSIONS["11"]
    by_bob = remote.event(room_id, version, state, [parent], BOB, "m.room.power_levels",
                          {**levels, "events_default": 10}, "", ts=5_000_000_000_000)
    by_carol = remote.event(room_id, version, state, [parent], CAROL, "m.room.power_levels",
                            {**levels, "state_default": 60}, "", ts=5_000_000_000_001)
    for event in ([by_bob, by_carol] if bob_first else [by_carol, by_bob]):
        assert (await hs.rooms.input(room_id, [event], EventKind.REMOTE))[event.event_id].accepted
    head = await hs.rooms.head(room_id)
    assert set(head.extremities) == {by_bob.event_id, by_carol.event_id}
    assert head.state[PL].event_id == by_carol.event_id  # the later one, applied last, wins
    status, current = await api.get(f"/rooms/{room_id}/state/m.room.power_levels/", token=alice["access_token"])
    assert status == 200 and current["state_default"] == 60


@pytest.mark.parametrize("demotion_first", [True, False])
async def test_a_demotion_and_a_topic_change_at_once_converge(api, homeserver, demotion_first):
    """Bob (100) demotes Carol (90) while Carol changes the topic. Whichever arrives
    first, the room ends with the demotion and the old topic: if the topic comes second it
    is soft-failed here (the current state forbids it) and a third server's event naming
    both branches resolves them; if it comes first, both are accepted and the current
    state is their resolution. Power events apply first, then the topic fails."""
    hs = homeserver
    alice, room_id, remote, state, last = await room_with_remote_members(api, hs, BOB, CAROL, DAVE)
    token = alice["access_token"]
    await api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "original"}, token=token)
    levels = dict(state[PL].content, users={**state[PL].content["users"], BOB: 100, CAROL: 90})
    await api.put(f"/rooms/{room_id}/state/m.room.power_levels", levels, token=token)
    head = await hs.rooms.head(room_id)
    state = dict(head.state)
    original_topic = state[("m.room.topic", "")].event_id
    parent = (await hs.rooms.store.get_events([head.latest_event_id]))[head.latest_event_id]
    version = ROOM_VERSIONS["11"]
    demote_carol = remote.event(room_id, version, state, [parent], BOB, "m.room.power_levels",
                                {**levels, "users": {**levels["users"], CAROL: 0}}, "")
    topic = remote.event(room_id, version, state, [parent], CAROL, "m.room.topic", {"topic": "carol's"}, "")
    first, second = (demote_carol, topic) if demotion_first else (topic, demote_carol)
    assert (await hs.rooms.input(room_id, [first], EventKind.REMOTE))[first.event_id].accepted
    outcome = (await hs.rooms.input(room_id, [second], EventKind.REMOTE))[second.event_id]
    head = await hs.rooms.head(room_id)
    if demotion_first:
        assert outcome.soft_failed and outcome.stream_ordering < 0
        assert list(head.extremities) == [demote_carol.event_id]
        merge = remote.event(room_id, version, after(state, demote_carol), [demote_carol, topic], DAVE,
                             "m.room.message", {"msgtype": "m.text", "body": "merged"})
        assert (await hs.rooms.input(room_id, [merge], EventKind.REMOTE))[merge.event_id].accepted
        head = await hs.rooms.head(room_id)
        assert list(head.extremities) == [merge.event_id]
    else:
        assert outcome.accepted
        assert set(head.extremities) == {demote_carol.event_id, topic.event_id}
    assert head.state[PL].event_id == demote_carol.event_id
    assert head.state[("m.room.topic", "")].event_id == original_topic
    status, current = await api.get(f"/rooms/{room_id}/state/m.room.topic/", token=token)
    assert status == 200 and current == {"topic": "original"}


async def test_an_event_evading_a_ban_is_soft_failed(api, homeserver):
    hs = homeserver
    alice, room_id, remote, state, bob_join = await room_with_remote_members(api, hs, BOB)
    token = alice["access_token"]
    status, _ = await api.post(f"/rooms/{room_id}/ban", {"user_id": BOB}, token=token)
    assert status == 200
    since = (await api.sync(token))["next_batch"]
    evading = remote.event(room_id, ROOM_VERSIONS["11"], state, [bob_join], BOB, "m.room.message",
                           {"msgtype": "m.text", "body": "still here"})
    outcome = (await hs.rooms.input(room_id, [evading], EventKind.REMOTE))[evading.event_id]
    assert outcome.soft_failed and outcome.rejected_reason is None
    head = await hs.rooms.head(room_id)
    assert evading.event_id not in head.extremities
    assert "still here" not in [e["content"].get("body") for e in await messages(api, token, room_id)]
    synced = await api.sync(token, since=since, timeout=0)
    assert room_id not in synced["rooms"]["join"]
    row = (await hs.rooms.store.get_event_rows([evading.event_id]))[evading.event_id]
    assert row.soft_failed  # stored: it is part of the graph


async def test_an_unauthorised_event_is_rejected_and_changes_no_state(api, homeserver):
    hs = homeserver
    alice, room_id, remote, state, bob_join = await room_with_remote_members(api, hs, BOB)
    version = ROOM_VERSIONS["11"]
    # Carol never joined: her topic is refused by its own auth events (she has no member event).
    topic = remote.event(room_id, version, state, [bob_join], CAROL, "m.room.topic", {"topic": "carol's"}, "")
    outcome = (await hs.rooms.input(room_id, [topic], EventKind.REMOTE))[topic.event_id]
    assert outcome.rejected_reason is not None and outcome.stream_ordering < 0
    stored = (await hs.rooms.store.get_event_rows([topic.event_id]))[topic.event_id]
    assert stored.event.rejected_reason == outcome.rejected_reason
    # An event after the rejected one is allowed; the state before it is the state before the rejected one.
    follow = remote.event(room_id, version, state, [topic], BOB, "m.room.message", {"msgtype": "m.text", "body": "ok"})
    assert (await hs.rooms.input(room_id, [follow], EventKind.REMOTE))[follow.event_id].accepted
    head = await hs.rooms.head(room_id)
    assert ("m.room.topic", "") not in head.state
    bodies = [e.get("content", {}).get("body") for e in await messages(api, alice["access_token"], room_id)]
    assert "ok" in bodies and all(e["event_id"] != topic.event_id
                                  for e in await messages(api, alice["access_token"], room_id))


async def test_a_local_event_names_the_ten_deepest_extremities(api, homeserver):
    hs = homeserver
    alice, room_id, remote, state, bob_join = await room_with_remote_members(api, hs, BOB)
    version = ROOM_VERSIONS["11"]
    branches = []
    for n in range(12):
        prevs = [bob_join] if n < 6 else [branches[n - 6]]  # six at one depth, six one deeper
        event = remote.event(room_id, version, state, prevs, BOB, "m.room.message", {"msgtype": "m.text",
                                                                                    "body": f"b{n}"})
        branches.append(event)
    await hs.rooms.input(room_id, branches[:6], EventKind.REMOTE)
    ours = await api.send_text(alice["access_token"], room_id, "ours")  # merges the six
    await hs.rooms.input(room_id, branches[6:], EventKind.REMOTE)
    head = await hs.rooms.head(room_id)
    assert len(head.extremities) == 7
    merge = await api.send_text(alice["access_token"], room_id, "merge")
    named = (await hs.rooms.store.get_events([merge]))[merge].prev_event_ids
    assert len(named) == 7 and ours in named
    for n in range(12):  # twelve more branches: a local event names ten of them, the deepest
        await hs.rooms.input(room_id, [remote.event(room_id, version, state, [bob_join], BOB, "m.room.message",
                                                    {"msgtype": "m.text", "body": f"c{n}"})], EventKind.REMOTE)
    deep = remote.event(room_id, version, state, [branches[6]], BOB, "m.room.message", {"msgtype": "m.text",
                                                                                         "body": "deep"})
    await hs.rooms.input(room_id, [deep], EventKind.REMOTE)
    head = await hs.rooms.head(room_id)
    assert len(head.extremities) == 14
    capped = await api.send_text(alice["access_token"], room_id, "capped")
    named = (await hs.rooms.store.get_events([capped]))[capped].prev_event_ids
    assert len(named) == 10 and merge in named and deep.event_id in named
    assert len((await hs.rooms.head(room_id)).extremities) == 5
    assert "capped" in [e["content"].get("body") for e in await messages(api, alice["access_token"], room_id)]


async def test_a_room_joined_through_another_server_and_its_backfilled_history(api, homeserver):
    """A room made on another server: its state arrives as outliers, the join with the
    state before it, then older history as backfill, which /messages shows before the join
    and /sync never reports."""
    hs = homeserver
    alice = await api.register("alice")
    remote = RemoteServer()
    version = ROOM_VERSIONS["11"]
    key = remote.key
    room_id = f"!history:{REMOTE}"
    created = []

    def add(sender, event_type, content, state_key=None, state=None):
        state = state if state is not None else after({}, *created)
        keys = auth_types_for_event(version, event_type, sender, state_key, content)
        event = build_event(version, room_id=room_id, sender=sender, type=event_type, content=content,
                            state_key=state_key, prev_event_ids=[created[-1].event_id] if created else [],
                            auth_event_ids=[state[k].event_id for k in keys if k in state],
                            depth=len(created) + 1, origin_server_ts=1000 + len(created), signing_key=key,
                            server_name=REMOTE)
        created.append(event)
        return event

    add(BOB, "m.room.create", {"room_version": "11"}, "")
    add(BOB, "m.room.member", {"membership": "join"}, BOB)
    add(BOB, "m.room.power_levels", {"users": {BOB: 100}}, "")
    add(BOB, "m.room.join_rules", {"join_rule": "public"}, "")
    add(BOB, "m.room.history_visibility", {"history_visibility": "shared"}, "")
    history = [add(BOB, "m.room.message", {"msgtype": "m.text", "body": f"old {n}"}) for n in range(5)]
    state_events = [e for e in created if e.is_state]
    join = add(alice["user_id"], "m.room.member", {"membership": "join"}, alice["user_id"])

    outcomes = await hs.rooms.input(room_id, state_events, EventKind.OUTLIER, room_version=version)
    assert all(o.stream_ordering < 0 and o.rejected_reason is None for o in outcomes.values())
    state_ids = {(e.type, e.state_key): e.event_id for e in state_events}
    outcome = (await hs.rooms.input(room_id, [join], EventKind.REMOTE, state_before={join.event_id: state_ids},
                                    room_version=version))[join.event_id]
    assert outcome.accepted and outcome.stream_ordering > 0
    head = await hs.rooms.head(room_id)
    assert head.resident and list(head.extremities) == [join.event_id]
    assert head.state[("m.room.member", alice["user_id"])].event_id == join.event_id
    backward = await hs.rooms.graph.backward_extremities(room_id)
    assert [event_id for event_id, _ in backward] == [history[-1].event_id]

    token = alice["access_token"]
    synced = await api.sync(token)
    timeline = synced["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [join.event_id]

    outcomes = await hs.rooms.input(room_id, created[:-1], EventKind.BACKFILL)  # de-outliers the state events too
    assert all(o.accepted and o.stream_ordering < 0 for o in outcomes.values())
    assert await hs.rooms.graph.backward_extremities(room_id) == []
    page = await messages(api, token, room_id)
    assert [e["event_id"] for e in page] == [e.event_id for e in reversed(created)]
    again = await api.sync(token, since=synced["next_batch"], timeout=0)
    assert room_id not in again["rooms"]["join"]
