"""GET /v1/room_summary/{roomIdOrAlias} (MSC3266) and GET /v1/mutual_rooms (MSC2666)."""

from __future__ import annotations

from urllib.parse import quote

SUMMARY = "/_matrix/client/v1/room_summary/"


async def test_room_summary_for_members_joiners_and_strangers(api):
    alice, bob = await api.register_all("alice", "bob")
    public = await api.create_room(alice["access_token"], preset="public_chat", name="Cheese", topic="Tasty",
                                   room_alias_name="cheese", initial_state=[
                                       {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    private = await api.create_room(alice["access_token"], name="Secret")
    readable = await api.create_room(alice["access_token"], initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    knock = await api.create_room(alice["access_token"], initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    restricted = await api.create_room(alice["access_token"], initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "restricted", "allow": [
            {"type": "m.room_membership", "room_id": public}]}}])

    status, summary = await api.get(SUMMARY + quote("#cheese:localhost"), token=bob["access_token"],
                                    params={"via": "localhost"})
    assert status == 200, summary
    assert summary == {
        "room_id": public, "name": "Cheese", "topic": "Tasty", "canonical_alias": "#cheese:localhost",
        "num_joined_members": 1, "join_rule": "public", "world_readable": False, "guest_can_join": False,
        "room_version": "11", "encryption": "m.megolm.v1.aes-sha2", "membership": "leave"}
    status, own = await api.get(SUMMARY + private, token=alice["access_token"])
    assert status == 200 and own["membership"] == "join" and own["name"] == "Secret"

    status, body = await api.get(SUMMARY + private, token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), "invite-only and not invited"
    status, body = await api.get(SUMMARY + restricted, token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), "not in an allowed room yet"
    await api.post(f"/rooms/{public}/join", {}, token=bob["access_token"])
    status, body = await api.get(SUMMARY + restricted, token=bob["access_token"])
    assert status == 200 and body["allowed_room_ids"] == [public] and body["join_rule"] == "restricted"
    await api.post(f"/rooms/{private}/invite", {"user_id": "@bob:localhost"}, token=alice["access_token"])
    status, body = await api.get(SUMMARY + private, token=bob["access_token"])
    assert status == 200 and body["membership"] == "invite"

    # without a token: public, knock and world-readable rooms only, and no membership
    for room_id in (public, readable, knock):
        status, body = await api.get(SUMMARY + room_id)
        assert status == 200 and body["room_id"] == room_id and "membership" not in body, room_id
    for room_id in (private, restricted):
        status, body = await api.get(SUMMARY + room_id)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), room_id
    for unknown in ("!nothere:localhost", quote("#nothere:localhost"), quote("#far:other.example")):
        status, body = await api.get(SUMMARY + unknown, token=bob["access_token"])
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), unknown
    status, body = await api.get(SUMMARY + "cheese", token=bob["access_token"])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.get(SUMMARY + public, params={"via": "not a server"}, token=bob["access_token"])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.get(SUMMARY + public, token="rva_wrong")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_mutual_rooms_in_batches(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    shared = []
    for i in range(105):
        room_id = await api.create_room(alice["access_token"], preset="public_chat")
        await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
        shared.append(room_id)
    left = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{left}/join", {}, token=bob["access_token"])
    await api.post(f"/rooms/{left}/leave", {}, token=bob["access_token"])
    invited = await api.create_room(alice["access_token"], invite=["@bob:localhost"])
    await api.create_room(bob["access_token"])

    for path, token_name in (("/_matrix/client/v1/mutual_rooms", "from"),
                             ("/_matrix/client/v1/user/mutual_rooms", "batch_token")):
        status, first = await api.get(path, params={"user_id": "@bob:localhost"}, token=alice["access_token"])
        assert status == 200 and first["count"] == 105 and len(first["joined"]) == 100
        status, second = await api.get(path, params={"user_id": "@bob:localhost", token_name: first["next_batch"]},
                                       token=alice["access_token"])
        assert status == 200 and "next_batch" not in second and second["count"] == 105
        assert sorted(first["joined"] + second["joined"]) == sorted(shared)
    assert left not in first["joined"] + second["joined"] and invited not in first["joined"] + second["joined"]

    status, none = await api.get("/_matrix/client/v1/mutual_rooms", params={"user_id": "@carol:localhost"},
                                 token=bob["access_token"])
    assert (status, none) == (200, {"joined": [], "count": 0})
    status, none = await api.get("/_matrix/client/v1/mutual_rooms", params={"user_id": "@nobody:localhost"},
                                 token=bob["access_token"])
    assert (status, none) == (200, {"joined": [], "count": 0})
    for params, expected in [({}, (400, "M_MISSING_PARAM")), ({"user_id": "bob"}, (400, "M_INVALID_PARAM")),
                             ({"user_id": "@bob:localhost"}, (400, "M_INVALID_PARAM")),
                             ({"user_id": "@alice:localhost", "from": "!!"}, (400, "M_INVALID_PARAM"))]:
        status, body = await api.get("/_matrix/client/v1/mutual_rooms", params=params, token=bob["access_token"])
        assert (status, body.get("errcode")) == expected, params
    status, body = await api.get("/_matrix/client/v1/mutual_rooms", params={"user_id": "@alice:localhost"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
