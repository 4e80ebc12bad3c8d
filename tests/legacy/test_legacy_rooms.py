"""Rooms and members of the draft API: creation under a chosen or allocated ID, topics,
the public room list, joining, inviting, leaving, the member list; the same rooms seen
through today's API."""

from __future__ import annotations

from draft_support import DraftApi


async def test_a_chosen_room_id_is_an_alias_seen_by_both_apis(draft: DraftApi, api):
    _, token = await draft.register("alice", "a fine password")
    status, body = await draft.put("/rooms/room_beta@sy.org", {"visibility": "public"}, token=token)
    assert (status, body) == (200, {})
    status, resolved = await api.get("/directory/room/%23room_beta:sy.org")
    assert status == 200
    room_id = resolved["room_id"]
    status, published = await api.get("/publicRooms")
    assert [room["room_id"] for room in published["chunk"]] == [room_id]
    # The room ID itself names the room too, and a bare name means this server.
    for name in ("room_beta@sy.org", "room_beta", "%23room_beta:sy.org", room_id):
        await draft.ok("PUT", f"/rooms/{name}/topic", {"topic": f"set via {name[-12:]}"}, token=token)
        assert (await draft.ok("GET", f"/rooms/{name}/topic", token=token)) == {"topic": f"set via {name[-12:]}"}
    status, state = await api.get(f"/rooms/{room_id}/state/m.room.topic", token=token)
    assert (status, state) == (200, {"topic": f"set via {room_id[-12:]}"})


async def test_a_taken_room_id_suggests_a_free_one(draft: DraftApi):
    _, token = await draft.register("alice")
    await draft.ok("PUT", "/rooms/room_beta@sy.org", {}, token=token)
    status, body = await draft.put("/rooms/room_beta@sy.org", {"visibility": "public"}, token=token)
    assert (status, body["errcode"], body["error"]) == (400, "M_ROOM_IN_USE", "Room already in use.")
    suggested = body["suggested_room_id"]
    assert suggested.startswith("room_beta") and suggested.endswith("@sy.org")
    await draft.ok("PUT", f"/rooms/{suggested}", {}, token=token)


async def test_post_rooms_allocates_an_id(draft: DraftApi, api):
    _, token = await draft.register("alice")
    status, created = await draft.post("/rooms", {"visibility": "public"}, token=token)
    assert status == 200 and created["visibility"] == "public" and created["room_id"].endswith("@sy.org")
    status, resolved = await api.get("/directory/room/%23" + created["room_id"].replace("@", ":"))
    assert status == 200
    listed = await draft.ok("GET", "/public/rooms", token=token)
    assert listed == {"chunk": [{"room_id": created["room_id"], "num_members": 1}], "total": 1}
    status, private = await draft.post("/rooms", {}, token=token)
    assert status == 200 and private["visibility"] == "private"
    assert (await draft.ok("GET", "/public/rooms", token=token))["total"] == 1


async def test_rooms_of_todays_api_keep_their_alias_or_room_id(draft: DraftApi, api):
    alice = (await api.register("alice"))["access_token"]
    named = await api.create_room(alice, preset="public_chat", visibility="public", room_alias_name="named",
                                  topic="today")
    unnamed = await api.create_room(alice, preset="public_chat", visibility="public")
    _, token = await draft.register("bob")
    listed = await draft.ok("GET", "/public/rooms", token=token)
    assert listed["chunk"] == [{"room_id": "named@sy.org", "num_members": 1, "topic": "today"},
                               {"room_id": unnamed, "num_members": 1}]
    await draft.ok("PUT", "/rooms/named@sy.org/members/bob@sy.org/state", {"membership": "join"}, token=token)
    await draft.ok("PUT", f"/rooms/{unnamed}/members/bob@sy.org/state", {"membership": "join"}, token=token)
    status, members = await api.get(f"/rooms/{named}/joined_members", token=alice)
    assert set(members["joined"]) == {"@alice:sy.org", "@bob:sy.org"}


async def test_join_invite_leave_and_the_member_list(draft: DraftApi):
    _, alice = await draft.register("alice")
    _, bob = await draft.register("bob")
    _, carol = await draft.register("carol")
    await draft.ok("PUT", "/rooms/club@sy.org", {}, token=alice)  # private: invited users only
    status, body = await draft.put("/rooms/club@sy.org/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await draft.ok("PUT", "/rooms/club@sy.org/members/bob@sy.org/state", {"membership": "invite"}, token=alice)
    assert await draft.ok("GET", "/rooms/club@sy.org/members/bob@sy.org/state", token=bob) == {
        "membership": "invite", "displayname": "bob"}
    await draft.ok("PUT", "/rooms/club@sy.org/members/@bob:sy.org/state", {"membership": "join"}, token=bob)
    await draft.ok("PUT", "/rooms/club@sy.org/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    await draft.ok("PUT", "/rooms/club@sy.org/members/carol@sy.org/state", {"membership": "invite"}, token=bob)
    members = await draft.ok("GET", "/rooms/club@sy.org/members/list", token=alice)
    assert [(m["user_id"], m["content"]["membership"], m.get("from")) for m in members["chunk"]] == [
        ("alice@sy.org", "join", None), ("bob@sy.org", "join", None), ("carol@sy.org", "invite", "bob@sy.org")]
    assert "start" not in members and all(m["type"] == "m.room.member" and m["room_id"] == "club@sy.org"
                                          for m in members["chunk"])
    page = await draft.ok("GET", "/rooms/club@sy.org/members/list", params={"from": "0", "limit": "1"}, token=alice)
    assert [m["user_id"] for m in page["chunk"]] == ["bob@sy.org"] and (page["start"], page["end"]) == ("1", "1")

    status, body = await draft.delete("/rooms/club@sy.org/members/bob@sy.org/state", token=bob)
    assert (status, body) == (200, {})
    assert await draft.ok("GET", "/rooms/club@sy.org/members/bob@sy.org/state", token=alice) == {"membership": "leave"}
    await draft.ok("DELETE", "/rooms/club@sy.org/members/bob@sy.org/state", token=bob)  # again: harmless
    await draft.ok("DELETE", "/rooms/club@sy.org/members/carol@sy.org/state", token=carol)  # declines
    members = await draft.ok("GET", "/rooms/club@sy.org/members/list", token=alice)
    assert [m["user_id"] for m in members["chunk"]] == ["alice@sy.org"]


ROOM_ERRORS = [
    ("PUT", "/rooms/!opaque:sy.org", {}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/lobby@elsewhere.org", {}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/two words@sy.org", {}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/nul%00@sy.org", {}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/fresh@sy.org", {"visibility": "secret"}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/fresh@sy.org", {"visibility": 1}, 400, "M_BAD_JSON"),
    ("POST", "/rooms", {"visibility": "hidden"}, 400, "M_BAD_JSON"),
    ("GET", "/rooms/nowhere@sy.org/topic", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/!nowhere:sy.org/topic", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/lobby@sy.org/topic", None, 404, "M_NOT_FOUND"),
    ("PUT", "/rooms/lobby@sy.org/topic", {}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/lobby@sy.org/topic", {"topic": 3}, 400, "M_BAD_JSON"),
    ("GET", "/rooms/secret@sy.org/topic", None, 403, "M_FORBIDDEN"),
    ("PUT", "/rooms/secret@sy.org/topic", {"topic": "mine now"}, 403, "M_FORBIDDEN"),
    ("GET", "/public/rooms?from=x", None, 400, "M_BAD_PAGINATION"),
    ("GET", "/public/rooms?limit=-1", None, 400, "M_BAD_PAGINATION"),
    ("GET", "/rooms/list?to=", None, 400, "M_BAD_PAGINATION"),
    ("PUT", "/rooms/lobby@sy.org/members/stranger@sy.org/state", {"membership": "leave"}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/lobby@sy.org/members/stranger@sy.org/state", {}, 400, "M_BAD_JSON"),
    ("PUT", "/rooms/lobby@sy.org/members/owner@sy.org/state", {"membership": "join"}, 403, "M_FORBIDDEN"),
    ("PUT", "/rooms/lobby@sy.org/members/ghost@sy.org/state", {"membership": "invite"}, 404, "M_NOT_FOUND"),
    ("PUT", "/rooms/lobby@sy.org/members/who@elsewhere.org/state", {"membership": "invite"}, 403, "M_FORBIDDEN"),
    ("PUT", "/rooms/secret@sy.org/members/stranger@sy.org/state", {"membership": "invite"}, 403, "M_FORBIDDEN"),
    ("PUT", "/rooms/nowhere@sy.org/members/stranger@sy.org/state", {"membership": "join"}, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/secret@sy.org/members/owner@sy.org/state", None, 403, "M_FORBIDDEN"),
    ("GET", "/rooms/lobby@sy.org/members/ghost@sy.org/state", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/lobby@sy.org/members/who@not a server/state", None, 400, "M_BAD_JSON"),
    ("DELETE", "/rooms/lobby@sy.org/members/owner@sy.org/state", None, 403, "M_FORBIDDEN"),
    ("DELETE", "/rooms/secret@sy.org/members/stranger@sy.org/state", None, 404, "M_NOT_FOUND"),
    ("GET", "/rooms/secret@sy.org/members/list", None, 403, "M_FORBIDDEN"),
    ("GET", "/rooms/nowhere@sy.org/members/list", None, 404, "M_NOT_FOUND"),
]


async def test_room_and_member_errors(draft: DraftApi):
    _, owner = await draft.register("owner")
    _, stranger = await draft.register("stranger")
    await draft.ok("PUT", "/rooms/lobby@sy.org", {"visibility": "public"}, token=owner)
    await draft.ok("PUT", "/rooms/secret@sy.org", {}, token=owner)
    await draft.ok("PUT", "/rooms/lobby@sy.org/members/stranger@sy.org/state", {"membership": "join"}, token=stranger)
    for method, path, body, status, errcode in ROOM_ERRORS:
        got, answer = await draft.request(method, path, body, token=stranger)
        assert (got, answer.get("errcode")) == (status, errcode), (method, path, answer)
        assert isinstance(answer["error"], str) and answer["error"]


async def test_the_member_state_of_oneself_when_only_invited(draft: DraftApi):
    _, owner = await draft.register("owner")
    _, guest = await draft.register("guest")
    await draft.ok("PUT", "/rooms/secret@sy.org", {}, token=owner)
    status, body = await draft.get("/rooms/secret@sy.org/members/guest@sy.org/state", token=guest)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    await draft.ok("PUT", "/rooms/secret@sy.org/members/guest@sy.org/state", {"membership": "invite"}, token=owner)
    assert (await draft.ok("GET", "/rooms/secret@sy.org/members/guest@sy.org/state", token=guest))["membership"] \
        == "invite"
