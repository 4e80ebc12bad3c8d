"""m.ignored_user_list: the ignored user's events (not their state events) and invites are
left out of /sync, /messages, /context and /events for the user who ignores them."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.conftest import message_bodies

IGNORE = "/user/@alice:localhost/account_data/m.ignored_user_list"


async def _room_with_bob_ignored(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat",
                                    power_level_content_override={"events": {"m.room.topic": 0}})
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.send_text(alice["access_token"], room_id, "alice 1")
    from_bob = await api.send_text(bob["access_token"], room_id, "bob 1")
    status, _ = await api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "bob's"}, token=bob["access_token"])
    assert status == 200
    await api.send_text(alice["access_token"], room_id, "alice 2")
    status, _ = await api.put(IGNORE, {"ignored_users": {"@bob:localhost": {}}}, token=alice["access_token"])
    assert status == 200
    return alice, bob, room_id, from_bob


async def test_messages_and_context_leave_out_ignored_users(api):
    alice, bob, room_id, from_bob = await _room_with_bob_ignored(api)
    token = alice["access_token"]
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "3"}, token=token)
    assert status == 200
    assert [e["type"] for e in page["chunk"]][:2] == ["m.room.message", "m.room.topic"]
    assert message_bodies(page["chunk"]) == ["alice 2", "alice 1"], "three events: bob's message is skipped, not counted"
    assert all(e["sender"] != "@bob:localhost" or e["type"] != "m.room.message" for e in page["chunk"])

    alice_2 = page["chunk"][0]["event_id"]
    status, context = await api.get(f"/rooms/{room_id}/context/{quote(alice_2, safe='')}", params={"limit": "4"},
                                    token=token)
    assert status == 200
    assert message_bodies(context["events_before"]) == ["alice 1"]
    assert any(e["type"] == "m.room.topic" for e in context["events_before"]), "state events of ignored users stay"
    status, error = await api.get(f"/rooms/{room_id}/context/{quote(from_bob, safe='')}", token=token)
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    # others still see everything
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "5"}, token=bob["access_token"])
    assert "bob 1" in message_bodies(page["chunk"])


async def test_sync_and_events_leave_out_ignored_users_and_their_invites(api):
    alice, bob, room_id, _ = await _room_with_bob_ignored(api)
    token = alice["access_token"]
    initial = await api.sync(token)
    assert message_bodies(initial["rooms"]["join"][room_id]["timeline"]["events"]) == ["alice 1", "alice 2"]
    status, stream_start = await api.get("/events", params={"timeout": "0"}, token=token)
    await api.send_text(bob["access_token"], room_id, "bob 2")
    await api.send_text(alice["access_token"], room_id, "alice 3")
    invite_room = await api.create_room(bob["access_token"], invite=["@alice:localhost"])
    changes = await api.sync(token, since=initial["next_batch"])
    assert message_bodies(changes["rooms"]["join"][room_id]["timeline"]["events"]) == ["alice 3"]
    assert invite_room not in changes["rooms"]["invite"]
    assert invite_room not in (await api.sync(token))["rooms"]["invite"]
    status, stream = await api.get("/events", params={"from": stream_start["end"], "timeout": "0"}, token=token)
    assert message_bodies(stream["chunk"]) == ["alice 3"]


async def test_a_change_of_the_list_applies_at_once_without_replaying(api):
    alice, bob, room_id, _ = await _room_with_bob_ignored(api)
    token = alice["access_token"]
    await api.send_text(bob["access_token"], room_id, "while ignored")
    start = await api.sync(token)
    assert "while ignored" not in message_bodies(start["rooms"]["join"][room_id]["timeline"]["events"])
    # the change wakes a waiting sync, which carries the new list
    poll = asyncio.create_task(api.sync(token, since=start["next_batch"], timeout=5000))
    await asyncio.sleep(0.2)
    await api.put(IGNORE, {"ignored_users": {}}, token=token)
    woken = await poll
    (event,) = [e for e in woken["account_data"]["events"] if e["type"] == "m.ignored_user_list"]
    assert event["content"] == {"ignored_users": {}}
    timeline = woken["rooms"]["join"].get(room_id, {"timeline": {"events": []}})["timeline"]["events"]
    assert "while ignored" not in message_bodies(timeline), "missed events are not replayed by an incremental sync"
    await api.send_text(bob["access_token"], room_id, "heard again")
    after = await api.sync(token, since=woken["next_batch"])
    assert message_bodies(after["rooms"]["join"][room_id]["timeline"]["events"]) == ["heard again"]
    fresh = await api.sync(token, filter={"room": {"timeline": {"limit": 3}}})
    assert "while ignored" in message_bodies(fresh["rooms"]["join"][room_id]["timeline"]["events"]), "a fresh sync has them"
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "10"}, token=token)
    assert "bob 1" in message_bodies(page["chunk"])
