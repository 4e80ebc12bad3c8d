"""The space hierarchy: GET /_matrix/client/v1/rooms/{roomId}/hierarchy, with matrix-nio and raw HTTP."""

from __future__ import annotations

from urllib.parse import quote

import nio

from tests.conftest import Api


async def _user(api: Api, name: str) -> str:
    return (await api.register(name))["access_token"]


async def _room(api: Api, token: str, name: str, *, space: bool = False, **body) -> str:
    if space:
        body["creation_content"] = {"type": "m.space"}
    status, created = await api.post("/createRoom", {"name": name, **body}, token=token)
    assert status == 200, created
    return created["room_id"]


async def _link(api: Api, token: str, parent: str, child: str, **content) -> None:
    content.setdefault("via", ["localhost"])
    status, body = await api.put(f"/rooms/{quote(parent)}/state/m.space.child/{quote(child)}", content, token=token)
    assert status == 200, body


async def _hierarchy(api: Api, token: str, room_id: str, **params) -> tuple[int, dict]:
    params = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in params.items()}
    return await api.get(f"/_matrix/client/v1/rooms/{quote(room_id)}/hierarchy", token=token, params=params)


async def _tree(api: Api, owner: str) -> dict[str, str]:
    """Space (public) -> Dee (invite-only, world readable; order a), Ay (public, suggested; order b),
    Sub (public space, suggested; order c) -> Bee (invite-only; order a), Cee (public, suggested; order b).
    Sub also links back to Space (a loop), to an unknown remote room, and has a link without via."""
    rooms = {
        "Space": await _room(api, owner, "Space", space=True, preset="public_chat"),
        "Dee": await _room(api, owner, "Dee", preset="private_chat", initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}]),
        "Ay": await _room(api, owner, "Ay", preset="public_chat", topic="first room"),
        "Sub": await _room(api, owner, "Sub", space=True, preset="public_chat"),
        "Bee": await _room(api, owner, "Bee", preset="private_chat"),
        "Cee": await _room(api, owner, "Cee", preset="public_chat"),
    }
    await _link(api, owner, rooms["Space"], rooms["Sub"], order="c", suggested=True)
    await _link(api, owner, rooms["Space"], rooms["Ay"], order="b", suggested=True)
    await _link(api, owner, rooms["Space"], rooms["Dee"], order="a")
    await _link(api, owner, rooms["Sub"], rooms["Cee"], order="b", suggested=True)
    await _link(api, owner, rooms["Sub"], rooms["Bee"], order="a")
    await _link(api, owner, rooms["Sub"], rooms["Space"], order="z")
    await _link(api, owner, rooms["Sub"], "!remote:example.org", order="y")
    status, _ = await api.put(f"/rooms/{quote(rooms['Sub'])}/state/m.space.child/{quote(rooms['Ay'])}", {},
                              token=owner)
    return rooms


def _names(body: dict) -> list[str]:
    return [room.get("name") for room in body["rooms"]]


async def test_hierarchy_walks_depth_first_in_the_spec_order(api):
    alice = await _user(api, "alice")
    rooms = await _tree(api, alice)
    status, body = await _hierarchy(api, alice, rooms["Space"])
    assert status == 200, body
    assert _names(body) == ["Space", "Dee", "Ay", "Sub", "Bee", "Cee"]
    assert "next_batch" not in body
    space, ay, sub = body["rooms"][0], body["rooms"][2], body["rooms"][3]
    assert space["room_type"] == "m.space" and space["join_rule"] == "public" and space["num_joined_members"] == 1
    assert space["room_version"] == "11" and space["world_readable"] is False and space["guest_can_join"] is False
    assert [child["state_key"] for child in space["children_state"]] == [rooms["Dee"], rooms["Ay"], rooms["Sub"]]
    first = space["children_state"][0]
    assert set(first) == {"type", "state_key", "content", "sender", "origin_server_ts"}
    assert first["type"] == "m.space.child" and first["sender"] == "@alice:localhost"
    assert first["content"] == {"via": ["localhost"], "order": "a"}
    assert ay["children_state"] == [] and ay["topic"] == "first room" and "room_type" not in ay
    # the child without via is no child; the loop back and the remote room are listed as children
    assert [child["state_key"] for child in sub["children_state"]] == [
        rooms["Bee"], rooms["Cee"], "!remote:example.org", rooms["Space"]]


async def test_hierarchy_leaves_out_rooms_the_user_cannot_see(api):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    rooms = await _tree(api, alice)
    status, body = await _hierarchy(api, bob, rooms["Space"])
    assert status == 200, body
    assert _names(body) == ["Space", "Dee", "Ay", "Sub", "Cee"]  # Bee is invite-only
    status, body = await api.post(f"/rooms/{quote(rooms['Bee'])}/invite", {"user_id": "@bob:localhost"}, token=alice)
    status, body = await _hierarchy(api, bob, rooms["Space"])
    assert _names(body) == ["Space", "Dee", "Ay", "Sub", "Bee", "Cee"]  # an invite is enough
    # a private root is refused
    status, body = await _hierarchy(api, bob, rooms["Bee"])
    assert status == 200  # invited
    private = await _room(api, alice, "Private", space=True, preset="private_chat")
    status, body = await _hierarchy(api, bob, private)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, body = await _hierarchy(api, bob, "!unknown:localhost")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    # banned users see the public space no more
    status, body = await api.post(f"/rooms/{quote(rooms['Space'])}/ban", {"user_id": "@bob:localhost"}, token=alice)
    assert status == 200, body
    status, body = await _hierarchy(api, bob, rooms["Space"])
    assert status == 403


async def test_restricted_rooms_are_shown_to_members_of_the_allowed_rooms(api):
    alice, bob, eve = [await _user(api, name) for name in ("alice", "bob", "eve")]
    space = await _room(api, alice, "Space", space=True, preset="public_chat")
    restricted = await _room(api, alice, "Members only", preset="private_chat", initial_state=[
        {"type": "m.room.join_rules",
         "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    await _link(api, alice, space, restricted)
    status, body = await api.post(f"/join/{quote(space)}", {}, token=bob)
    assert status == 200, body
    status, body = await _hierarchy(api, bob, space)
    assert _names(body) == ["Space", "Members only"]
    assert body["rooms"][1]["join_rule"] == "restricted" and body["rooms"][1]["allowed_room_ids"] == [space]
    status, body = await _hierarchy(api, eve, space)
    assert _names(body) == ["Space"]


async def test_suggested_only_and_max_depth(api):
    alice = await _user(api, "alice")
    rooms = await _tree(api, alice)
    status, body = await _hierarchy(api, alice, rooms["Space"], suggested_only=True)
    assert _names(body) == ["Space", "Ay", "Sub", "Cee"]
    assert [c["state_key"] for c in body["rooms"][0]["children_state"]] == [rooms["Ay"], rooms["Sub"]]
    status, body = await _hierarchy(api, alice, rooms["Space"], max_depth=1)
    assert _names(body) == ["Space", "Dee", "Ay", "Sub"]
    assert len(body["rooms"][3]["children_state"]) == 4  # its children are named, not walked
    status, body = await _hierarchy(api, alice, rooms["Space"], max_depth=0)
    assert _names(body) == ["Space"]
    status, body = await _hierarchy(api, alice, rooms["Sub"])  # the loop leads back up, once
    assert _names(body) == ["Sub", "Bee", "Cee", "Space", "Dee", "Ay"]


async def test_paging_with_nio(homeserver, api, tmp_path):
    alice = await _user(api, "alice")
    rooms = await _tree(api, alice)
    client = nio.AsyncClient(homeserver.base_url, "@alice:localhost", store_path=str(tmp_path))
    try:
        await client.login("correct horse")
        seen, token, pages = [], None, 0
        while True:
            page = await client.space_get_hierarchy(rooms["Space"], from_page=token, limit=2)
            assert isinstance(page, nio.responses.SpaceGetHierarchyResponse), page
            pages += 1
            seen += [room["name"] for room in page.rooms]
            token = page.next_batch
            if token is None:
                break
        assert seen == ["Space", "Dee", "Ay", "Sub", "Bee", "Cee"] and pages == 3
        first = await client.space_get_hierarchy(rooms["Space"], limit=2, suggested_only=True)
        assert [room["name"] for room in first.rooms] == ["Space", "Ay"]
        second = await client.space_get_hierarchy(rooms["Space"], from_page=first.next_batch, limit=2,
                                                  suggested_only=True)
        assert [room["name"] for room in second.rooms] == ["Sub", "Cee"] and second.next_batch is None
    finally:
        await client.close()

    status, first = await _hierarchy(api, alice, rooms["Space"], limit=3)
    status, body = await _hierarchy(api, alice, rooms["Space"], limit=3, suggested_only=True, **{"from": first["next_batch"]})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await _hierarchy(api, alice, rooms["Space"], limit=3, max_depth=1, **{"from": first["next_batch"]})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await _hierarchy(api, alice, rooms["Sub"], limit=3, **{"from": first["next_batch"]})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await _hierarchy(api, alice, rooms["Space"], **{"from": "not-a-token"})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    for bad in ({"limit": 0}, {"limit": "x"}, {"max_depth": -1}, {"suggested_only": "maybe"}):
        status, body = await _hierarchy(api, alice, rooms["Space"], **bad)
        assert status == 400 and body["errcode"] == "M_INVALID_PARAM", bad
    status, body = await api.get(f"/_matrix/client/v1/rooms/{quote(rooms['Space'])}/hierarchy")
    assert status == 401
