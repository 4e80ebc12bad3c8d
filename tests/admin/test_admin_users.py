"""The user admin API against the examples of Synapse's documentation (docs/admin_api/
user_admin_api.md): the same requests, answers of the same shape, and the effects behind
them (logins refused, devices gone, messages nobody sees, limits lifted)."""

from __future__ import annotations

from tests.admin.conftest import SYNAPSE, login

V1, V2 = f"{SYNAPSE}/v1", f"{SYNAPSE}/v2"

#: The keys of a user in Synapse's documented list example.
LIST_KEYS = {"name", "is_guest", "admin", "user_type", "deactivated", "shadow_banned", "displayname", "avatar_url",
             "creation_ts", "last_seen_ts", "locked", "suspended"}


async def make_users(api, admin, *names: str) -> None:
    for name in names:
        status, body = await api.put(f"{V2}/users/@{name}:localhost", {"password": "correct horse"}, token=admin)
        assert status == 201, body


async def test_list_accounts_as_documented(api, admin):
    await make_users(api, admin, "carol", "alice", "bob")
    status, body = await api.get(f"{V2}/users", token=admin, params={"from": "0", "limit": "10", "guests": "false"})
    assert status == 200
    assert [user["name"] for user in body["users"]] == ["@alice:localhost", "@bob:localhost", "@carol:localhost",
                                                        "@root:localhost"]
    assert set(body["users"][0]) == LIST_KEYS and body["total"] == 4 and "next_token" not in body
    status, first = await api.get(f"{V2}/users", token=admin, params={"limit": "2"})
    assert [u["name"] for u in first["users"]] == ["@alice:localhost", "@bob:localhost"]
    assert first["next_token"] == "2" and first["total"] == 4
    status, second = await api.get(f"{V2}/users", token=admin, params={"limit": "2", "from": first["next_token"]})
    assert [u["name"] for u in second["users"]] == ["@carol:localhost", "@root:localhost"]
    assert "next_token" not in second


async def test_list_filters_and_orders(api, admin, homeserver):
    await make_users(api, admin, "alice", "bob")
    await api.put(f"{V2}/users/@bob:localhost", {"displayname": "Robert Zed"}, token=admin)
    guest = await api.post("/register", {}, params={"kind": "guest"})
    by_name = await api.get(f"{V2}/users", token=admin, params={"name": "zed"})
    assert [u["name"] for u in by_name[1]["users"]] == ["@bob:localhost"]
    by_id = await api.get(f"{V2}/users", token=admin, params={"user_id": "ALI"})
    assert [u["name"] for u in by_id[1]["users"]] == ["@alice:localhost"]
    admins = await api.get(f"{V2}/users", token=admin, params={"admins": "true"})
    assert [u["name"] for u in admins[1]["users"]] == ["@root:localhost"]
    not_admins = await api.get(f"{V2}/users", token=admin, params={"admins": "false"})
    assert "@root:localhost" not in [u["name"] for u in not_admins[1]["users"]]
    assert (await api.post(f"{V1}/deactivate/@alice:localhost", {}, token=admin))[0] == 200
    active = await api.get(f"{V2}/users", token=admin)
    assert "@alice:localhost" not in [u["name"] for u in active[1]["users"]]
    everyone = await api.get(f"{V2}/users", token=admin, params={"deactivated": "true"})
    alice = next(u for u in everyone[1]["users"] if u["name"] == "@alice:localhost")
    assert alice["deactivated"] is True
    newest_first = await api.get(f"{V2}/users", token=admin, params={"order_by": "creation_ts", "dir": "b",
                                                                       "deactivated": "true", "guests": "false"})
    assert [u["name"] for u in newest_first[1]["users"]] == ["@bob:localhost", "@alice:localhost", "@root:localhost"]
    by_displayname = await api.get(f"{V2}/users", token=admin, params={"order_by": "displayname", "guests": "false"})
    assert [u["name"] for u in by_displayname[1]["users"]][-1] == "@root:localhost"  # "Robert Zed" < "root"
    if guest[0] == 200:
        no_guests = await api.get(f"{V2}/users", token=admin, params={"guests": "false"})
        assert guest[1]["user_id"] not in [u["name"] for u in no_guests[1]["users"]]
    for bad in ({"order_by": "password"}, {"dir": "x"}, {"limit": "-1"}, {"from": "x"}, {"admins": "maybe"}):
        status, body = await api.get(f"{V2}/users", token=admin, params=bad)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad


async def test_create_then_modify_an_account_as_documented(api, admin):
    body = {"password": "user_password", "logout_devices": False, "displayname": "Alice Marigold",
            "avatar_url": "mxc://example.com/abcde12345", "admin": False, "deactivated": False}
    status, created = await api.put(f"{V2}/users/@alice:localhost", body, token=admin)
    assert status == 201
    assert created["name"] == "@alice:localhost" and created["displayname"] == "Alice Marigold"
    assert created["avatar_url"] == "mxc://example.com/abcde12345" and created["threepids"] == []
    token = await login(api, "alice", "user_password")
    status, changed = await api.put(f"{V2}/users/@alice:localhost", {"displayname": "", "admin": True}, token=admin)
    assert status == 200 and changed["displayname"] is None and changed["admin"] is True
    status, queried = await api.get(f"{V2}/users/@alice:localhost", token=admin)
    assert queried == changed
    # a new password logs every device out unless logout_devices is false
    await api.put(f"{V2}/users/@alice:localhost", {"password": "second password"}, token=admin)
    assert (await api.get("/account/whoami", token=token))[1]["errcode"] == "M_UNKNOWN_TOKEN"
    await login(api, "alice", "second password")


async def test_put_user_checks_everything_before_changing_anything(api, admin):
    await make_users(api, admin, "alice")
    for body, errcode in [({"admin": "yes"}, "M_BAD_JSON"), ({"threepids": [{"medium": "email", "address": "a@b"}]},
                          "M_INVALID_PARAM"), ({"user_type": "bot"}, "M_INVALID_PARAM"),
                          ({"avatar_url": "https://x/y"}, "M_INVALID_PARAM"), ({"password": "short"}, "M_WEAK_PASSWORD"),
                          ({"locked": "yes"}, "M_BAD_JSON")]:
        status, answer = await api.put(f"{V2}/users/@alice:localhost", {"displayname": "changed", **body}, token=admin)
        assert (status, answer["errcode"]) == (400, errcode), body
    assert (await api.get(f"{V2}/users/@alice:localhost", token=admin))[1]["displayname"] == "alice"
    for user_id, errcode in [("@bob:elsewhere.org", "M_UNKNOWN"), ("bob", "M_INVALID_PARAM"),
                             ("@Bad Name:localhost", "M_INVALID_PARAM")]:
        status, answer = await api.put(f"{V2}/users/{user_id}", {"password": "correct horse"}, token=admin)
        assert status == 400, (user_id, answer)
    assert (await api.get(f"{V2}/users/@nobody:localhost", token=admin))[1]["errcode"] == "M_NOT_FOUND"
    status, answer = await api.put(f"{V2}/users/@alice:localhost", data=b"\x00", token=admin)
    assert (status, answer["errcode"]) == (400, "M_NOT_JSON")
    status, answer = await api.put(f"{V2}/users/@alice:localhost", {"displayname": "nul \x00 here"}, token=admin)
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")
    status, answer = await api.get(f"{V2}/users", token=admin, params={"name": "nul \x00"})
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")


async def test_deactivate_then_reactivate(api, admin):
    alice = await api.register("alice", "correct horse")
    room = await api.create_room(alice["access_token"], preset="public_chat")
    status, body = await api.post(f"{V1}/deactivate/@alice:localhost", {"erase": False}, token=admin)
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert (await api.get("/account/whoami", token=alice["access_token"]))[1]["errcode"] == "M_UNKNOWN_TOKEN"
    assert (await api.get(f"{V1}/rooms/{room}/members", token=admin))[1]["members"] == []
    status, body = await api.post("/login", {"type": "m.login.password", "user": "alice", "password": "correct horse"})
    assert status == 403
    assert (await api.post(f"{V1}/deactivate/@alice:localhost", {}, token=admin))[0] == 200  # idempotent
    assert (await api.get(f"{V2}/users/@alice:localhost", token=admin))[1]["erased"] is False
    status, body = await api.put(f"{V2}/users/@alice:localhost", {"deactivated": False}, token=admin)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")  # reactivation needs a password
    status, body = await api.put(f"{V2}/users/@alice:localhost", {"deactivated": False, "password": "new horse!"},
                                 token=admin)
    assert status == 200 and body["deactivated"] is False
    await login(api, "alice", "new horse!")
    assert (await api.post(f"{V1}/deactivate/@nobody:localhost", {}, token=admin))[0] == 404


async def test_reset_password_as_documented(api, admin):
    alice = await api.register("alice", "correct horse")
    status, body = await api.post(f"{V1}/reset_password/@alice:localhost",
                                  {"new_password": "<secret> horse", "logout_devices": True}, token=admin)
    assert (status, body) == (200, {})
    assert (await api.get("/account/whoami", token=alice["access_token"]))[1]["errcode"] == "M_UNKNOWN_TOKEN"
    kept = await login(api, "alice", "<secret> horse")
    await api.post(f"{V1}/reset_password/@alice:localhost", {"new_password": "third horse",
                                                             "logout_devices": False}, token=admin)
    assert (await api.get("/account/whoami", token=kept))[0] == 200
    status, body = await api.post(f"{V1}/reset_password/@alice:localhost", {}, token=admin)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


async def test_whois_devices_and_joined_rooms(api, admin):
    alice = await api.register("alice", "correct horse")
    token = alice["access_token"]
    room = await api.create_room(token)
    await api.get("/account/whoami", token=token, headers={"User-Agent": "Mozilla/5.0 test"})
    status, whois = await api.get(f"{V1}/whois/@alice:localhost", token=admin)
    connections = whois["devices"][alice["device_id"]]["sessions"][0]["connections"]
    assert whois["user_id"] == "@alice:localhost" and connections[0]["ip"] == "127.0.0.1"
    assert isinstance(connections[0]["last_seen"], int)
    status, devices = await api.get(f"{V2}/users/@alice:localhost/devices", token=admin)
    assert devices["total"] == 1
    device = devices["devices"][0]
    assert set(device) >= {"device_id", "last_seen_ip", "last_seen_user_agent", "last_seen_ts", "user_id", "dehydrated"}
    path = f"{V2}/users/@alice:localhost/devices/{alice['device_id']}"
    assert (await api.put(path, {"display_name": "My other phone"}, token=admin))[0] == 200
    assert (await api.get(path, token=admin))[1]["display_name"] == "My other phone"
    assert (await api.get(f"{V1}/users/@alice:localhost/joined_rooms", token=admin))[1] == {"joined_rooms": [room],
                                                                                              "total": 1}
    assert (await api.get(f"{V1}/users/@alice:localhost/memberships", token=admin))[1] == {
        "memberships": {room: "join"}}
    second = await login(api, "alice")
    status, body = await api.post(f"{V2}/users/@alice:localhost/delete_devices", {"devices": [alice["device_id"]]},
                                  token=admin)
    assert (status, body) == (200, {})
    assert (await api.get("/account/whoami", token=token))[0] == 401
    assert (await api.delete(f"{V2}/users/@alice:localhost/devices/{(await api.get('/account/whoami', token=second))[1]['device_id']}", {}, token=admin))[0] == 200
    assert (await api.get("/account/whoami", token=second))[0] == 401
    assert (await api.get(path, token=admin))[1]["errcode"] == "M_NOT_FOUND"
    status, body = await api.post(f"{V2}/users/@alice:localhost/delete_devices", {"devices": [1]}, token=admin)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_shadow_banned_sends_succeed_but_nobody_sees_them(api, admin):
    alice, bob = await api.register_all("alice", "bob")
    room = await api.create_room(bob["access_token"], preset="public_chat")
    assert (await api.post(f"/rooms/{room}/join", {}, token=alice["access_token"]))[0] == 200
    status, body = await api.post(f"{V1}/users/@bob:localhost/shadow_ban", {}, token=admin)
    assert (status, body) == (200, {})
    assert (await api.get(f"{V2}/users/@bob:localhost", token=admin))[1]["shadow_banned"] is True
    hidden = await api.send_text(bob["access_token"], room, "nobody hears this", txn="t1")
    again = await api.send_text(bob["access_token"], room, "nobody hears this", txn="t1")
    assert hidden.startswith("$") and again == hidden
    status, body = await api.put(f"/rooms/{room}/state/m.room.topic", {"topic": "hidden too"},
                                 token=bob["access_token"])
    assert status == 200 and body["event_id"].startswith("$")
    status, body = await api.put(f"/rooms/{room}/state/m.room.power_levels", {"users": "not a map"},
                                 token=bob["access_token"])
    assert status == 403  # what the auth rules refuse is still refused
    assert (await api.get(f"/rooms/{room}/event/{hidden}", token=alice["access_token"]))[0] == 404
    assert (await api.delete(f"{V1}/users/@bob:localhost/shadow_ban", token=admin))[0] == 200
    seen = await api.send_text(bob["access_token"], room, "heard again")
    status, page = await api.get(f"/rooms/{room}/messages", token=alice["access_token"], params={"limit": "50"})
    bodies = [event["content"].get("body") for event in page["chunk"]]
    assert "heard again" in bodies and "nobody hears this" not in bodies
    assert all(event["type"] != "m.room.topic" for event in page["chunk"])
    assert seen != hidden


async def test_account_data_login_as_and_username_available(api, admin):
    alice = await api.register("alice")
    token = alice["access_token"]
    room = await api.create_room(token)
    await api.put("/user/@alice:localhost/account_data/im.vector.hide_profile", {"hide_profile": True}, token=token)
    await api.put(f"/user/@alice:localhost/rooms/{room}/account_data/org.example.x", {"a": 1}, token=token)
    status, body = await api.get(f"{V1}/users/@alice:localhost/accountdata", token=admin)
    assert body["account_data"]["global"]["im.vector.hide_profile"] == {"hide_profile": True}
    assert body["account_data"]["rooms"] == {room: {"org.example.x": {"a": 1}}}
    status, body = await api.post(f"{V1}/users/@alice:localhost/login", {}, token=admin)
    puppet = body["access_token"]
    assert (await api.get("/account/whoami", token=puppet))[1]["user_id"] == "@alice:localhost"
    devices = (await api.get("/devices", token=token))[1]["devices"]
    assert [d["device_id"] for d in devices] == [alice["device_id"]]  # the admin's session does not show
    assert (await api.post("/logout", {}, token=puppet))[0] == 200
    assert (await api.get("/account/whoami", token=puppet))[0] == 401
    assert (await api.get("/account/whoami", token=token))[0] == 200
    status, body = await api.post(f"{V1}/users/@root:localhost/login", {}, token=admin)
    assert status == 400
    status, body = await api.post(f"{V1}/users/@alice:localhost/login", {"valid_until_ms": 1}, token=admin)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert await api.get(f"{V1}/username_available", token=admin, params={"username": "zoe"}) == (
        200, {"available": True})
    status, body = await api.get(f"{V1}/username_available", token=admin, params={"username": "alice"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


async def test_lock_suspend_and_erase_are_the_client_api_flags(api, admin):
    alice = await api.register("alice", "correct horse")
    room = await api.create_room(alice["access_token"], preset="public_chat")
    await api.send_text(alice["access_token"], room, "soon erased")
    status, body = await api.put(f"{V2}/users/@alice:localhost", {"locked": True}, token=admin)
    assert status == 200 and body["locked"] is True
    status, body = await api.get("/account/whoami", token=alice["access_token"])
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_USER_LOCKED", True)
    assert (await api.get("/_matrix/client/v1/admin/lock/@alice:localhost", token=admin))[1] == {"locked": True}
    assert (await api.put(f"{V2}/users/@alice:localhost", {"locked": False}, token=admin))[1]["locked"] is False
    assert (await api.get("/account/whoami", token=alice["access_token"]))[0] == 200
    status, _ = await api.put("/_matrix/client/v1/admin/suspend/@alice:localhost", {"suspended": True}, token=admin)
    assert status == 200
    listed = (await api.get(f"{V2}/users", token=admin, params={"user_id": "alice"}))[1]["users"]
    assert [(user["locked"], user["suspended"]) for user in listed] == [(False, True)]
    assert (await api.post(f"{V1}/deactivate/@alice:localhost", {"erase": True}, token=admin))[0] == 200
    assert (await api.get(f"{V2}/users/@alice:localhost", token=admin))[1]["erased"] is True
    carol = await api.register("carol")
    assert (await api.post(f"/rooms/{room}/join", {}, token=carol["access_token"]))[0] == 200
    status, page = await api.get(f"/rooms/{room}/messages", params={"limit": "50"}, token=carol["access_token"])
    assert [e["content"] for e in page["chunk"] if e["type"] == "m.room.message"] == [{}]
