"""Presence (the draft's states 0-3, status_msg, presence lists) and profiles of the draft
API, and how they meet today's presence and profiles."""

from __future__ import annotations

from draft_support import DraftApi


async def _pair(draft: DraftApi, api) -> tuple[str, str, str]:
    """alice (draft), bob (draft) and carol (today's API) in one room; their tokens."""
    _, alice = await draft.register("alice")
    _, bob = await draft.register("bob")
    carol = (await api.register("carol"))["access_token"]
    await draft.ok("PUT", "/rooms/room_beta@sy.org", {"visibility": "public"}, token=alice)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    assert (await api.post(f"/join/{room_id}", {}, token=carol))[0] == 200
    return alice, bob, carol


async def test_draft_states_and_todays_presence_map_both_ways(draft: DraftApi, api):
    alice, bob, carol = await _pair(draft, api)
    for state, today in ((0, "offline"), (1, "unavailable"), (2, "online"), (3, "online")):
        status, body = await draft.put("/presence/alice@sy.org/status", {"state": state, "status_msg": f"{state}"},
                                       token=alice)
        assert (status, body) == (200, {})
        assert await draft.ok("GET", "/presence/alice@sy.org/status", token=bob) == {"state": state,
                                                                                     "status_msg": f"{state}"}
        status, seen = await api.get("/presence/@alice:sy.org/status", token=carol)
        assert (status, seen["presence"], seen["status_msg"]) == (200, today, f"{state}")
    for today, state in (("offline", 0), ("unavailable", 1), ("online", 2)):
        # A draft state set earlier holds only until the presence changes again.
        await draft.ok("PUT", "/presence/carol@sy.org/status", {"state": 3}, token=carol)
        assert (await draft.ok("GET", "/presence/carol@sy.org/status", token=bob))["state"] == 3
        status, _ = await api.put("/presence/@carol:sy.org/status", {"presence": today}, token=carol)
        assert status == 200
        assert await draft.ok("GET", "/presence/carol@sy.org/status", token=bob) == {"state": state}


async def test_someone_who_never_set_a_presence_is_offline(draft: DraftApi, api):
    alice, bob, _ = await _pair(draft, api)
    assert await draft.ok("GET", "/presence/bob@sy.org/status", token=alice) == {"state": 0}


async def test_presence_lists(draft: DraftApi, api):
    alice, bob, carol = await _pair(draft, api)
    _, stranger = await draft.register("stranger")
    assert await draft.ok("GET", "/presence_list/alice@sy.org", token=alice) == []
    await draft.ok("PUT", "/profile/bob@sy.org/displayname", {"displayname": "Bob B."}, token=bob)
    await draft.ok("PUT", "/presence/bob@sy.org/status", {"state": 3, "status_msg": "let's talk"}, token=bob)
    status, body = await draft.post("/presence_list/alice@sy.org", {"invite": ["bob@sy.org", "@carol:sy.org"]},
                                    token=alice)
    assert (status, body) == (200, {})
    await draft.ok("POST", "/presence_list/alice@sy.org", {"invite": ["bob@sy.org"]}, token=alice)
    entries = await draft.ok("GET", "/presence_list/alice@sy.org", token=alice)
    assert entries == [{"user_id": "bob@sy.org", "state": 3, "status_msg": "let's talk", "displayname": "Bob B."},
                       {"user_id": "carol@sy.org", "state": 0, "displayname": "carol"}]
    await draft.ok("POST", "/presence_list/alice@sy.org", {"drop": ["carol@sy.org", "nobody@sy.org"]}, token=alice)
    assert [entry["user_id"] for entry in await draft.ok("GET", "/presence_list/alice@sy.org", token=alice)] == [
        "bob@sy.org"]
    # When they no longer share a room, the entry stays and reads offline.
    await draft.ok("DELETE", "/rooms/room_beta@sy.org/members/bob@sy.org/state", token=bob)
    assert await draft.ok("GET", "/presence_list/alice@sy.org", token=alice) == [
        {"user_id": "bob@sy.org", "state": 0, "displayname": "Bob B."}]
    status, body = await draft.post("/presence_list/alice@sy.org", {"invite": ["stranger@sy.org"]}, token=alice)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


PRESENCE_AND_PROFILE_ERRORS = [
    ("PUT", "/presence/alice@sy.org/status", {"state": 2}, 403, "M_FORBIDDEN"),
    ("PUT", "/presence/bob@sy.org/status", {"state": 4}, 400, "M_BAD_JSON"),
    ("PUT", "/presence/bob@sy.org/status", {"state": "online"}, 400, "M_BAD_JSON"),
    ("PUT", "/presence/bob@sy.org/status", {"state": True}, 400, "M_BAD_JSON"),
    ("PUT", "/presence/bob@sy.org/status", {"status_msg": "no state"}, 400, "M_BAD_JSON"),
    ("PUT", "/presence/bob@sy.org/status", {"state": 2, "status_msg": "nul\u0000"}, 400, "M_BAD_JSON"),
    ("PUT", "/presence/bob@sy.org/status", None, 400, "M_NOT_JSON"),
    ("GET", "/presence/stranger@sy.org/status", None, 403, "M_FORBIDDEN"),
    ("GET", "/presence_list/alice@sy.org", None, 403, "M_FORBIDDEN"),
    ("POST", "/presence_list/alice@sy.org", {"invite": ["carol@sy.org"]}, 403, "M_FORBIDDEN"),
    ("POST", "/presence_list/bob@sy.org", {"invite": "carol@sy.org"}, 400, "M_BAD_JSON"),
    ("POST", "/presence_list/bob@sy.org", {"invite": [7]}, 400, "M_BAD_JSON"),
    ("POST", "/presence_list/bob@sy.org", {"drop": [None]}, 400, "M_BAD_JSON"),
    ("POST", "/presence_list/bob@sy.org", {"invite": ["ghost@sy.org"]}, 404, "M_NOT_FOUND"),
    ("POST", "/presence_list/bob@sy.org", {"invite": ["stranger@sy.org"]}, 403, "M_FORBIDDEN"),
    ("GET", "/profile/ghost@sy.org/displayname", None, 404, "M_NOT_FOUND"),
    ("GET", "/profile/bob@sy.org/avatar_url", None, 404, "M_NOT_FOUND"),
    ("GET", "/profile/who@not a server/displayname", None, 400, "M_BAD_JSON"),
    ("PUT", "/profile/alice@sy.org/displayname", {"displayname": "not me"}, 403, "M_FORBIDDEN"),
    ("PUT", "/profile/bob@sy.org/displayname", {}, 400, "M_BAD_JSON"),
    ("PUT", "/profile/bob@sy.org/displayname", {"displayname": 5}, 400, "M_BAD_JSON"),
    ("PUT", "/profile/bob@sy.org/displayname", {"displayname": "nul\u0000"}, 400, "M_BAD_JSON"),
    ("PUT", "/profile/bob@sy.org/avatar_url", {"avatar_url": "http://sy.org/bob.png"}, 400, "M_BAD_JSON"),
    ("PUT", "/profile/bob@sy.org/avatar_url", {"avatar_url": "mxc://sy.org/nul\u0000"}, 400, "M_BAD_JSON"),
]


async def test_presence_and_profile_errors(draft: DraftApi, api):
    _, bob, _ = await _pair(draft, api)
    await draft.register("stranger")
    for method, path, body, status, errcode in PRESENCE_AND_PROFILE_ERRORS:
        got, answer = await draft.request(method, path, body, token=bob)
        assert (got, answer.get("errcode")) == (status, errcode), (method, path, answer)


async def test_profiles_are_todays_profiles(draft: DraftApi, api):
    alice, bob, carol = await _pair(draft, api)
    assert await draft.ok("GET", "/profile/carol@sy.org/displayname", token=bob) == {"displayname": "carol"}
    status, body = await draft.put("/profile/bob@sy.org/displayname", {"displayname": "Robert"}, token=bob)
    assert (status, body) == (200, {})
    await draft.ok("PUT", "/profile/bob@sy.org/avatar_url", {"avatar_url": "mxc://sy.org/bob"}, token=bob)
    assert await draft.ok("GET", "/profile/@bob:sy.org/avatar_url", token=alice) == {"avatar_url": "mxc://sy.org/bob"}
    status, profile = await api.get("/profile/@bob:sy.org")
    assert (status, profile) == (200, {"displayname": "Robert", "avatar_url": "mxc://sy.org/bob"})
    # The change is announced in bob's rooms, as today's API does.
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    status, member = await api.get(f"/rooms/{room_id}/state/m.room.member/@bob:sy.org", token=carol)
    assert member["displayname"] == "Robert" and member["avatar_url"] == "mxc://sy.org/bob"
    status, _ = await api.put("/profile/@carol:sy.org/displayname", {"displayname": "Caroline"}, token=carol)
    assert await draft.ok("GET", "/profile/carol@sy.org/displayname", token=bob) == {"displayname": "Caroline"}
