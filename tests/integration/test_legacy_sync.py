"""The deprecated event stream (/events, also peeking with room_id) and /rooms/{roomId}/initialSync."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.conftest import message_bodies


async def test_events_returns_everything_after_from_in_order(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    rooms = [await api.create_room(token) for _ in range(2)]
    status, start = await api.get("/events", params={"timeout": "0"}, token=token)
    assert status == 200 and start["chunk"] == []
    sent = []
    for i in range(130):
        await api.send_text(token, rooms[i % 2], f"m{i}")
        sent.append(f"m{i}")
    received, position = [], start["end"]
    for _ in range(5):
        status, got = await api.get("/events", params={"from": position, "timeout": "0"}, token=token)
        assert status == 200 and got["start"] == position
        if not got["chunk"]:
            break
        received += message_bodies(got["chunk"])
        position = got["end"]
    assert received == sent, "every message once, in the order sent, across rooms and pages"


async def test_events_without_from_starts_now_and_waits(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    for i in range(20):
        await api.send_text(token, room_id, f"old {i}")
    poll = asyncio.create_task(api.get("/events", params={"timeout": "5000"}, token=token))
    await asyncio.sleep(0.3)
    await api.send_text(token, room_id, "new")
    status, got = await poll
    assert status == 200 and message_bodies(got["chunk"]) == ["new"]
    assert got["chunk"][0]["room_id"] == room_id


async def test_peeking_into_a_world_readable_room(api):
    alice, bob = await api.register_all("alice", "bob")
    readable = await api.create_room(alice["access_token"], preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    private = await api.create_room(alice["access_token"])
    await api.send_text(alice["access_token"], readable, "earlier")
    status, error = await api.get("/events", params={"room_id": private, "timeout": "0"}, token=bob["access_token"])
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")

    status, snapshot = await api.get(f"/rooms/{readable}/initialSync", token=bob["access_token"])
    assert status == 200 and message_bodies(snapshot["messages"]["chunk"]) == ["earlier"]
    assert "membership" not in snapshot
    poll = asyncio.create_task(api.get("/events", params={"room_id": readable, "from": snapshot["messages"]["end"],
                                                           "timeout": "5000"}, token=bob["access_token"]))
    await asyncio.sleep(0.3)
    await api.send_text(alice["access_token"], private, "not this room")
    await api.send_text(alice["access_token"], readable, "peeked")
    status, got = await poll
    assert status == 200 and message_bodies(got["chunk"]) == ["peeked"]
    status, got = await api.get("/events", params={"room_id": readable, "from": got["end"], "timeout": "0"},
                                token=bob["access_token"])
    assert got["chunk"] == []
    status, error = await api.get(f"/rooms/{private}/initialSync", token=bob["access_token"])
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_room_initial_sync_of_a_member_and_of_a_former_member(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", name="legacy")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    last = await api.send_text(bob["access_token"], room_id, "before the leave")
    status, _ = await api.post(f"/rooms/{room_id}/receipt/m.read/{quote(last, safe='')}", {}, token=alice["access_token"])
    assert status == 200

    status, joined = await api.get(f"/rooms/{room_id}/initialSync", params={"limit": "3"}, token=bob["access_token"])
    assert status == 200 and joined["membership"] == "join" and joined["visibility"] == "private"
    own = [e for e in joined["state"] if e["type"] == "m.room.member" and e["state_key"] == "@bob:localhost"]
    assert [e["content"]["membership"] for e in own] == ["join"]
    assert len(joined["messages"]["chunk"]) == 3 and message_bodies(joined["messages"]["chunk"])[-1] == "before the leave"
    (receipt,) = joined["receipts"]
    assert receipt["type"] == "m.receipt" and "@alice:localhost" in receipt["content"][last]["m.read"]

    await api.post(f"/rooms/{room_id}/leave", {}, token=bob["access_token"])
    await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": "renamed"}, token=alice["access_token"])
    await api.send_text(alice["access_token"], room_id, "after the leave")
    status, left = await api.get(f"/rooms/{room_id}/initialSync", token=bob["access_token"])
    assert status == 200 and left["membership"] == "leave"
    chunk = left["messages"]["chunk"]
    assert message_bodies(chunk) == ["before the leave"]
    assert chunk[-1]["type"] == "m.room.member" and chunk[-1]["content"]["membership"] == "leave"
    state = {(e["type"], e["state_key"]): e["content"] for e in left["state"]}
    assert state[("m.room.member", "@bob:localhost")]["membership"] == "leave"
    assert state[("m.room.name", "")] == {"name": "legacy"}, "the state when they left"
    # the end of the snapshot pages back from the leave
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"from": left["messages"]["end"], "limit": "2"},
                                 token=bob["access_token"])
    assert status == 200 and page["chunk"][0]["content"].get("membership") == "leave"

    (carol,) = await api.register_all("carol")
    status, error = await api.get(f"/rooms/{room_id}/initialSync", token=carol["access_token"])
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
