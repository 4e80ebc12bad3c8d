"""Presence follows what users do: /sync marks them online unless set_presence says
otherwise, sending marks them active, and their room mates see each change in /sync."""

from __future__ import annotations

import asyncio


def presence_of(response, user_id):
    return [e["content"] for e in response["presence"]["events"] if e["sender"] == user_id]


async def test_sync_marks_online_and_room_mates_see_it(api, homeserver):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    watching = await api.sync(alice["access_token"], set_presence="offline")
    assert presence_of(watching, "@bob:localhost") == []

    poll = asyncio.create_task(api.sync(alice["access_token"], since=watching["next_batch"], timeout=5000,
                                    set_presence="offline"))
    await asyncio.sleep(0.2)
    await api.sync(bob["access_token"])  # no set_presence: online
    woken = await poll
    (online,) = presence_of(woken, "@bob:localhost")
    assert online["presence"] == "online" and online["currently_active"] is True
    assert 0 <= online["last_active_ago"] < 10_000
    status, seen = await api.get("/presence/@bob:localhost/status", token=alice["access_token"])
    assert (status, seen["presence"], seen["currently_active"]) == (200, "online", True)

    await api.sync(bob["access_token"], set_presence="unavailable")
    idle = await api.sync(alice["access_token"], since=woken["next_batch"], set_presence="offline")
    assert [p["presence"] for p in presence_of(idle, "@bob:localhost")] == ["unavailable"]

    position = homeserver.presence.position
    await api.sync(bob["access_token"], set_presence="offline")
    assert homeserver.presence.position == position, "offline means: do not mark me online"
    quiet = await api.sync(alice["access_token"], since=idle["next_batch"], set_presence="offline")
    assert presence_of(quiet, "@bob:localhost") == []

    await api.send_text(bob["access_token"], room_id, "back")
    active = await api.sync(alice["access_token"], since=quiet["next_batch"], set_presence="offline")
    (back,) = presence_of(active, "@bob:localhost")
    assert back["presence"] == "online" and back["currently_active"] is True

    status, body = await api.get("/sync", params={"set_presence": "away"}, token=bob["access_token"])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_strangers_see_no_presence(api):
    alice, carol = await api.register_all("alice", "carol")
    await api.create_room(alice["access_token"])
    start = await api.sync(carol["access_token"])
    await api.sync(alice["access_token"])
    after = await api.sync(carol["access_token"], since=start["next_batch"])
    assert presence_of(after, "@alice:localhost") == []
