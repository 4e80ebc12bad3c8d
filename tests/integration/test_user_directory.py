"""The user directory: who a searcher may find, matching, limits and deactivated users."""

from __future__ import annotations



async def search(api, user, term, **extra):
    status, body = await api.post("/user_directory/search", {"search_term": term, **extra},
                                  token=user["access_token"])
    assert status == 200, body
    return body


def ids(body):
    return [result["user_id"] for result in body["results"]]


async def test_search_scope_shared_rooms_and_public_rooms(api, homeserver):
    alice, bob, carol, dave, erin = await api.register_all("alice", "bob", "carol", "dave", "erin")
    await api.put("/profile/@bob:localhost/displayname", {"displayname": "Robert Tables"}, token=bob["access_token"])
    await api.put("/profile/@carol:localhost/displayname", {"displayname": "Carol Tables"},
                  token=carol["access_token"])
    await api.put("/profile/@dave:localhost/displayname", {"displayname": "Dave Tables"}, token=dave["access_token"])
    # bob shares a private room with alice; carol is in a public room; dave shares nothing.
    private = await api.create_room(alice["access_token"], invite=["@bob:localhost"])
    assert (await api.post(f"/join/{private}", {}, token=bob["access_token"]))[0] == 200
    public = await api.create_room(carol["access_token"], preset="public_chat")

    found = await search(api, alice, "tables")
    assert sorted(ids(found)) == ["@bob:localhost", "@carol:localhost"]
    assert found["limited"] is False
    robert = next(r for r in found["results"] if r["user_id"] == "@bob:localhost")
    assert robert == {"user_id": "@bob:localhost", "display_name": "Robert Tables"}
    # Word prefixes of the display name, any case, and the user ID match; the middle of a word does not.
    assert ids(await search(api, alice, "ROB")) == ["@bob:localhost"]
    assert ids(await search(api, alice, "obert")) == []
    assert ids(await search(api, alice, "bob")) == ["@bob:localhost"]
    assert ids(await search(api, alice, "robert tab")) == ["@bob:localhost"]
    assert ids(await search(api, erin, "tables")) == ["@carol:localhost"]
    # The searcher finds themself.
    assert ids(await search(api, dave, "dave")) == ["@dave:localhost"]
    assert ids(await search(api, alice, "%")) == []

    # A room that stops being public takes its members out of strangers' results.
    status, _ = await api.put(f"/rooms/{public}/state/m.room.join_rules", {"join_rule": "invite"},
                              token=carol["access_token"])
    assert status == 200
    assert ids(await search(api, erin, "tables")) == []
    status, _ = await api.put(f"/rooms/{public}/state/m.room.join_rules", {"join_rule": "public"},
                              token=carol["access_token"])
    assert ids(await search(api, erin, "tables")) == ["@carol:localhost"]

    # Deactivated users are never found.
    assert await homeserver.users.deactivate("@carol:localhost")
    assert ids(await search(api, erin, "carol")) == []


async def test_limit_and_bad_requests(api):
    people = await api.register_all("ann1", "ann2", "ann3")
    room = await api.create_room(people[0]["access_token"], preset="public_chat")
    for person in people[1:]:
        await api.post(f"/join/{room}", {}, token=person["access_token"])
    limited = await search(api, people[0], "ann", limit=2)
    assert len(limited["results"]) == 2 and limited["limited"] is True
    assert len((await search(api, people[0], "ann"))["results"]) == 3
    status, body = await api.post("/user_directory/search", {}, token=people[0]["access_token"])
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.post("/user_directory/search", {"search_term": 5}, token=people[0]["access_token"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.post("/user_directory/search", {"search_term": "ann"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
