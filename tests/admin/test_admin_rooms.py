"""The room admin API against the examples of Synapse's documentation (docs/admin_api/
rooms.md and purge_history_api.md), and what deleting, blocking and purging leave behind."""

from __future__ import annotations

import asyncio

from tests.admin.conftest import SYNAPSE

V1, V2 = f"{SYNAPSE}/v1", f"{SYNAPSE}/v2"

#: The keys of a room in Synapse's documented list example.
ROOM_KEYS = {"room_id", "name", "canonical_alias", "joined_members", "joined_local_members", "version", "creator",
             "encryption", "federatable", "public", "join_rules", "guest_access", "history_visibility",
             "state_events", "room_type"}


async def three_rooms(api) -> tuple[dict, dict, dict[str, str]]:
    alice, bob = await api.register_all("alice", "bob")
    rooms = {
        "music": await api.create_room(alice["access_token"], name="Music", preset="public_chat",
                                       room_alias_name="music"),
        "gardening": await api.create_room(alice["access_token"], name="Gardening"),
        "bees": await api.create_room(bob["access_token"], name="Bees and honey", preset="public_chat"),
    }
    await api.post(f"/rooms/{rooms['music']}/join", {}, token=bob["access_token"])
    await api.put(f"/rooms/{rooms['gardening']}/state/m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"},
                  token=alice["access_token"])
    return alice, bob, rooms


async def test_list_rooms_as_documented(api, admin):
    _, _, rooms = await three_rooms(api)
    status, body = await api.get(f"{V1}/rooms", token=admin)
    assert status == 200 and body["total_rooms"] == 3 and body["offset"] == 0
    assert [room["name"] for room in body["rooms"]] == ["Bees and honey", "Gardening", "Music"]
    music = next(room for room in body["rooms"] if room["name"] == "Music")
    assert set(music) == ROOM_KEYS
    assert music["canonical_alias"] == "#music:localhost" and music["joined_members"] == 2
    assert music["joined_local_members"] == 2 and music["public"] is False and music["join_rules"] == "public"
    assert music["creator"] == "@alice:localhost" and music["version"] == "11" and music["federatable"] is True
    gardening = next(room for room in body["rooms"] if room["name"] == "Gardening")
    assert gardening["encryption"] == "m.megolm.v1.aes-sha2" and gardening["join_rules"] == "invite"
    status, page = await api.get(f"{V1}/rooms", token=admin, params={"limit": "2"})
    assert len(page["rooms"]) == 2 and page["next_batch"] == 2 and "prev_batch" not in page
    status, rest = await api.get(f"{V1}/rooms", token=admin, params={"limit": "2", "from": "2"})
    assert [r["name"] for r in rest["rooms"]] == ["Music"] and rest["prev_batch"] == 0 and "next_batch" not in rest
    status, found = await api.get(f"{V1}/rooms", token=admin, params={"search_term": "HONEY"})
    assert [r["room_id"] for r in found["rooms"]] == [rooms["bees"]] and found["total_rooms"] == 1
    status, by_alias = await api.get(f"{V1}/rooms", token=admin, params={"search_term": "#music"})
    assert [r["room_id"] for r in by_alias["rooms"]] == [rooms["music"]]
    status, by_size = await api.get(f"{V1}/rooms", token=admin, params={"order_by": "joined_members"})
    assert by_size["rooms"][0]["room_id"] == rooms["music"]  # biggest first
    status, smallest = await api.get(f"{V1}/rooms", token=admin, params={"order_by": "joined_members", "dir": "b"})
    assert smallest["rooms"][-1]["room_id"] == rooms["music"]
    status, reverse = await api.get(f"{V1}/rooms", token=admin, params={"dir": "b"})
    assert [r["name"] for r in reverse["rooms"]] == ["Music", "Gardening", "Bees and honey"]
    status, body = await api.get(f"{V1}/rooms", token=admin, params={"order_by": "size"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_room_details_members_state_and_messages(api, admin):
    alice, bob, rooms = await three_rooms(api)
    music = rooms["music"]
    status, details = await api.get(f"{V1}/rooms/{music}", token=admin)
    assert status == 200 and set(details) >= ROOM_KEYS | {"avatar", "topic", "joined_local_devices", "forgotten"}
    assert details["joined_local_devices"] == 2 and details["name"] == "Music"
    assert await api.get(f"{V1}/rooms/{music}/members", token=admin) == (
        200, {"members": ["@alice:localhost", "@bob:localhost"], "total": 2})
    status, state = await api.get(f"{V1}/rooms/{music}/state", token=admin)
    assert {"m.room.create", "m.room.name", "m.room.power_levels"} <= {e["type"] for e in state["state"]}
    # messages of a room the admin is not in, whatever its history visibility
    garden = rooms["gardening"]
    await api.put(f"/rooms/{garden}/state/m.room.history_visibility", {"history_visibility": "joined"},
                  token=alice["access_token"])
    for n in range(3):
        await api.send_text(alice["access_token"], garden, f"secret {n}")
    status, page = await api.get(f"{V1}/rooms/{garden}/messages", token=admin, params={"limit": "2"})
    assert [e["content"]["body"] for e in page["chunk"]] == ["secret 2", "secret 1"]
    status, older = await api.get(f"{V1}/rooms/{garden}/messages", token=admin,
                                  params={"limit": "2", "from": page["end"]})
    assert older["chunk"][0]["content"]["body"] == "secret 0"
    assert (await api.get(f"/rooms/{garden}/messages", token=admin))[0] == 403  # the client API still refuses
    for path in (f"{V1}/rooms/!unknown:localhost", f"{V1}/rooms/!unknown:localhost/members",
                 f"{V1}/rooms/!unknown:localhost/state", f"{V1}/rooms/!unknown:localhost/messages"):
        status, body = await api.get(path, token=admin)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path


async def test_a_blocked_room_refuses_joins_and_invites(api, admin):
    alice, bob, rooms = await three_rooms(api)
    bees = rooms["bees"]
    assert await api.get(f"{V1}/rooms/{bees}/block", token=admin) == (200, {"block": False})
    assert await api.put(f"{V1}/rooms/{bees}/block", {"block": True}, token=admin) == (200, {"block": True})
    assert await api.get(f"{V1}/rooms/{bees}/block", token=admin) == (
        200, {"block": True, "user_id": "@root:localhost"})
    status, body = await api.post(f"/rooms/{bees}/join", {}, token=alice["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.post(f"/rooms/{bees}/invite", {"user_id": "@alice:localhost"}, token=bob["access_token"])
    assert status == 403
    await api.send_text(bob["access_token"], bees, "members already in stay")
    assert (await api.put(f"{V1}/rooms/{bees}/block", {"block": False}, token=admin))[0] == 200
    assert (await api.post(f"/rooms/{bees}/join", {}, token=alice["access_token"]))[0] == 200
    assert (await api.put(f"{V1}/rooms/!notyet:localhost/block", {"block": True}, token=admin))[0] == 200
    assert (await api.put(f"{V1}/rooms/{bees}/block", {"block": "yes"}, token=admin))[0] == 400


async def test_delete_room_v1_as_documented(api, admin, homeserver):
    alice, bob, rooms = await three_rooms(api)
    music = rooms["music"]
    for n in range(5):
        await api.send_text(bob["access_token"], music, f"message {n}")
    status, body = await api.delete(f"{V1}/rooms/{music}", {"block": True, "purge": True}, token=admin)
    assert status == 200
    assert sorted(body["kicked_users"]) == ["@alice:localhost", "@bob:localhost"]
    assert body["failed_to_kick_users"] == [] and body["local_aliases"] == ["#music:localhost"]
    assert body["new_room_id"] is None
    assert (await api.get(f"{V1}/rooms/{music}", token=admin))[0] == 404
    assert (await api.get("/directory/room/%23music:localhost"))[0] == 404
    assert await homeserver.db.fetchval("SELECT COUNT(*) FROM events WHERE room_id = ?", music) == 0
    assert await homeserver.db.fetchval("SELECT COUNT(*) FROM memberships WHERE room_id = ?", music) == 0
    assert await homeserver.db.fetchval("SELECT COUNT(*) FROM room_notifications WHERE room_id = ?", music) == 0
    assert music not in (await api.get("/joined_rooms", token=alice["access_token"]))[1]["joined_rooms"]
    status, sync = await api.get("/sync", token=bob["access_token"])
    assert status == 200
    assert (await api.post(f"/rooms/{music}/join", {}, token=alice["access_token"]))[0] == 404  # gone
    assert (await api.get(f"{V1}/rooms/{music}/block", token=admin))[1]["block"] is True
    assert (await api.get(f"{V1}/rooms", token=admin))[1]["total_rooms"] == 2
    # the others are untouched
    await api.send_text(alice["access_token"], rooms["gardening"], "still here")
    status, body = await api.delete(f"{V1}/rooms/!unknown:localhost", {}, token=admin)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.delete(f"{V1}/rooms/{rooms['bees']}", {"new_room_user_id": "@root:localhost"},
                                    token=admin)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_delete_room_without_purge_keeps_the_history(api, admin, homeserver):
    alice, bob, rooms = await three_rooms(api)
    status, body = await api.delete(f"{V1}/rooms/{rooms['bees']}", {"purge": False}, token=admin)
    assert status == 200 and body["kicked_users"] == ["@bob:localhost"]
    assert (await api.get(f"{V1}/rooms/{rooms['bees']}", token=admin))[1]["joined_members"] == 0
    assert await homeserver.db.fetchval("SELECT COUNT(*) FROM events WHERE room_id = ?", rooms["bees"]) > 0


async def wait_for(api, admin, path: str, key: str, wanted: set[str]) -> dict:
    for _ in range(200):
        status, body = await api.get(path, token=admin)
        assert status == 200, body
        if body[key] in wanted:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} stayed {body}")


async def test_delete_room_v2_with_its_status(api, admin):
    _, _, rooms = await three_rooms(api)
    music = rooms["music"]
    status, body = await api.delete(f"{V2}/rooms/{music}", {"block": False, "purge": True}, token=admin)
    assert status == 200
    delete_id = body["delete_id"]
    done = await wait_for(api, admin, f"{V2}/rooms/delete_status/{delete_id}", "status", {"complete", "failed"})
    assert done["status"] == "complete" and done["room_id"] == music
    assert sorted(done["shutdown_room"]["kicked_users"]) == ["@alice:localhost", "@bob:localhost"]
    status, by_room = await api.get(f"{V2}/rooms/{music}/delete_status", token=admin)
    assert [result["delete_id"] for result in by_room["results"]] == [delete_id]
    status, tasks = await api.get(f"{V1}/scheduled_tasks", token=admin, params={"resource_id": music})
    assert tasks["scheduled_tasks"][0]["id"] == delete_id and tasks["scheduled_tasks"][0]["status"] == "complete"
    assert (await api.get(f"{V2}/rooms/delete_status/nope", token=admin))[0] == 404
    assert (await api.get(f"{V2}/rooms/{rooms['bees']}/delete_status", token=admin))[0] == 404
    assert (await api.delete(f"{V2}/rooms/!unknown:localhost", {}, token=admin))[0] == 404


async def test_purge_history_as_documented(api, admin, homeserver):
    alice, bob, rooms = await three_rooms(api)
    room = rooms["bees"]
    await api.post(f"/rooms/{room}/join", {}, token=alice["access_token"])
    old = [await api.send_text(bob["access_token"], room, f"old {n}") for n in range(4)]
    cut = await api.send_text(bob["access_token"], room, "the cut")
    await api.send_text(alice["access_token"], room, "new")
    # without delete_local_events only remote events go: all of these are local
    status, body = await api.post(f"{V1}/purge_history/{room}", {"purge_up_to_event_id": cut}, token=admin)
    done = await wait_for(api, admin, f"{V1}/purge_history_status/{body['purge_id']}", "status",
                          {"complete", "failed"})
    assert done == {"status": "complete"}
    assert await homeserver.db.fetchval("SELECT COUNT(*) FROM events WHERE event_id = ?", old[0]) == 1
    status, body = await api.post(f"{V1}/purge_history/{room}/{cut}", {"delete_local_events": True}, token=admin)
    done = await wait_for(api, admin, f"{V1}/purge_history_status/{body['purge_id']}", "status",
                          {"complete", "failed"})
    assert done == {"status": "complete"}
    status, page = await api.get(f"/rooms/{room}/messages", token=alice["access_token"], params={"limit": "100"})
    bodies = [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["new", "the cut"]
    types = {e["type"] for e in page["chunk"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= types  # the state stays
    assert (await api.get(f"/rooms/{room}/event/{old[0]}", token=alice["access_token"]))[0] == 404
    status, state = await api.get(f"/rooms/{room}/state", token=alice["access_token"])
    assert status == 200
    await api.send_text(bob["access_token"], room, "after the purge")
    status, body = await api.post(f"{V1}/purge_history/{room}", {}, token=admin)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.post(f"{V1}/purge_history/{room}", {"purge_up_to_event_id": "$nope"}, token=admin)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert (await api.get(f"{V1}/purge_history_status/nope", token=admin))[0] == 404
    status, body = await api.post(f"{V1}/purge_history/{room}", {"purge_up_to_ts": 2**42,
                                                                  "delete_local_events": True}, token=admin)
    done = await wait_for(api, admin, f"{V1}/purge_history_status/{body['purge_id']}", "status",
                          {"complete", "failed"})
    assert done == {"status": "complete"}
    status, page = await api.get(f"/rooms/{room}/messages", token=alice["access_token"], params={"limit": "100"})
    assert [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"] == ["after the purge"]
