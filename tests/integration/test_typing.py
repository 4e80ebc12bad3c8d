"""Typing notifications: who may type, expiry by timer, and the typing stream."""

from __future__ import annotations

import asyncio

import nio



async def test_typing_starts_renews_stops_and_expires(api, homeserver):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/join/{room_id}", {}, token=bob["access_token"])
    typing = homeserver.typing
    start = typing.position
    assert typing.events([room_id], 0) == {}

    with homeserver.notifier.subscribe([f"room:{room_id}"]) as subscription:
        status, _ = await api.put(f"/rooms/{room_id}/typing/@alice:localhost", {"typing": True, "timeout": 30000},
                                  token=alice["access_token"])
        assert status == 200
        assert await subscription.wait(1)
    status, _ = await api.put(f"/rooms/{room_id}/typing/@bob:localhost", {"typing": True, "timeout": 300},
                              token=bob["access_token"])
    assert status == 200
    both = {room_id: {"type": "m.typing", "content": {"user_ids": ["@alice:localhost", "@bob:localhost"]}}}
    assert typing.events([room_id], 0) == both
    assert typing.events([room_id], start) == both
    after_start = typing.position
    assert typing.events([room_id], after_start) == {}
    # Renewing does not change who is typing, so nothing new for a reader.
    await api.put(f"/rooms/{room_id}/typing/@alice:localhost", {"typing": True, "timeout": 30000},
                  token=alice["access_token"])
    assert typing.position == after_start

    with homeserver.notifier.subscribe([f"room:{room_id}"]) as subscription:
        assert await subscription.wait(3), "bob's typing should have expired and woken the room"
    assert typing.events([room_id], after_start) == {
        room_id: {"type": "m.typing", "content": {"user_ids": ["@alice:localhost"]}}}

    expired = typing.position
    await api.put(f"/rooms/{room_id}/typing/@alice:localhost", {"typing": False}, token=alice["access_token"])
    assert typing.events([room_id], expired) == {room_id: {"type": "m.typing", "content": {"user_ids": []}}}
    assert typing.events([room_id], 0) == {}


async def test_typing_is_only_for_oneself_and_members(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"])
    status, body = await api.put(f"/rooms/{room_id}/typing/@alice:localhost", {"typing": True},
                                 token=bob["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.put(f"/rooms/{room_id}/typing/@bob:localhost", {"typing": True},
                                 token=bob["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.put(f"/rooms/{room_id}/typing/@alice:localhost", {}, token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.put(f"/rooms/{room_id}/typing/@alice:localhost", {"typing": "yes"},
                                 token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.put("/rooms/!unknown:localhost/typing/@alice:localhost", {"typing": True},
                                 token=alice["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_nio_room_typing_and_the_timeout_cap(homeserver, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@typist:localhost", store_path=str(tmp_path))
    try:
        await client.register("typist", "correct horse")
        room = await client.room_create()
        response = await client.room_typing(room.room_id, True, timeout=10_000_000)
        assert isinstance(response, nio.RoomTypingResponse), response
        assert homeserver.typing.typists(room.room_id) == ["@typist:localhost"]
        timer = homeserver.typing._typing[room.room_id]["@typist:localhost"]
        assert timer.when() - asyncio.get_running_loop().time() <= 120
        await client.room_typing(room.room_id, False)
        assert homeserver.typing.typists(room.room_id) == []
    finally:
        await client.close()
