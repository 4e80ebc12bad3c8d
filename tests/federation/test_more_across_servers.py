"""More of what crosses between two ranvier servers: knocks, rejected invites, restricted
joins through an authorising server, another server's room directory, device keys and
one-time keys, to-device messages, and keys had from a notary when their server is down."""

from __future__ import annotations

import yaml

from federation_support import eventually, signed
from tests.integration.appservice_support import AS_TOKEN, registration
from tests.integration.e2ee_support import Device

FED = "/_matrix/federation"


async def sync_until(api, token, check, **params):
    since = None

    async def synced():
        nonlocal since
        body = await api.sync(token, timeout=500, **params, **({"since": since} if since else {}))
        since = body["next_batch"]
        return check(body)

    return await eventually(synced)


async def test_a_knock_from_the_other_server_is_let_in(pair):
    a, b = pair
    alice, bob = await a.user("alice"), await b.user("bob")
    room_id = await a.api.create_room(alice["access_token"], preset="private_chat", room_version="11",
                                      initial_state=[{"type": "m.room.join_rules", "state_key": "",
                                                      "content": {"join_rule": "knock"}}])
    status, body = await b.api.post(f"/knock/{room_id}", {"reason": "let me in"}, token=bob["access_token"],
                                    params={"via": a.name})
    assert status == 200, body
    knocking = await sync_until(b.api, bob["access_token"], lambda s: s["rooms"]["knock"].get(room_id))
    assert any(e["type"] == "m.room.join_rules" for e in knocking["knock_state"]["events"])

    async def alice_sees_the_knock():
        status, member = await a.api.get(f"/rooms/{room_id}/state/m.room.member/{bob['user_id']}",
                                         token=alice["access_token"])
        return status == 200 and member.get("membership") == "knock"

    await eventually(alice_sees_the_knock)
    status, body = await a.api.post(f"/rooms/{room_id}/invite", {"user_id": bob["user_id"]},
                                    token=alice["access_token"])
    assert status == 200, body
    await sync_until(b.api, bob["access_token"], lambda s: s["rooms"]["invite"].get(room_id))
    status, body = await b.api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    assert status == 200, body


async def test_an_invite_from_the_other_server_is_rejected(pair):
    a, b = pair
    alice, bob = await a.user("alice"), await b.user("bob")
    room_id = await a.api.create_room(alice["access_token"], preset="private_chat", invite=[])
    await a.api.post(f"/rooms/{room_id}/invite", {"user_id": bob["user_id"]}, token=alice["access_token"])
    await sync_until(b.api, bob["access_token"], lambda s: s["rooms"]["invite"].get(room_id))
    status, body = await b.api.post(f"/rooms/{room_id}/leave", {}, token=bob["access_token"])
    assert status == 200, body
    await sync_until(b.api, bob["access_token"], lambda s: room_id in s["rooms"]["leave"],
                     filter={"room": {"include_leave": True}})

    async def alice_sees_the_rejection():
        status, member = await a.api.get(f"/rooms/{room_id}/state/m.room.member/{bob['user_id']}",
                                         token=alice["access_token"])
        return status == 200 and member.get("membership") == "leave"

    await eventually(alice_sees_the_rejection)


async def test_a_restricted_room_admits_members_of_its_allowed_room_through_the_resident(pair):
    a, b = pair
    alice, bob = await a.user("alice"), await b.user("bob")
    space = await a.api.create_room(alice["access_token"], preset="public_chat", room_version="10")
    status, _ = await b.api.post(f"/join/{space}", {}, token=bob["access_token"], params={"via": a.name})
    assert status == 200
    rule = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}
    room_id = await a.api.create_room(alice["access_token"], preset="private_chat", room_version="10",
                                      initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": rule}])
    status, body = await b.api.post(f"/join/{room_id}", {}, token=bob["access_token"], params={"via": a.name})
    assert status == 200, body
    head = await a.hs.rooms.head(room_id)
    join = head.state[("m.room.member", bob["user_id"])]
    assert join.content["join_authorised_via_users_server"] == alice["user_id"]
    assert set(join.signatures) == {a.name, b.name}
    carol = await b.user("carol")  # in no allowed room
    status, body = await b.api.post(f"/join/{room_id}", {}, token=carol["access_token"], params={"via": a.name})
    assert status == 403, body


async def test_the_other_servers_room_directory(pair):
    a, b = pair
    alice, bob = await a.user("alice"), await b.user("bob")
    room_id = await a.api.create_room(alice["access_token"], preset="public_chat", visibility="public",
                                      name="Lobby of a")
    status, page = await b.api.get("/publicRooms", params={"server": a.name}, token=bob["access_token"])
    assert status == 200, page
    assert [room["room_id"] for room in page["chunk"]] == [room_id]
    status, page = await b.api.post("/publicRooms", {"filter": {"generic_search_term": "lobby"}},
                                    params={"server": a.name}, token=bob["access_token"])
    assert status == 200 and [room["name"] for room in page["chunk"]] == ["Lobby of a"]
    status, page = await b.api.get("/publicRooms", params={"server": "unreachable.invalid"},
                                   token=bob["access_token"])
    assert status == 502


async def test_the_network_directories_of_the_other_server(start_federated, tmp_path):
    """An application service's network directory on `a` is asked by `b`'s users as a's own
    list is, apart from it, through both forms of the federation API."""
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(registration(None, protocols=["irc"])))
    a = await start_federated("a", app_services={"registration_files": [str(path)]})
    b = await start_federated("b")
    alice, bob = await a.user("alice"), await b.user("bob")
    await a.api.create_room(alice["access_token"], preset="public_chat", visibility="public", name="Lobby")
    portal = await a.api.create_room(alice["access_token"], preset="public_chat", name="Portal")
    status, body = await a.api.put(f"/directory/list/appservice/libera/{portal}", {"visibility": "public"},
                                   token=AS_TOKEN)
    assert status == 200, body

    async def names(body=None, **query) -> list[str]:
        params = {"server": a.name, **query}
        if body is None:
            status, page = await b.api.get("/publicRooms", params=params, token=bob["access_token"])
        else:
            status, page = await b.api.post("/publicRooms", body, params=params, token=bob["access_token"])
        assert status == 200, page
        return sorted(room["name"] for room in page["chunk"])

    assert await names() == await names({}) == ["Lobby"]
    assert await names(include_all_networks="true") == await names({"include_all_networks": True}) == [
        "Lobby", "Portal"]
    assert await names(third_party_instance_id="bridge|libera") == ["Portal"]
    assert await names({"third_party_instance_id": "bridge|libera"}) == ["Portal"]
    assert await names({"third_party_instance_id": "bridge|oftc"}) == []
    status, page = await signed(b, a, "GET", f"{FED}/v1/publicRooms", query={"third_party_instance_id": "bridge|libera"})
    assert status == 200 and [room["room_id"] for room in page["chunk"]] == [portal]
    status, body = await signed(b, a, "POST", f"{FED}/v1/publicRooms",
                                body={"include_all_networks": True, "third_party_instance_id": "bridge|libera"})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"


async def test_keys_and_to_device_messages_cross(pair):
    a, b = pair
    alice, bob = await a.user("alice"), await b.user("bob")
    room_id = await a.api.create_room(alice["access_token"], preset="public_chat")
    await b.api.post(f"/join/{room_id}", {}, token=bob["access_token"], params={"via": a.name})
    device = Device.of(bob)
    keys = device.device_keys()
    status, body = await b.api.post("/keys/upload", {"device_keys": keys, "one_time_keys": device.one_time_keys(2)},
                                    token=bob["access_token"])
    assert status == 200, body
    status, body = await a.api.post("/keys/query", {"device_keys": {bob["user_id"]: []}}, token=alice["access_token"])
    assert status == 200 and body["failures"] == {}
    assert body["device_keys"][bob["user_id"]][bob["device_id"]]["keys"] == keys["keys"]
    status, body = await a.api.post("/keys/claim", {"one_time_keys": {bob["user_id"]: {
        bob["device_id"]: "signed_curve25519"}}}, token=alice["access_token"])
    assert status == 200 and body["failures"] == {}
    assert len(body["one_time_keys"][bob["user_id"]][bob["device_id"]]) == 1
    status, body = await a.api.put("/sendToDevice/m.test/t1", {"messages": {bob["user_id"]: {
        bob["device_id"]: {"secret": "for bob"}}}}, token=alice["access_token"])
    assert status == 200, body
    delivered = await sync_until(b.api, bob["access_token"], lambda s: s["to_device"]["events"])
    assert delivered == [{"sender": alice["user_id"], "type": "m.test", "content": {"secret": "for bob"}}]
    status, body = await a.api.post("/keys/query", {"device_keys": {"@nobody:unreachable.invalid": []}},
                                    token=alice["access_token"])
    assert status == 200 and list(body["failures"]) == ["unreachable.invalid"]


async def test_keys_come_from_a_notary_when_their_server_is_down(pair, start_federated):
    a, b = pair
    key_id = b.hs.signing_key.key_id
    assert await a.hs.federation.keys.verify_key(b.name, key_id)  # a has b's keys
    c = await start_federated("c", federation={"trusted_key_servers": [a.name]})
    await b.hs.stop()
    assert await c.hs.federation.keys.verify_key(b.name, key_id) == bytes(b.hs.signing_key.verify_key)
