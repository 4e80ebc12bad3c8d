"""Room aliases and the published room directory, over real HTTP and with matrix-nio."""

from __future__ import annotations

from urllib.parse import quote

import nio

from tests.conftest import Api


async def _user(api: Api, name: str) -> str:
    return (await api.register(name))["access_token"]


async def _join(api: Api, token: str, room_id: str) -> None:
    status, body = await api.post(f"/join/{quote(room_id)}", {}, token=token)
    assert status == 200, body


def _alias_path(alias: str) -> str:
    return f"/directory/room/{quote(alias, safe='')}"


async def _make_admin(homeserver, user_id: str) -> None:
    await homeserver.db.execute("UPDATE users SET is_admin = 1 WHERE user_id = ?", user_id)


# -- aliases -------------------------------------------------------------------------------


async def test_nio_creates_resolves_and_deletes_an_alias(homeserver, api, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@nora:localhost", store_path=str(tmp_path))
    try:
        await client.register("nora", "correct horse")
        created = await client.room_create(name="Nora's room")
        assert isinstance(created, nio.RoomCreateResponse), created
        put = await client.room_put_alias("#nora:localhost", created.room_id)
        assert isinstance(put, nio.RoomPutAliasResponse), put
        resolved = await client.room_resolve_alias("#nora:localhost")
        assert isinstance(resolved, nio.RoomResolveAliasResponse), resolved
        assert resolved.room_id == created.room_id and resolved.servers == ["localhost"]
        again = await client.room_put_alias("#nora:localhost", created.room_id)
        assert again.transport_response.status == 409  # nio parses no error for this call
        deleted = await client.room_delete_alias("#nora:localhost")
        assert isinstance(deleted, nio.RoomDeleteAliasResponse), deleted
        gone = await client.room_resolve_alias("#nora:localhost")
        assert isinstance(gone, nio.RoomResolveAliasError) and gone.status_code == "M_NOT_FOUND"
    finally:
        await client.close()


async def test_alias_errors_follow_the_spec(api):
    alice = await _user(api, "alice")
    room_id = await api.create_room(alice)
    status, body = await api.put(_alias_path("#taken:localhost"), {"room_id": room_id}, token=alice)
    assert (status, body) == (200, {})
    status, body = await api.put(_alias_path("#taken:localhost"), {"room_id": room_id}, token=alice)
    assert status == 409 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.put(_alias_path("#elsewhere:example.org"), {"room_id": room_id}, token=alice)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    for bad in ("nohash:localhost", "#nodomain", "#with space:localhost", "#:localhost"):
        status, body = await api.put(_alias_path(bad), {"room_id": room_id}, token=alice)
        assert status == 400 and body["errcode"] == "M_INVALID_PARAM", bad
    status, body = await api.put(_alias_path("#ghost:localhost"), {"room_id": "!nope:localhost"}, token=alice)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.put(_alias_path("#nobody:localhost"), {}, token=alice)
    assert status == 400 and body["errcode"] == "M_MISSING_PARAM"
    status, body = await api.put(_alias_path("#anon:localhost"), {"room_id": room_id})
    assert status == 401
    status, body = await api.get(_alias_path("#missing:localhost"))
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.get(_alias_path("#taken:localhost"))  # resolving needs no token
    assert (status, body) == (200, {"room_id": room_id, "servers": ["localhost"]})
    status, body = await api.get(_alias_path("not-an-alias"))
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.delete(_alias_path("#missing:localhost"), token=alice)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


async def test_only_members_may_create_aliases(api):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    room_id = await api.create_room(alice)
    status, body = await api.put(_alias_path("#bobs:localhost"), {"room_id": room_id}, token=bob)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"


async def test_who_may_delete_an_alias(homeserver, api):
    alice, bob, carol, admin = [await _user(api, name) for name in ("alice", "bob", "carol", "admin")]
    room_id = await api.create_room(alice, preset="public_chat")
    for token in (bob, carol):
        await _join(api, token, room_id)
    for alias, token in (("#by-bob:localhost", bob), ("#by-carol:localhost", carol), ("#by-bob2:localhost", bob)):
        status, body = await api.put(_alias_path(alias), {"room_id": room_id}, token=token)
        assert status == 200, body
    # carol neither made it nor may set the canonical alias
    status, body = await api.delete(_alias_path("#by-bob:localhost"), token=carol)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    # its creator may
    status, _ = await api.delete(_alias_path("#by-bob:localhost"), token=bob)
    assert status == 200
    # a room admin (power to send m.room.canonical_alias) may delete anyone's alias
    status, _ = await api.delete(_alias_path("#by-carol:localhost"), token=alice)
    assert status == 200
    # and so may a server admin who is not in the room
    status, body = await api.delete(_alias_path("#by-bob2:localhost"), token=admin)
    assert status == 403
    await _make_admin(homeserver, "@admin:localhost")
    status, _ = await api.delete(_alias_path("#by-bob2:localhost"), token=admin)
    assert status == 200
    status, body = await api.get(f"/rooms/{quote(room_id)}/aliases", token=alice)
    assert body == {"aliases": []}


async def test_deleting_the_canonical_alias_updates_the_event(api):
    alice = await _user(api, "alice")
    status, created = await api.post("/createRoom", {"room_alias_name": "main"}, token=alice)
    room_id = created["room_id"]
    status, _ = await api.put(_alias_path("#alt:localhost"), {"room_id": room_id}, token=alice)
    status, _ = await api.put(f"/rooms/{quote(room_id)}/state/m.room.canonical_alias",
                              {"alias": "#main:localhost", "alt_aliases": ["#alt:localhost"]}, token=alice)
    assert status == 200
    status, _ = await api.delete(_alias_path("#alt:localhost"), token=alice)
    assert status == 200
    status, content = await api.get(f"/rooms/{quote(room_id)}/state/m.room.canonical_alias", token=alice)
    assert content == {"alias": "#main:localhost", "alt_aliases": []}
    status, _ = await api.delete(_alias_path("#main:localhost"), token=alice)
    status, content = await api.get(f"/rooms/{quote(room_id)}/state/m.room.canonical_alias", token=alice)
    assert content == {"alt_aliases": []}


async def test_local_aliases_are_listed_for_members_and_world_readable_rooms(homeserver, api):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    room_id = await api.create_room(alice, room_alias_name="first")
    await api.put(_alias_path("#second:localhost"), {"room_id": room_id}, token=alice)
    path = f"/rooms/{quote(room_id)}/aliases"
    status, body = await api.get(path, token=alice)
    assert (status, body) == (200, {"aliases": ["#first:localhost", "#second:localhost"]})
    status, body = await api.get(path, token=bob)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    await api.put(f"/rooms/{quote(room_id)}/state/m.room.history_visibility", {"history_visibility": "world_readable"},
                  token=alice)
    status, body = await api.get(path, token=bob)
    assert (status, body["aliases"]) == (200, ["#first:localhost", "#second:localhost"])
    status, body = await api.get("/rooms/!unknown:localhost/aliases", token=bob)
    assert status == 403


# -- publication ---------------------------------------------------------------------------


async def test_directory_visibility_get_and_set(homeserver, api, tmp_path):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    public = await api.create_room(alice, visibility="public")
    private = await api.create_room(alice, preset="public_chat")
    status, body = await api.get(f"/directory/list/room/{quote(public)}")
    assert (status, body) == (200, {"visibility": "public"})
    status, body = await api.get(f"/directory/list/room/{quote(private)}")
    assert (status, body) == (200, {"visibility": "private"})
    status, body = await api.get("/directory/list/room/!unknown:localhost")
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"

    await _join(api, bob, private)
    status, body = await api.put(f"/directory/list/room/{quote(private)}", {"visibility": "public"}, token=bob)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, body = await api.put(f"/directory/list/room/{quote(private)}", {"visibility": "sideways"}, token=alice)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.put(f"/directory/list/room/{quote(private)}", {}, token=alice)  # defaults to public
    assert (status, body) == (200, {})
    status, body = await api.put("/directory/list/room/!unknown:localhost", {"visibility": "public"}, token=alice)
    assert status == 404

    client = nio.AsyncClient(homeserver.base_url, "@alice:localhost", store_path=str(tmp_path))
    try:
        await client.login("correct horse")
        visibility = await client.room_get_visibility(private)
        assert isinstance(visibility, nio.RoomGetVisibilityResponse) and visibility.visibility == "public"
    finally:
        await client.close()

    await _make_admin(homeserver, "@bob:localhost")
    status, _ = await api.put(f"/directory/list/room/{quote(private)}", {"visibility": "private"}, token=bob)
    assert status == 200
    status, body = await api.get(f"/directory/list/room/{quote(private)}")
    assert body == {"visibility": "private"}


async def _directory(api: Api, tokens: list[str]) -> dict[str, str]:
    """Five published rooms with 5, 4, 3, 2 and 1 members; a private one; name -> room ID."""
    owner = tokens[0]
    rooms = {}
    specs = [
        ("Alpha", {"topic": "Cheese and crackers"}),
        ("Bravo", {"room_alias_name": "bravo-cheese"}),
        ("Charlie", {"creation_content": {"type": "m.space"}}),
        ("Delta", {"topic": "all things DELTA"}),
        ("Echo", {}),
    ]
    for index, (name, extra) in enumerate(specs):
        room_id = await api.create_room(owner, visibility="public", name=name, **extra)
        for token in tokens[1:5 - index]:
            await _join(api, token, room_id)
        rooms[name] = room_id
    rooms["Hidden"] = await api.create_room(owner, name="Hidden cheese", preset="public_chat")
    return rooms


async def test_public_rooms_paging_by_member_count(api):
    tokens = [await _user(api, name) for name in ("u0", "u1", "u2", "u3", "u4")]
    rooms = await _directory(api, tokens)
    status, everything = await api.get("/publicRooms")  # no token needed
    assert status == 200, everything
    assert [entry["name"] for entry in everything["chunk"]] == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]
    assert everything["total_room_count_estimate"] == 5
    assert "next_batch" not in everything and "prev_batch" not in everything
    alpha = everything["chunk"][0]
    assert alpha == {"room_id": rooms["Alpha"], "name": "Alpha", "topic": "Cheese and crackers",
                     "num_joined_members": 5, "world_readable": False, "guest_can_join": False,
                     "join_rule": "public"}
    bravo, charlie = everything["chunk"][1], everything["chunk"][2]
    assert bravo["canonical_alias"] == "#bravo-cheese:localhost" and bravo["num_joined_members"] == 4
    assert charlie["room_type"] == "m.space"

    seen, since, pages = [], None, 0
    while True:
        params = {"limit": "2"} | ({"since": since} if since else {})
        status, page = await api.get("/publicRooms", params=params)
        assert status == 200, page
        pages += 1
        seen += [entry["name"] for entry in page["chunk"]]
        if pages > 1:
            assert "prev_batch" in page
        since = page.get("next_batch")
        if since is None:
            break
    assert seen == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"] and pages == 3
    # back from the last page
    status, back = await api.get("/publicRooms", params={"limit": "2", "since": page["prev_batch"]})
    assert [entry["name"] for entry in back["chunk"]] == ["Charlie", "Delta"]
    assert "next_batch" in back and "prev_batch" in back

    status, body = await api.get("/publicRooms", params={"since": "garbage"})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.get("/publicRooms", params={"server": "example.org"})
    assert status == 400
    status, body = await api.get("/publicRooms", params={"server": "localhost", "limit": "1"})
    assert status == 200 and len(body["chunk"]) == 1


async def test_public_rooms_filters(homeserver, api, tmp_path):
    tokens = [await _user(api, name) for name in ("u0", "u1", "u2", "u3", "u4")]
    await _directory(api, tokens)
    owner = tokens[0]

    async def names(body):
        status, page = await api.post("/publicRooms", body, token=owner)
        assert status == 200, page
        return [entry["name"] for entry in page["chunk"]]

    assert await names({"filter": {"generic_search_term": "CHEESE"}}) == ["Alpha", "Bravo"]  # topic and alias
    assert await names({"filter": {"generic_search_term": "delta"}}) == ["Delta"]
    assert await names({"filter": {"generic_search_term": "char"}}) == ["Charlie"]  # name
    assert await names({"filter": {"room_types": ["m.space"]}}) == ["Charlie"]
    assert await names({"filter": {"room_types": [None]}}) == ["Alpha", "Bravo", "Delta", "Echo"]
    assert await names({"filter": {"room_types": [None, "m.space"]}, "limit": 3}) == ["Alpha", "Bravo", "Charlie"]
    assert await names({"filter": {"generic_search_term": "e", "room_types": [None]}, "limit": 2}) == ["Alpha", "Bravo"]
    assert await names({"third_party_instance_id": "irc|freenode"}) == []  # no such network here
    assert await names({"include_all_networks": True}) == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]

    status, page = await api.post("/publicRooms", {"filter": {"generic_search_term": "a"}, "limit": 2}, token=owner)
    assert page["total_room_count_estimate"] == 4  # Alpha, Bravo, Charlie, Delta
    status, second = await api.post("/publicRooms", {"filter": {"generic_search_term": "a"}, "limit": 2,
                                                     "since": page["next_batch"]}, token=owner)
    assert [entry["name"] for entry in second["chunk"]] == ["Charlie", "Delta"] and "next_batch" not in second

    status, body = await api.post("/publicRooms", {"filter": {"room_types": [3]}}, token=owner)
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    status, body = await api.post("/publicRooms", {})
    assert status == 401

    client = nio.AsyncClient(homeserver.base_url, "@u0:localhost", store_path=str(tmp_path))
    try:
        await client.login("correct horse")
        listed = await client.list_public_rooms(limit=2, filter_generic_search_term="cheese")
        assert isinstance(listed, nio.responses.PublicRoomsResponse), listed
        assert [room.name for room in listed.public_rooms] == ["Alpha", "Bravo"]
        spaces = await client.list_public_rooms(filter_room_types=["m.space"])
        assert [room.room_type for room in spaces.public_rooms] == ["m.space"]
    finally:
        await client.close()


async def test_rooms_everyone_left_are_not_listed(api):
    alice = await _user(api, "alice")
    room_id = await api.create_room(alice, visibility="public", name="Abandoned")
    status, _ = await api.post(f"/rooms/{quote(room_id)}/leave", {}, token=alice)
    assert status == 200
    status, page = await api.get("/publicRooms")
    assert page["chunk"] == []
