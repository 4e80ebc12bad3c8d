"""Presence: setting and reading it, who may see it, the stream, idle and offline sweeps."""

from __future__ import annotations

import nio

from ranvier.server import Homeserver
from ranvier.users.presence import IDLE_AFTER_MS, OFFLINE_AFTER_MS, now_ms


async def test_nio_sets_and_gets_presence_and_strangers_are_refused(homeserver, tmp_path, api):
    client = nio.AsyncClient(homeserver.base_url, "@pres:localhost", store_path=str(tmp_path))
    try:
        await client.register("pres", "correct horse")
        assert isinstance(await client.set_presence("online", "in a meeting"), nio.PresenceSetResponse)
        mine = await client.get_presence("@pres:localhost")
        assert isinstance(mine, nio.PresenceGetResponse), mine
        assert (mine.presence, mine.status_msg, mine.currently_active) == ("online", "in a meeting", True)
        assert mine.last_active_ago < 60_000

        friend, stranger = await api.register_all("friend", "stranger")
        room = await client.room_create(preset=nio.RoomPreset.public_chat)
        await api.post(f"/join/{room.room_id}", {}, token=friend["access_token"])
        status, seen = await api.get("/presence/@pres:localhost/status", token=friend["access_token"])
        assert status == 200 and seen["presence"] == "online" and seen["status_msg"] == "in a meeting"
        status, body = await api.get("/presence/@pres:localhost/status", token=stranger["access_token"])
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await api.put("/presence/@pres:localhost/status", {"presence": "offline"},
                                     token=stranger["access_token"])
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await api.put("/presence/@stranger:localhost/status", {"presence": "away"},
                                     token=stranger["access_token"])
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await api.put("/presence/@stranger:localhost/status", {}, token=stranger["access_token"])
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        # Someone who never set a presence is offline.
        status, body = await api.get("/presence/@friend:localhost/status", token=friend["access_token"])
        assert (status, body) == (200, {"presence": "offline"})
    finally:
        await client.close()


async def test_presence_stream_reaches_room_mates_only(api, homeserver):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/join/{room_id}", {}, token=bob["access_token"])
    presence = homeserver.presence
    start = presence.position
    with homeserver.notifier.subscribe([f"room:{room_id}"]) as subscription:
        await api.put("/presence/@alice:localhost/status", {"presence": "unavailable", "status_msg": "lunch"},
                      token=alice["access_token"])
        assert await subscription.wait(1)
    await api.put("/presence/@carol:localhost/status", {"presence": "online"}, token=carol["access_token"])
    upto = presence.position
    assert upto == start + 2

    def by_sender(events):
        return {event["sender"]: event for event in events}

    seen_by_bob = by_sender(await presence.events("@bob:localhost", start, upto))
    assert set(seen_by_bob) == {"@alice:localhost"}
    event = seen_by_bob["@alice:localhost"]
    assert event["type"] == "m.presence"
    assert event["content"]["presence"] == "unavailable" and event["content"]["status_msg"] == "lunch"
    assert "currently_active" not in event["content"]
    assert set(by_sender(await presence.events("@carol:localhost", start, upto))) == {"@carol:localhost"}
    assert set(by_sender(await presence.events("@alice:localhost", 0, upto))) == {"@alice:localhost"}
    assert await presence.events("@bob:localhost", upto, upto) == []


async def test_sync_presence_and_the_idle_and_offline_sweep(api, homeserver):
    (alice,) = await api.register_all("alice")
    presence = homeserver.presence
    await presence.set_from_sync("@alice:localhost", "offline")
    assert (await presence.get("@alice:localhost", "@alice:localhost"))["presence"] == "offline"
    assert presence.position == 0

    await presence.set_from_sync("@alice:localhost", "online")
    online = presence.position
    assert (await presence.get("@alice:localhost", "@alice:localhost"))["presence"] == "online"
    # Syncing again while active changes nothing a client would see.
    await presence.set_from_sync("@alice:localhost", "online")
    assert presence.position == online

    assert await presence.sweep(now_ms()) == 0
    assert await presence.sweep(now_ms() + IDLE_AFTER_MS + 1000) == 1
    idle = await presence.get("@alice:localhost", "@alice:localhost")
    assert idle["presence"] == "unavailable" and "currently_active" not in idle
    assert await presence.sweep(now_ms() + IDLE_AFTER_MS + 2000) == 0  # no repeated writes
    assert await presence.sweep(now_ms() + OFFLINE_AFTER_MS + 1000) == 1
    assert (await presence.get("@alice:localhost", "@alice:localhost"))["presence"] == "offline"
    events = await presence.events("@alice:localhost", online, presence.position)
    assert [e["content"]["presence"] for e in events] == ["offline"]

    await presence.set_from_sync("@alice:localhost", "unavailable")
    assert (await presence.get("@alice:localhost", "@alice:localhost"))["presence"] == "unavailable"


async def test_presence_survives_a_restart(server_config, homeserver, api):
    (alice,) = await api.register_all("alice")
    await api.put("/presence/@alice:localhost/status", {"presence": "online", "status_msg": "here"},
                  token=alice["access_token"])
    position = homeserver.presence.position
    await homeserver.stop()
    other = Homeserver(server_config)
    await other.start()
    try:
        assert other.presence.position == position
        state = await other.presence.get("@alice:localhost", "@alice:localhost")
        assert (state["presence"], state["status_msg"]) == ("online", "here")
    finally:
        await other.stop()
