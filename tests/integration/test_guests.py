"""Guest accounts (the guest access module): which rooms they may join, which endpoints they
may use, and their upgrade to a full account."""

from __future__ import annotations

import pytest

from tests.conftest import Api, route_url

#: The endpoints the guest access module lists (and the other join endpoint), and those a
#: client needs to start and to track devices, as the route tables spell them; every other authenticated
#: endpoint refuses guests.
GUEST_ENDPOINTS = {
    ("GET", "/rooms/{room_id}/state"), ("GET", "/rooms/{room_id}/context/{event_id}"),
    ("GET", "/rooms/{room_id}/event/{event_id}"), ("GET", "/rooms/{room_id}/state/{event_type}/{state_key:.*}"),
    ("GET", "/rooms/{room_id}/state/{event_type}"), ("GET", "/rooms/{room_id}/messages"),
    ("GET", "/rooms/{room_id}/members"), ("GET", "/rooms/{room_id}/initialSync"), ("GET", "/sync"), ("GET", "/events"),
    ("GET", "/media/download/{server_name}/{media_id}"),
    ("GET", "/media/download/{server_name}/{media_id}/{file_name}"),
    ("GET", "/media/thumbnail/{server_name}/{media_id}"),
    ("POST", "/rooms/{room_id_or_alias}/join"), ("POST", "/join/{room_id_or_alias}"), ("POST", "/rooms/{room_id}/leave"),
    ("PUT", "/rooms/{room_id}/send/{event_type}/{txn_id}"), ("PUT", "/rooms/{room_id}/state/{event_type}/{state_key:.*}"),
    ("PUT", "/rooms/{room_id}/state/{event_type}"), ("PUT", "/sendToDevice/{event_type}/{txn_id}"),
    ("PUT", "/profile/{user_id}/{key}"), ("DELETE", "/profile/{user_id}/{key}"),
    ("GET", "/devices"), ("GET", "/devices/{device_id}"), ("PUT", "/devices/{device_id}"), ("GET", "/account/whoami"),
    ("POST", "/keys/upload"), ("POST", "/keys/query"), ("POST", "/keys/claim"),
    # Beyond the module's list, what a client needs to start a guest session and take part
    # in a room it joined, as Synapse allows: filters, capabilities, push rules, TURN
    # credentials, typing and receipts.
    ("POST", "/user/{user_id}/filter"), ("GET", "/user/{user_id}/filter/{filter_id}"), ("GET", "/capabilities"),
    ("GET", "/pushrules/"), ("GET", "/pushrules/global/"), ("GET", "/voip/turnServer"),
    ("PUT", "/rooms/{room_id}/typing/{user_id}"), ("POST", "/rooms/{room_id}/receipt/{receipt_type}/{event_id}"),
    ("POST", "/rooms/{room_id}/read_markers"), ("GET", "/keys/changes"),
}


@pytest.fixture
async def guests(make_server) -> Api:
    return await make_server(registration={"mode": "open", "guest_access": True})


async def _guest(api: Api, **body) -> dict:
    status, guest = await api.post("/register?kind=guest", body)
    assert status == 200, guest
    return guest


async def _guest_access(api: Api, token: str, room_id: str, value: str) -> None:
    status, body = await api.put(f"/rooms/{room_id}/state/m.room.guest_access", {"guest_access": value}, token=token)
    assert status == 200, body


async def test_presets_set_guest_access_as_the_spec_table_says(api):
    user = await api.register("presets")
    token = user["access_token"]
    for preset, expected in (("public_chat", "forbidden"), ("private_chat", "can_join"),
                             ("trusted_private_chat", "can_join")):
        room_id = await api.create_room(token, preset=preset)
        status, content = await api.get(f"/rooms/{room_id}/state/m.room.guest_access", token=token)
        assert (status, content) == (200, {"guest_access": expected}), preset


async def test_guests_join_only_rooms_that_admit_them(guests):
    host = await guests.register("host")
    token = host["access_token"]
    open_room = await guests.create_room(token, preset="public_chat")
    await _guest_access(guests, token, open_room, "can_join")
    closed_room = await guests.create_room(token, preset="public_chat")
    await guests.put("/directory/room/%23guests:localhost", {"room_id": open_room}, token=token)
    for join_path in (f"/rooms/{open_room}/join", f"/join/{open_room}", "/join/%23guests:localhost"):
        guest = await _guest(guests)
        status, body = await guests.post(join_path, {}, token=guest["access_token"])
        assert (status, body) == (200, {"room_id": open_room}), join_path
        status, members = await guests.get(f"/rooms/{open_room}/joined_members", token=token)
        assert guest["user_id"] in members["joined"]
    guest = await _guest(guests)
    for join_path in (f"/rooms/{closed_room}/join", f"/join/{closed_room}"):
        status, body = await guests.post(join_path, {}, token=guest["access_token"])
        assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), join_path
    status, body = await guests.put(f"/rooms/{closed_room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"},
                                    token=guest["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), "not joined, so the auth rules refuse"


async def test_guests_leave_when_a_room_stops_admitting_them(guests):
    host = await guests.register("host")
    token = host["access_token"]
    room_id = await guests.create_room(token, preset="private_chat")
    guest = await _guest(guests)
    member = await guests.register("member")
    for joiner in (guest, member):
        await guests.post(f"/rooms/{room_id}/invite", {"user_id": joiner["user_id"]}, token=token)
        assert (await guests.post(f"/rooms/{room_id}/join", {}, token=joiner["access_token"]))[0] == 200
    status, body = await guests.put(f"/rooms/{room_id}/send/m.room.message/g1", {"msgtype": "m.text", "body": "hi"},
                                    token=guest["access_token"])
    assert status == 200, "a joined guest may send"
    await _guest_access(guests, token, room_id, "forbidden")
    status, members = await guests.get(f"/rooms/{room_id}/joined_members", token=token)
    assert set(members["joined"]) == {host["user_id"], member["user_id"]}


async def test_guests_use_only_the_endpoints_the_guest_module_lists(guests):
    from ranvier.server import route_tables

    host = await guests.register("host")
    room_id = await guests.create_room(host["access_token"], preset="private_chat")
    event_id = await guests.send_text(host["access_token"], room_id, "hello")
    guest = await _guest(guests)
    values = {"room_id": room_id, "room_id_or_alias": room_id, "event_id": event_id, "user_id": guest["user_id"],
              "server_name": "localhost", "event_type": "m.room.message", "key": "displayname",
              "device_id": guest["device_id"]}
    refused, allowed, forbidden_routes = [], [], 0
    for routes in route_tables():
        for route in routes.entries:
            if route.versions is None and not route.path.startswith("/_matrix/media/"):
                continue  # not the client API (well-known, federation) or public anyway
            url = route_url(route, values)
            status, body = await guests.request(route.method, url, None if route.method == "GET" else {},
                                                params={"timeout": "0"})
            if body.get("errcode") != "M_MISSING_TOKEN":
                continue  # served without a token: nothing for a guest to be refused
            status, body = await guests.request(route.method, url, None if route.method == "GET" else {},
                                                token=guest["access_token"], params={"timeout": "0"})
            forbidden = body.get("errcode") == "M_GUEST_ACCESS_FORBIDDEN"
            if (route.method, route.path) in GUEST_ENDPOINTS:
                (refused if forbidden else allowed).append((route.method, route.path, status, body.get("errcode")))
            else:
                assert forbidden and status == 403, (route.method, route.path, status, body)
                forbidden_routes += 1
    assert not refused, f"endpoints the guest module lists must serve guests: {refused}"
    assert forbidden_routes > 50, "the sweep reached the authenticated endpoints"
    assert ("GET", "/sync", 200, None) in allowed


async def test_guests_may_change_their_displayname_only(guests):
    guest = await _guest(guests)
    user_id, token = guest["user_id"], guest["access_token"]
    assert (await guests.put(f"/profile/{user_id}/displayname", {"displayname": "Visitor"}, token=token))[0] == 200
    assert (await guests.get(f"/profile/{user_id}/displayname"))[1] == {"displayname": "Visitor"}
    status, body = await guests.put(f"/profile/{user_id}/avatar_url", {"avatar_url": "mxc://localhost/abc"}, token=token)
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    status, body = await guests.delete(f"/profile/{user_id}/m.tz", token=token)
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    assert (await guests.delete(f"/profile/{user_id}/displayname", token=token))[0] == 200


async def test_guest_registration_ignores_everything_but_the_device_name(guests):
    guest = await _guest(guests, device_id="CHOSEN", initial_device_display_name="Kiosk", refresh_token=True,
                         username="chosen", inhibit_login=True)
    assert guest["device_id"] != "CHOSEN" and "refresh_token" not in guest and guest["access_token"]
    assert not guest["user_id"].startswith("@chosen")
    status, device = await guests.get(f"/devices/{guest['device_id']}", token=guest["access_token"])
    assert device["display_name"] == "Kiosk"


@pytest.mark.parametrize("token_in", ["body", "header"])
async def test_a_guest_upgrades_to_a_full_account_keeping_its_user_id(guests, token_in):
    guest = await _guest(guests)
    host = await guests.register("host")
    room_id = await guests.create_room(host["access_token"], preset="private_chat", invite=[guest["user_id"]])
    assert (await guests.post(f"/join/{room_id}", {}, token=guest["access_token"]))[0] == 200
    body = {"password": "upgraded secret"}
    headers = {}
    if token_in == "body":
        body["guest_access_token"] = guest["access_token"]
        body["username"] = guest["user_id"][1:].split(":")[0]
    else:
        headers["Authorization"] = f"Bearer {guest['access_token']}"
    status, challenge = await guests.post("/register", body, headers=headers)
    assert status == 401, challenge
    body["auth"] = {"type": "m.login.dummy", "session": challenge["session"]}
    status, upgraded = await guests.post("/register", body, headers=headers)
    assert status == 200, upgraded
    assert upgraded["user_id"] == guest["user_id"] and upgraded["access_token"]
    status, who = await guests.get("/account/whoami", token=upgraded["access_token"])
    assert who == {"user_id": guest["user_id"], "device_id": upgraded["device_id"], "is_guest": False}
    status, who = await guests.get("/account/whoami", token=guest["access_token"])
    assert (status, who["is_guest"]) == (200, False), "the guest's own session is a full account's now"
    status, joined = await guests.get("/joined_rooms", token=upgraded["access_token"])
    assert joined == {"joined_rooms": [room_id]}, "the rooms the guest joined stay joined"
    status, login = await guests.post("/login", {"type": "m.login.password", "user": guest["user_id"],
                                                 "password": "upgraded secret"})
    assert (status, login["user_id"]) == (200, guest["user_id"])


async def test_a_guest_upgrade_is_checked(guests):
    guest = await _guest(guests)
    user = await guests.register("full")
    for bad in ("not a token", user["access_token"]):
        status, body = await guests.post("/register", {"guest_access_token": bad, "password": "upgraded secret"})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), bad
    status, body = await guests.post("/register", {"guest_access_token": guest["access_token"], "username": "other",
                                                   "password": "upgraded secret"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await guests.post("/register?kind=guest", {"guest_access_token": guest["access_token"]})
    assert status == 200 and body["user_id"] != guest["user_id"], "kind=guest makes a new guest"
