"""Profiles over real HTTP: fields, limits, permissions and propagation into member events."""

from __future__ import annotations

import nio
import pytest


async def member_event(api, token, room_id, user_id):
    status, content = await api.get(f"/rooms/{room_id}/state/m.room.member/{user_id}", token=token)
    assert status == 200, content
    return content


async def test_nio_sets_and_reads_displayname_and_avatar(homeserver, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@carol:localhost", store_path=str(tmp_path))
    try:
        await client.register("carol", "correct horse")
        assert isinstance(await client.set_displayname("Carol C"), nio.ProfileSetDisplayNameResponse)
        assert isinstance(await client.set_avatar("mxc://localhost/abc"), nio.ProfileSetAvatarResponse)
        profile = await client.get_profile("@carol:localhost")
        assert isinstance(profile, nio.ProfileGetResponse), profile
        assert (profile.displayname, profile.avatar_url) == ("Carol C", "mxc://localhost/abc")
        name = await client.get_displayname()
        assert name.displayname == "Carol C"
    finally:
        await client.close()


async def test_profile_change_reaches_every_joined_room(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    first = await api.create_room(token, preset="public_chat")
    second = await api.create_room(token, preset="public_chat")
    status, _ = await api.post(f"/join/{first}", {}, token=bob["access_token"])
    assert status == 200
    status, _ = await api.put("/profile/@alice:localhost/displayname", {"displayname": "Alice A"}, token=token)
    assert status == 200
    status, _ = await api.put("/profile/@alice:localhost/avatar_url", {"avatar_url": "mxc://localhost/pic"}, token=token)
    assert status == 200
    for room_id in (first, second):
        content = await member_event(api, bob["access_token"] if room_id == first else token, room_id,
                                     "@alice:localhost")
        assert content == {"membership": "join", "displayname": "Alice A", "avatar_url": "mxc://localhost/pic"}
    # Bob's own member event is left alone.
    assert (await member_event(api, token, first, "@bob:localhost"))["displayname"] == "bob"

    status, _ = await api.delete("/profile/@alice:localhost/avatar_url", token=token)
    assert status == 200
    assert await member_event(api, token, second, "@alice:localhost") == {"membership": "join",
                                                                          "displayname": "Alice A"}
    status, body = await api.get("/profile/@alice:localhost/avatar_url")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_extended_fields_round_trip_and_delete(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    assert (await api.put("/profile/@alice:localhost/m.tz", {"m.tz": "Europe/London"}, token=token))[0] == 200
    status, _ = await api.put("/profile/@alice:localhost/org.example.pets", {"org.example.pets": ["cat", 2]},
                              token=token)
    assert status == 200
    status, profile = await api.get("/profile/@alice:localhost")
    assert (status, profile) == (200, {"displayname": "alice", "m.tz": "Europe/London",
                                       "org.example.pets": ["cat", 2]})
    assert await api.get("/profile/@alice:localhost/org.example.pets") == (200, {"org.example.pets": ["cat", 2]})
    assert (await api.delete("/profile/@alice:localhost/org.example.pets", token=token))[0] == 200
    status, body = await api.get("/profile/@alice:localhost/org.example.pets")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_profile_errors(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    status, body = await api.put("/profile/@bob:localhost/displayname", {"displayname": "evil"}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.delete("/profile/@bob:localhost/m.tz", token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.get("/profile/@nobody:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.put("/profile/@alice:localhost/displayname", {"other": 1}, token=token)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.put("/profile/@alice:localhost/displayname", {"displayname": 5}, token=token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.put("/profile/@alice:localhost/avatar_url", {"avatar_url": "http://x/y"}, token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.put("/profile/@alice:localhost/NotNamespaced", {"NotNamespaced": 1}, token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    long_key = "org.example." + "k" * 250
    status, body = await api.put(f"/profile/@alice:localhost/{long_key}", {long_key: 1}, token=token)
    assert (status, body["errcode"]) == (400, "M_KEY_TOO_LARGE")
    status, body = await api.put("/profile/@alice:localhost/org.example.big", {"org.example.big": "x" * 40000},
                                 token=token)
    assert status == 200, body
    status, body = await api.put("/profile/@alice:localhost/org.example.bigger", {"org.example.bigger": "x" * 30000},
                                 token=token)
    assert (status, body["errcode"]) == (400, "M_PROFILE_TOO_LARGE")
    status, body = await api.put("/profile/@alice:localhost/displayname", {"displayname": "ok"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("bad", ["mxc://", "mxc://localhost", "mxc://localhost/", "mxc://localhost/a/../b",
                                 "mxc://bad host/media", "mxc://localhost/media id", "mxc://localhost/media\n",
                                 "MXC://localhost/media", " mxc://localhost/media"])
async def test_avatar_url_must_be_an_mxc_uri(api, bad):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    status, body = await api.put("/profile/@alice:localhost/avatar_url", {"avatar_url": bad}, token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad
    assert "avatar_url" not in (await api.get("/profile/@alice:localhost"))[1]


async def test_avatar_url_can_be_set_and_cleared(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    for clear in ({"avatar_url": None}, {"avatar_url": ""}, None):
        status, _ = await api.put("/profile/@alice:localhost/avatar_url", {"avatar_url": "mxc://localhost/abc_DEF-1"},
                                  token=token)
        assert status == 200
        assert (await api.get("/profile/@alice:localhost/avatar_url"))[1] == {"avatar_url": "mxc://localhost/abc_DEF-1"}
        if clear is None:
            status, _ = await api.delete("/profile/@alice:localhost/avatar_url", token=token)
        else:
            status, _ = await api.put("/profile/@alice:localhost/avatar_url", clear, token=token)
        assert status == 200
        assert "avatar_url" not in (await api.get("/profile/@alice:localhost"))[1], clear
