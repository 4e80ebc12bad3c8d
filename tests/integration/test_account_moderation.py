"""Server administration: whois, account locking and suspension (admin API and effects)."""

from __future__ import annotations

import pytest

from tests.conftest import Api, route_url


async def _admin(homeserver, api: Api, name: str = "admin") -> dict:
    await homeserver.users.register(name, "correct horse", admin=True, inhibit_login=True)
    status, login = await api.post("/login", {"type": "m.login.password", "user": name, "password": "correct horse"})
    assert status == 200, login
    return login


@pytest.mark.parametrize("segment, flag", [("lock", "locked"), ("suspend", "suspended")])
async def test_moderation_endpoints_are_for_server_admins(api, homeserver, segment, flag):
    admin = await _admin(homeserver, api)
    other_admin = await _admin(homeserver, api, "boss")
    user, victim = await api.register_all("user", "victim")
    path = f"/_matrix/client/v1/admin/{segment}"
    for target in ("@victim:localhost", "@nobody:localhost", "@x:elsewhere.example"):
        status, body = await api.get(f"{path}/{target}", token=user["access_token"])
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), "authorisation before any lookup"
        status, body = await api.put(f"{path}/{target}", {flag: True}, token=user["access_token"])
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    token = admin["access_token"]
    status, body = await api.get(f"{path}/@x:elsewhere.example", token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.get(f"{path}/@nobody:localhost", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.put(f"{path}/@nobody:localhost", {flag: True}, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.put(f"{path}/{admin['user_id']}", {flag: True}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), "not one's own account"
    for method in ("GET", "PUT"):
        status, body = await api.request(method, f"{path}/{other_admin['user_id']}", {flag: True}, token=token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), "not another admin"
    for bad in ({}, {flag: "yes"}):
        status, body = await api.put(f"{path}/@victim:localhost", bad, token=token)
        assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_BAD_JSON")
    assert await api.get(f"{path}/@victim:localhost", token=token) == (200, {flag: False})
    for value in (True, True, False, True):
        assert await api.put(f"{path}/@victim:localhost", {flag: value}, token=token) == (200, {flag: value})
    assert await api.get(f"{path}/@victim:localhost", token=token) == (200, {flag: True})
    account = await homeserver.users.store.get_account("@victim:localhost")
    assert getattr(account, flag) is True, "stored in the database"


async def test_a_locked_account_can_only_log_out(api, homeserver):
    admin = await _admin(homeserver, api)
    locked = await api.register("locked", refresh_token=True)
    token = locked["access_token"]
    room_id = await api.create_room(token)
    event_id = await api.send_text(token, room_id, "before the lock")
    status, _ = await api.put("/_matrix/client/v1/admin/lock/@locked:localhost", {"locked": True},
                              token=admin["access_token"])
    assert status == 200
    from ranvier.server import route_tables

    values = {"room_id": room_id, "room_id_or_alias": room_id, "event_id": event_id, "user_id": locked["user_id"],
              "server_name": "localhost", "event_type": "m.room.message", "device_id": locked["device_id"]}
    swept = 0
    for routes in route_tables():
        for route in routes.entries:
            if route.path.startswith("/logout"):
                continue
            url = route_url(route, values)
            body = None if route.method == "GET" else {}
            status, answer = await api.request(route.method, url, body, params={"timeout": "0"})
            if answer.get("errcode") != "M_MISSING_TOKEN":
                continue  # served without a token
            status, answer = await api.request(route.method, url, body, token=token, params={"timeout": "0"})
            assert (status, answer.get("errcode"), answer.get("soft_logout")) == (401, "M_USER_LOCKED", True), \
                (route.method, route.path, status, answer)
            swept += 1
    assert swept > 50
    status, body = await api.post("/login", {"type": "m.login.password", "user": "locked", "password": "correct horse"})
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_USER_LOCKED", True)
    status, body = await api.post("/refresh", {"refresh_token": locked["refresh_token"]})
    assert (status, body["errcode"]) == (401, "M_USER_LOCKED")
    status, _ = await api.put("/_matrix/client/v1/admin/lock/@locked:localhost", {"locked": False},
                              token=admin["access_token"])
    status, who = await api.get("/account/whoami", token=token)
    assert (status, who["user_id"]) == (200, "@locked:localhost"), "the session survives the lock"
    await api.put("/_matrix/client/v1/admin/lock/@locked:localhost", {"locked": True}, token=admin["access_token"])
    assert (await api.post("/logout", {}, token=token))[0] == 200, "logging out stays possible"
    assert (await api.get("/account/whoami", token=token))[1]["errcode"] == "M_UNKNOWN_TOKEN"


async def test_a_suspended_account_reads_but_does_not_act(api, homeserver):
    admin = await _admin(homeserver, api)
    host, suspended, friend = await api.register_all("host", "suspended", "friend")
    host_token, token = host["access_token"], suspended["access_token"]
    room_id = await api.create_room(host_token, preset="public_chat")
    other_room = await api.create_room(host_token, preset="public_chat")
    knock_room = await api.create_room(host_token, room_version="10",
                                       initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    invited_room = await api.create_room(host_token, invite=[suspended["user_id"]])
    assert (await api.post(f"/join/{room_id}", {}, token=token))[0] == 200
    own_event = await api.send_text(token, room_id, "mine")
    host_event = await api.send_text(host_token, room_id, "theirs")
    await api.put(f"/rooms/{room_id}/state/m.room.power_levels",
                  {"users": {host["user_id"]: 100, suspended["user_id"]: 100}}, token=host_token)
    status, _ = await api.put("/_matrix/client/v1/admin/suspend/@suspended:localhost", {"suspended": True},
                              token=admin["access_token"])
    assert status == 200

    refused = [
        ("POST", f"/join/{other_room}", {}), ("POST", f"/rooms/{other_room}/join", {}),
        ("POST", f"/join/{invited_room}", {}), ("POST", f"/knock/{knock_room}", {}),
        ("POST", f"/rooms/{room_id}/invite", {"user_id": friend["user_id"]}),
        ("PUT", f"/rooms/{room_id}/send/m.room.message/s1", {"msgtype": "m.text", "body": "hi"}),
        ("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "mine now"}),
        ("PUT", f"/rooms/{other_room}/state/m.room.member/@suspended:localhost", {"membership": "join"}),
        ("PUT", f"/rooms/{room_id}/state/m.room.member/@friend:localhost", {"membership": "invite"}),
        ("PUT", f"/rooms/{room_id}/redact/{host_event}/r1", {}),
        ("PUT", f"/rooms/{room_id}/send/m.room.redaction/r2", {"redacts": host_event}),
        ("PUT", "/profile/@suspended:localhost/displayname", {"displayname": "new name"}),
        ("PUT", "/profile/@suspended:localhost/avatar_url", {"avatar_url": "mxc://localhost/abc"}),
        ("DELETE", "/profile/@suspended:localhost/displayname", None),
        ("POST", "/createRoom", {}),
        ("POST", f"/rooms/{room_id}/upgrade", {"new_version": "11"}),
    ]
    for method, path, body in refused:
        status, answer = await api.request(method, path, body, token=token)
        assert (status, answer.get("errcode")) == (403, "M_USER_SUSPENDED"), (method, path, answer)

    status, page = await api.get(f"/rooms/{room_id}/messages", token=token, params={"dir": "b"})
    assert status == 200 and any(e["event_id"] == host_event for e in page["chunk"])
    status, sync = await api.get("/sync", token=token, params={"timeout": "0"})
    assert status == 200 and room_id in sync["rooms"]["join"]
    status, _ = await api.put(f"/rooms/{room_id}/redact/{own_event}/r3", {}, token=token)
    assert status == 200, "a suspended user may redact their own events"
    status, _ = await api.post(f"/rooms/{invited_room}/leave", {}, token=token)
    assert status == 200, "rejecting an invite stays possible"
    status, login = await api.post("/login", {"type": "m.login.password", "user": "suspended",
                                              "password": "correct horse"})
    assert status == 200, "a suspended user may log in"
    status, body = await api.post("/createRoom", {}, token=login["access_token"])
    assert (status, body["errcode"]) == (403, "M_USER_SUSPENDED"), "new sessions are suspended too"
    assert (await api.post(f"/rooms/{room_id}/leave", {}, token=token))[0] == 200

    await api.put("/_matrix/client/v1/admin/suspend/@suspended:localhost", {"suspended": False},
                  token=admin["access_token"])
    assert (await api.post(f"/rooms/{room_id}/join", {}, token=token))[0] == 200
    await api.send_text(token, room_id, "back")


async def test_whois_for_oneself_and_for_admins(api, homeserver):
    admin = await _admin(homeserver, api)
    user, other = await api.register_all("watched", "other")
    await api.get("/account/whoami", token=user["access_token"], headers={"User-Agent": "whois-test/1.0"})
    for token in (user["access_token"], admin["access_token"]):
        status, body = await api.get("/admin/whois/@watched:localhost", token=token)
        assert status == 200, body
        assert body["user_id"] == "@watched:localhost"
        (device,) = body["devices"].values()
        (session,) = device["sessions"]
        (connection,) = session["connections"]
        assert connection["ip"] == "127.0.0.1" and connection["last_seen"] > 0
        assert connection["user_agent"] == "whois-test/1.0"
    assert list(body["devices"]) == [user["device_id"]]
    status, body = await api.get("/admin/whois/@watched:localhost", token=other["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.get("/admin/whois/@nobody:localhost", token=admin["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_capabilities_offer_account_moderation_to_admins_only(api, homeserver):
    admin = await _admin(homeserver, api)
    (user,) = await api.register_all("plain")
    status, caps = await api.get("/capabilities", token=admin["access_token"])
    assert caps["capabilities"]["m.account_moderation"] == {"lock": True, "suspend": True}
    status, caps = await api.get("/capabilities", token=user["access_token"])
    assert "m.account_moderation" not in caps["capabilities"]
