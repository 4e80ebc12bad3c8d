"""Registration, login, tokens, account management and devices, over real HTTP."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ranvier.server import Homeserver
from tests.conftest import Api, command_line_users, test_config


async def password_auth(api: Api, path: str, body: dict, user_id: str, password: str, token: str, method="POST"):
    """Complete an m.login.password user-interactive auth for `path`."""
    status, challenge = await api.request(method, path, body, token=token)
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}], challenge
    auth = {"type": "m.login.password", "session": challenge["session"], "password": password,
            "identifier": {"type": "m.id.user", "user": user_id}}
    return await api.request(method, path, {**body, "auth": auth}, token=token)


# -- registration --------------------------------------------------------------------------


async def test_registration_challenge_has_the_spec_shape(api):
    status, body = await api.post("/register", {"username": "alice", "password": "correct horse"})
    assert status == 401
    assert set(body) == {"flows", "params", "session"}
    assert {"stages": ["m.login.dummy"]} in body["flows"]
    assert isinstance(body["session"], str) and body["session"]


async def test_registration_completes_with_dummy_and_logs_in(api):
    result = await api.register("alice", device_id="PHONE", initial_device_display_name="Alice's phone")
    assert result["user_id"] == "@alice:localhost"
    assert result["device_id"] == "PHONE"
    status, who = await api.get("/account/whoami", token=result["access_token"])
    assert (status, who) == (200, {"user_id": "@alice:localhost", "device_id": "PHONE", "is_guest": False})
    status, device = await api.get("/devices/PHONE", token=result["access_token"])
    assert device["display_name"] == "Alice's phone"


async def test_registration_without_session_in_auth_is_accepted(api):
    status, body = await api.post(
        "/register", {"username": "nosession", "password": "correct horse", "auth": {"type": "m.login.dummy"}}
    )
    assert (status, body["user_id"]) == (200, "@nosession:localhost")


async def test_completed_stage_is_reported_in_a_multi_request_flow(api):
    status, first = await api.post("/register", {"username": "bob", "password": "correct horse"})
    status, body = await api.post("/register", {"username": "bob", "password": "correct horse",
                                                "auth": {"type": "m.login.registration_token", "token": "wrong",
                                                         "session": first["session"]}})
    assert status == 401
    assert body["errcode"] == "M_FORBIDDEN" and body["session"] == first["session"]
    assert "completed" not in body


async def test_username_is_lowercased_and_taken_names_refused(api):
    result = await api.register("MixedCase")
    assert result["user_id"] == "@mixedcase:localhost"
    status, body = await api.post("/register", {"username": "mixedcase", "password": "correct horse"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


@pytest.mark.parametrize("username", ["has space", "ünïcode", "a:b", "x" * 260, "@at"])
async def test_invalid_usernames_are_refused(api, username):
    status, body = await api.post("/register", {"username": username, "password": "correct horse"})
    assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")


async def test_register_available(api):
    await api.register("taken")
    assert await api.get("/register/available", params={"username": "free"}) == (200, {"available": True})
    status, body = await api.get("/register/available", params={"username": "taken"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    status, body = await api.get("/register/available", params={"username": "bad name"})
    assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")


async def test_weak_password_is_refused(api):
    status, body = await api.post("/register", {"username": "weak", "password": "short"})
    assert (status, body["errcode"]) == (400, "M_WEAK_PASSWORD")


async def test_inhibit_login_returns_no_token(api):
    result = await api.register("quiet", inhibit_login=True)
    assert result == {"user_id": "@quiet:localhost"}


async def test_closed_registration_is_forbidden(make_server):
    api = await make_server(registration={"mode": "closed"})
    status, body = await api.post("/register", {"username": "x", "password": "correct horse"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_registration_token_flow_and_validity(make_server):
    api = await make_server(registration={"mode": "token"})
    async with command_line_users(api.homeserver.config) as users:  # beside the server, like the CLI
        token = await users.create_registration_token("letmein", 1, None)
    status, validity = await api.get("/_matrix/client/v1/register/m.login.registration_token/validity",
                                     params={"token": token})
    assert (status, validity) == (200, {"valid": True})
    status, challenge = await api.post("/register", {"username": "tok", "password": "correct horse"})
    assert challenge["flows"] == [{"stages": ["m.login.registration_token"]}]
    status, body = await api.post("/register", {"username": "tok", "password": "correct horse",
                                                "auth": {"type": "m.login.dummy", "session": challenge["session"]}})
    assert status == 401 and body["errcode"] == "M_FORBIDDEN"
    status, body = await api.post("/register", {"username": "tok", "password": "correct horse",
                                                "auth": {"type": "m.login.registration_token", "token": token,
                                                         "session": challenge["session"]}})
    assert (status, body["user_id"]) == (200, "@tok:localhost")
    status, validity = await api.get("/_matrix/client/v1/register/m.login.registration_token/validity",
                                     params={"token": token})
    assert validity == {"valid": False}, "a token for one use is spent"


async def test_guest_registration_only_when_enabled(api, make_server):
    status, body = await api.post("/register?kind=guest", {})
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    guests = await make_server(registration={"guest_access": True})
    status, body = await guests.post("/register?kind=guest", {})
    assert status == 200 and body["user_id"].startswith("@")
    status, who = await guests.get("/account/whoami", token=body["access_token"])
    assert who["is_guest"] is True
    status, denied = await guests.post("/account/password", {"new_password": "whatever123"}, token=body["access_token"])
    assert (status, denied["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


# -- login -----------------------------------------------------------------------------------


async def test_login_flows(api):
    status, body = await api.get("/login")
    assert status == 200
    assert {"type": "m.login.password"} in body["flows"]
    assert any(flow["type"] == "m.login.token" for flow in body["flows"])


@pytest.mark.parametrize("identifier", [
    {"identifier": {"type": "m.id.user", "user": "carol"}},
    {"identifier": {"type": "m.id.user", "user": "@carol:localhost"}},
    {"identifier": {"type": "m.id.user", "user": "CAROL"}},
    {"user": "carol"},
])
async def test_password_login_forms(api, identifier):
    await api.register("carol")
    status, body = await api.post("/login", {"type": "m.login.password", "password": "correct horse", **identifier})
    assert status == 200, body
    assert body["user_id"] == "@carol:localhost"
    assert body["access_token"] and body["device_id"]


async def test_wrong_password_is_forbidden(api):
    await api.register("dave")
    status, body = await api.post("/login", {"type": "m.login.password", "user": "dave", "password": "wrong one"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.post("/login", {"type": "m.login.password", "user": "nobody", "password": "wrong one"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_unknown_login_type(api):
    status, body = await api.post("/login", {"type": "m.login.carrier_pigeon"})
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")


async def test_login_reusing_a_device_revokes_its_old_token(api):
    first = await api.register("erin", device_id="DESK")
    status, second = await api.post("/login", {"type": "m.login.password", "user": "erin", "password": "correct horse",
                                                "device_id": "DESK", "initial_device_display_name": "ignored?"})
    assert second["device_id"] == "DESK"
    status, _ = await api.get("/account/whoami", token=first["access_token"])
    assert status == 401
    status, who = await api.get("/account/whoami", token=second["access_token"])
    assert who["device_id"] == "DESK"
    status, devices = await api.get("/devices", token=second["access_token"])
    assert [d["device_id"] for d in devices["devices"]] == ["DESK"]


@pytest.mark.parametrize("first_name", ["Desk", None], ids=["named", "unnamed"])
async def test_login_reusing_a_device_ignores_its_initial_display_name(api, first_name):
    first = await api.register("erin", device_id="DESK", **({"initial_device_display_name": first_name} if first_name else {}))
    status, second = await api.post("/login", {"type": "m.login.password", "user": "erin", "password": "correct horse",
                                                "device_id": "DESK", "initial_device_display_name": "renamed?"})
    assert (status, second["device_id"]) == (200, "DESK")
    status, device = await api.get("/devices/DESK", token=second["access_token"])
    assert status == 200 and device.get("display_name") == first_name
    status, other = await api.post("/login", {"type": "m.login.password", "user": "erin", "password": "correct horse",
                                               "device_id": "LAPTOP", "initial_device_display_name": "Laptop"})
    status, device = await api.get("/devices/LAPTOP", token=other["access_token"])
    assert device["display_name"] == "Laptop"  # a new device takes it


async def test_token_login_via_get_token(api):
    user = await api.register("frank")
    status, body = await password_auth(api, "/_matrix/client/v1/login/get_token", {}, "@frank:localhost",
                                       "correct horse", user["access_token"])
    assert status == 200 and body["expires_in_ms"] > 0
    status, login = await api.post("/login", {"type": "m.login.token", "token": body["login_token"]})
    assert (status, login["user_id"]) == (200, "@frank:localhost")
    status, again = await api.post("/login", {"type": "m.login.token", "token": body["login_token"]})
    assert (status, again["errcode"]) == (403, "M_FORBIDDEN"), "a login token works once"


async def test_failed_logins_are_rate_limited_per_account(make_server):
    api = await make_server(rate_limits={"failed_login": {"per_second": 0.01, "burst": 3}})
    await api.register("grace")
    statuses = []
    for _ in range(5):
        status, body = await api.post("/login", {"type": "m.login.password", "user": "grace", "password": "nope nope"})
        statuses.append(status)
    assert statuses[:3] == [403, 403, 403]
    assert statuses[3] == 429 and body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0
    status, body = await api.post("/login", {"type": "m.login.password", "user": "grace", "password": "correct horse"})
    assert status == 429, "the account stays locked out until the bucket refills"


async def test_login_requests_are_rate_limited_per_address(make_server):
    api = await make_server(rate_limits={"login": {"per_second": 0.01, "burst": 2}})
    results = [await api.post("/login", {"type": "m.login.password", "user": "x", "password": "y"}) for _ in range(3)]
    assert [status for status, _ in results] == [403, 403, 429]


# -- refresh tokens --------------------------------------------------------------------------


async def test_refresh_tokens(make_server):
    api = await make_server(registration={"refreshable_access_token_lifetime_ms": 1000})
    user = await api.register("heidi", refresh_token=True)
    assert user["expires_in_ms"] == 1000 and user["refresh_token"]
    status, fresh = await api.post("/refresh", {"refresh_token": user["refresh_token"]})
    assert status == 200 and fresh["access_token"] != user["access_token"]
    status, _ = await api.get("/account/whoami", token=user["access_token"])
    assert status == 401, "the refreshed access token is revoked"
    status, who = await api.get("/account/whoami", token=fresh["access_token"])
    assert who["device_id"] == user["device_id"]
    status, body = await api.post("/refresh", {"refresh_token": user["refresh_token"]})
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), "a refresh token works once"
    await asyncio.sleep(1.1)
    status, body = await api.get("/account/whoami", token=fresh["access_token"])
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", True)


# -- logout and account management -------------------------------------------------------------


async def test_logout_revokes_only_that_device(api):
    one = await api.register("ivan")
    status, two = await api.post("/login", {"type": "m.login.password", "user": "ivan", "password": "correct horse"})
    assert (await api.post("/logout", {}, token=one["access_token"]))[0] == 200
    assert (await api.get("/account/whoami", token=one["access_token"]))[0] == 401
    assert (await api.get("/account/whoami", token=two["access_token"]))[0] == 200


async def test_logout_all(api):
    one = await api.register("judy")
    status, two = await api.post("/login", {"type": "m.login.password", "user": "judy", "password": "correct horse"})
    assert (await api.post("/logout/all", {}, token=one["access_token"]))[0] == 200
    for token in (one["access_token"], two["access_token"]):
        assert (await api.get("/account/whoami", token=token))[0] == 401


async def test_password_change_logs_out_other_devices(api):
    one = await api.register("kate")
    _, two = await api.post("/login", {"type": "m.login.password", "user": "kate", "password": "correct horse"})
    status, body = await password_auth(api, "/account/password", {"new_password": "new secret!"}, "@kate:localhost",
                                       "correct horse", one["access_token"])
    assert status == 200, body
    assert (await api.get("/account/whoami", token=one["access_token"]))[0] == 200
    assert (await api.get("/account/whoami", token=two["access_token"]))[0] == 401
    status, _ = await api.post("/login", {"type": "m.login.password", "user": "kate", "password": "correct horse"})
    assert status == 403
    status, _ = await api.post("/login", {"type": "m.login.password", "user": "kate", "password": "new secret!"})
    assert status == 200


async def test_password_change_can_keep_other_devices(api):
    one = await api.register("leo")
    _, two = await api.post("/login", {"type": "m.login.password", "user": "leo", "password": "correct horse"})
    status, _ = await password_auth(api, "/account/password", {"new_password": "new secret!", "logout_devices": False},
                                    "@leo:localhost", "correct horse", one["access_token"])
    assert status == 200
    assert (await api.get("/account/whoami", token=two["access_token"]))[0] == 200


async def test_password_uia_refuses_a_wrong_password_and_another_user(api):
    user = await api.register("mallory")
    await api.register("victim")
    status, body = await password_auth(api, "/account/password", {"new_password": "new secret!"}, "@mallory:localhost",
                                       "wrong pass", user["access_token"])
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN") and "flows" in body
    status, body = await password_auth(api, "/account/password", {"new_password": "new secret!"}, "@victim:localhost",
                                       "correct horse", user["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN") and "flows" not in body, \
        "another account's password is no second try at this session: a plain 403"


async def test_uia_session_cannot_be_reused_for_another_operation(api):
    user = await api.register("nina")
    token = user["access_token"]
    _, challenge = await api.post("/account/password", {"new_password": "new secret!"}, token=token)
    status, body = await api.post("/account/deactivate", {"auth": {"type": "m.login.password", "session": challenge["session"],
                                                                   "user": "nina", "password": "correct horse"}}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_deactivation_is_final(api):
    user = await api.register("oscar")
    status, body = await password_auth(api, "/account/deactivate", {}, "@oscar:localhost", "correct horse",
                                       user["access_token"])
    assert (status, body) == (200, {"id_server_unbind_result": "no-support"})
    assert (await api.get("/account/whoami", token=user["access_token"]))[0] == 401
    status, body = await api.post("/login", {"type": "m.login.password", "user": "oscar", "password": "correct horse"})
    assert (status, body["errcode"]) == (403, "M_USER_DEACTIVATED")
    status, body = await api.post("/register", {"username": "oscar", "password": "correct horse"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE"), "a user ID is never reused"


# -- devices ---------------------------------------------------------------------------------


async def test_devices_list_rename_and_last_seen(api):
    user = await api.register("peggy", device_id="ONE")
    token = user["access_token"]
    status, body = await api.get("/devices", token=token, headers={"User-Agent": "test-agent"})
    assert status == 200
    (device,) = body["devices"]
    assert device["device_id"] == "ONE" and device["last_seen_ip"] == "127.0.0.1" and device["last_seen_ts"] > 0
    assert (await api.put("/devices/ONE", {"display_name": "Laptop"}, token=token))[0] == 200
    assert (await api.get("/devices/ONE", token=token))[1]["display_name"] == "Laptop"
    status, body = await api.get("/devices/NOPE", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.put("/devices/NOPE", {"display_name": "x"}, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_devices_without_a_name_leave_the_key_out(api):
    user = await api.register("unnamed", device_id="BARE")
    token = user["access_token"]
    status, device = await api.get("/devices/BARE", token=token)
    assert status == 200 and "display_name" not in device, device
    assert "display_name" not in (await api.get("/devices", token=token))[1]["devices"][0]
    assert (await api.put("/devices/BARE", {"display_name": "Named"}, token=token))[0] == 200
    assert (await api.get("/devices/BARE", token=token))[1]["display_name"] == "Named"
    assert (await api.put("/devices/BARE", {}, token=token))[0] == 200, "an empty object is valid: the name is cleared"
    assert "display_name" not in (await api.get("/devices/BARE", token=token))[1]


async def test_renaming_a_device_needs_a_json_object(api):
    user = await api.register("bodyless", device_id="DEV")
    token = user["access_token"]
    for data, errcode in ((b"", "M_NOT_JSON"), (b"null", "M_BAD_JSON"), (b"[]", "M_BAD_JSON"), (b"nope", "M_NOT_JSON")):
        status, body = await api.put("/devices/DEV", data=data, token=token)
        assert (status, body["errcode"]) == (400, errcode), data


async def test_delete_device_needs_password_and_revokes_it(api):
    user = await api.register("quinn", device_id="KEEP")
    _, other = await api.post("/login", {"type": "m.login.password", "user": "quinn", "password": "correct horse",
                                          "device_id": "GONE"})
    status, body = await password_auth(api, "/devices/GONE", {}, "@quinn:localhost", "correct horse",
                                       user["access_token"], method="DELETE")
    assert status == 200, body
    assert (await api.get("/account/whoami", token=other["access_token"]))[0] == 401
    devices = (await api.get("/devices", token=user["access_token"]))[1]["devices"]
    assert [d["device_id"] for d in devices] == ["KEEP"]


async def test_delete_devices_bulk(api):
    user = await api.register("rupert", device_id="A")
    for device in ("B", "C"):
        await api.post("/login", {"type": "m.login.password", "user": "rupert", "password": "correct horse", "device_id": device})
    status, body = await password_auth(api, "/delete_devices", {"devices": ["B", "C"]}, "@rupert:localhost",
                                       "correct horse", user["access_token"])
    assert status == 200, body
    devices = (await api.get("/devices", token=user["access_token"]))[1]["devices"]
    assert [d["device_id"] for d in devices] == ["A"]


# -- discovery -------------------------------------------------------------------------------


async def test_versions_wellknown_capabilities_health(api, homeserver):
    status, versions = await api.get("/_matrix/client/versions")
    assert status == 200 and "v1.1" in versions["versions"]
    status, well_known = await api.get("/.well-known/matrix/client")
    assert well_known == {"m.homeserver": {"base_url": homeserver.base_url}}
    user = await api.register("sybil")
    status, caps = await api.get("/capabilities", token=user["access_token"])
    caps = caps["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.room_versions"]["default"] == "11"
    assert set(caps["m.room_versions"]["available"]) == {str(v) for v in range(1, 13)}
    assert caps["m.3pid_changes"] == {"enabled": False}
    assert caps["m.set_displayname"] == {"enabled": True} and caps["m.set_avatar_url"] == {"enabled": True}
    async with api.session.get(api.base_url + "/health") as response:
        assert response.status == 200 and await response.text() == "OK"


async def test_metrics_on_their_own_listener(tmp_path, database_url):
    from tests.conftest import _free_port

    port = _free_port()
    hs = Homeserver(test_config(tmp_path / "metrics", database_url, metrics={"enabled": True, "port": port}))
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                assert "python_info" in await response.text()
            async with session.get(hs.base_url + "/metrics") as response:
                assert response.status == 404, "metrics are not on the client listener"
    finally:
        await hs.stop()
