"""/sync's rooms: timeline limits in every sync, full_state, archived rooms, lazy-loaded
members in gappy syncs, the room summary, and unread counts woken by receipts."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tests.conftest import message_bodies


def state_keys(events, event_type="m.room.member"):
    return {e["state_key"] for e in events if e["type"] == event_type}


async def test_timeline_limit_applies_per_room_in_incremental_syncs(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    rooms = [await api.create_room(token) for _ in range(3)]
    limited = {"room": {"timeline": {"limit": 2}}}
    start = await api.sync(token, filter=limited)
    for i in range(5):
        for room_id in rooms:
            await api.send_text(token, room_id, f"{room_id[:4]} {i}")
    status, created = await api.post("/user/@alice:localhost/filter", limited, token=token)
    for used in (limited, created["filter_id"]):
        after = await api.sync(token, since=start["next_batch"], filter=used)
        for room_id in rooms:
            timeline = after["rooms"]["join"][room_id]["timeline"]
            assert message_bodies(timeline["events"]) == [f"{room_id[:4]} 3", f"{room_id[:4]} 4"]
            assert timeline["limited"] is True


async def test_timeline_limit_counts_the_events_the_filter_lets_through(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    start = await api.sync(token)
    for i in range(4):
        await api.send_text(token, room_id, f"m{i}")
        await api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": f"t{i}"}, token=token)
    messages_only = {"room": {"timeline": {"limit": 3, "types": ["m.room.message"]}}}
    after = await api.sync(token, since=start["next_batch"], filter=messages_only)
    timeline = after["rooms"]["join"][room_id]["timeline"]
    assert message_bodies(timeline["events"]) == ["m1", "m2", "m3"] and timeline["limited"] is True
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"from": timeline["prev_batch"], "limit": "10",
                                                                        "filter": json.dumps({"types": ["m.room.message"]})},
                                 token=token)
    assert message_bodies(page["chunk"]) == ["m0"], "prev_batch stands before the first event returned"


async def test_full_state_gives_the_state_at_the_start_of_the_timeline(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat", name="first")
    quiet = await api.create_room(token, name="quiet")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    start = await api.sync(token)
    await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": "second"}, token=token)
    await api.send_text(token, room_id, "one")
    await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": "third"}, token=token)
    await api.send_text(token, room_id, "two")
    full = await api.sync(token, since=start["next_batch"], full_state="true",
                      filter={"room": {"timeline": {"limit": 2}}})
    room = full["rooms"]["join"][room_id]
    assert [e["type"] for e in room["timeline"]["events"]] == ["m.room.name", "m.room.message"]
    state = {(e["type"], e["state_key"]): e for e in room["state"]["events"]}
    assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", ""),
            ("m.room.member", "@alice:localhost"), ("m.room.member", "@bob:localhost")} <= set(state)
    assert state[("m.room.name", "")]["content"] == {"name": "second"}, "the state before the timeline, not after"
    quiet_room = full["rooms"]["join"][quiet]
    assert quiet_room["timeline"]["events"] == []
    assert {e["type"] for e in quiet_room["state"]["events"]} >= {"m.room.create", "m.room.name", "m.room.member"}


async def test_archived_rooms_come_under_leave_with_the_events_up_to_the_leave(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", name="archive")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.send_text(bob["access_token"], room_id, "last words")
    start = await api.sync(bob["access_token"])
    await api.post(f"/rooms/{room_id}/leave", {}, token=bob["access_token"])
    await api.send_text(alice["access_token"], room_id, "after bob left")
    archived = {"room": {"include_leave": True, "timeline": {"limit": 3}}}

    initial = await api.sync(bob["access_token"], filter=archived)
    left = initial["rooms"]["leave"][room_id]
    events = left["timeline"]["events"]
    assert message_bodies(events) == ["last words"] and events[-1]["content"]["membership"] == "leave"
    assert ("m.room.name", "") in {(e["type"], e["state_key"]) for e in left["state"]["events"]}
    assert room_id not in initial["rooms"]["join"]
    without = await api.sync(bob["access_token"])
    assert room_id not in without["rooms"]["leave"]

    incremental = await api.sync(bob["access_token"], since=start["next_batch"], filter=archived)
    events = incremental["rooms"]["leave"][room_id]["timeline"]["events"]
    assert events[-1]["content"]["membership"] == "leave" and "after bob left" not in message_bodies(events)
    full = await api.sync(bob["access_token"], since=incremental["next_batch"], filter=archived, full_state="true")
    left = full["rooms"]["leave"][room_id]
    assert ("m.room.name", "") in {(e["type"], e["state_key"]) for e in left["state"]["events"]
                                   + left["timeline"]["events"]}
    assert "after bob left" not in json.dumps(full)


async def test_lazy_members_of_a_gappy_sync_include_the_timeline_senders(api):
    alice, bob, carol, dave = await api.register_all("alice", "bob", "carol", "dave")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    for user in (bob, carol):
        await api.post(f"/rooms/{room_id}/join", {}, token=user["access_token"])
    await api.send_text(bob["access_token"], room_id, "bob speaks")
    lazy = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    first = await api.sync(carol["access_token"], filter=lazy)
    members = state_keys(first["rooms"]["join"][room_id]["state"]["events"])
    assert "@bob:localhost" in members or "@bob:localhost" in state_keys(first["rooms"]["join"][room_id]["timeline"]["events"])

    # In the gap bob changes his name and dave joins; then a long stretch from bob, dave and alice.
    await api.put("/profile/@bob:localhost/displayname", {"displayname": "Robert"}, token=bob["access_token"])
    await api.post(f"/rooms/{room_id}/join", {}, token=dave["access_token"])
    for i in range(6):
        await api.send_text(alice["access_token"], room_id, f"filler {i}")
    await api.send_text(dave["access_token"], room_id, "dave speaks")
    await api.send_text(bob["access_token"], room_id, "bob again")
    gappy = await api.sync(carol["access_token"], since=first["next_batch"], filter=lazy)
    room = gappy["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert message_bodies(room["timeline"]["events"]) == ["dave speaks", "bob again"]
    members = {e["state_key"]: e["content"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
    assert members["@dave:localhost"]["membership"] == "join"
    assert members["@bob:localhost"].get("displayname") == "Robert", "bob's member event changed in the gap"

    # Not gappy now: bob's member event was sent on this connection, so it is not repeated.
    await api.send_text(bob["access_token"], room_id, "bob once more")
    calm = await api.sync(carol["access_token"], since=gappy["next_batch"], filter=lazy)
    assert state_keys(calm["rooms"]["join"][room_id]["state"]["events"]) == set()


async def test_summary_follows_joins_and_leaves(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    start = await api.sync(alice["access_token"])
    assert start["rooms"]["join"][room_id]["summary"] == {
        "m.heroes": [], "m.joined_member_count": 1, "m.invited_member_count": 0}
    await api.post(f"/rooms/{room_id}/invite", {"user_id": "@carol:localhost"}, token=alice["access_token"])
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    joined = await api.sync(alice["access_token"], since=start["next_batch"])
    assert joined["rooms"]["join"][room_id]["summary"] == {
        "m.heroes": ["@carol:localhost", "@bob:localhost"], "m.joined_member_count": 2, "m.invited_member_count": 1}
    await api.post(f"/rooms/{room_id}/leave", {}, token=bob["access_token"])
    await api.post(f"/rooms/{room_id}/kick", {"user_id": "@carol:localhost"}, token=alice["access_token"])
    left = await api.sync(alice["access_token"], since=joined["next_batch"])
    summary = left["rooms"]["join"][room_id]["summary"]
    assert (summary["m.joined_member_count"], summary["m.invited_member_count"]) == (1, 0)
    assert summary["m.heroes"] == ["@bob:localhost", "@carol:localhost"], "with nobody else left, those who left"
    quiet = await api.send_text(alice["access_token"], room_id, "alone")
    assert quiet
    later = await api.sync(alice["access_token"], since=left["next_batch"])
    assert "summary" not in later["rooms"]["join"][room_id], "sent when it changes"


async def test_a_receipt_updates_unread_counts_before_it_wakes_sync(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="trusted_private_chat", invite=["@bob:localhost"],
                                    is_direct=True)
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.send_text(alice["access_token"], room_id, "one")
    last = await api.send_text(alice["access_token"], room_id, "two")
    counted = await api.sync(bob["access_token"])
    assert counted["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 2
    for receipt_type in ("m.read", "m.read.private"):
        if receipt_type == "m.read.private":
            last = await api.send_text(alice["access_token"], room_id, "three")
            counted = await api.sync(bob["access_token"], since=counted["next_batch"])
            assert counted["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 1
        poll = asyncio.create_task(api.sync(bob["access_token"], since=counted["next_batch"], timeout=5000))
        await asyncio.sleep(0.2)
        status, _ = await api.post(f"/rooms/{room_id}/receipt/{receipt_type}/{quote(last, safe='')}", {},
                                   token=bob["access_token"])
        assert status == 200
        woken = await poll
        assert woken["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 0, receipt_type
        counted = woken


async def test_heroes_leave_out_the_reader_whoever_reads(api):
    """The members are counted once per state of the room; each reader's heroes are the
    first five others, so the reader among the first five does not shorten the list."""
    users = await api.register_all("alice", "bob", "carol", "dave", "erin", "frank", "grace")
    room_id = await api.create_room(users[0]["access_token"], preset="public_chat")
    for user in users[1:]:
        assert (await api.post(f"/rooms/{room_id}/join", {}, token=user["access_token"]))[0] == 200
    ids = [f"@{name}:localhost" for name in ("alice", "bob", "carol", "dave", "erin", "frank", "grace")]
    for user, user_id in zip(users, ids):
        summary = (await api.sync(user["access_token"]))["rooms"]["join"][room_id]["summary"]
        assert summary["m.joined_member_count"] == 7
        assert summary["m.heroes"] == [other for other in ids if other != user_id][:5]
