"""Registration and user-interactive auth as the spec asks: the 401 for any request without
auth, completed stages that can be retried, sessions bound to the request that began them."""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from tests.conftest import Api, command_line_users


def _password(session: str, user: str, password: str = "correct horse") -> dict:
    return {"type": "m.login.password", "session": session, "password": password,
            "identifier": {"type": "m.id.user", "user": user}}


async def test_register_with_an_empty_body_gets_the_interactive_auth_challenge(api):
    for body in ({}, {"username": "early"}, {"password": "correct horse"}):
        status, challenge = await api.post("/register", body)
        assert status == 401, challenge
        assert set(challenge) == {"flows", "params", "session"}
        assert {"stages": ["m.login.dummy"]} in challenge["flows"] and challenge["session"]


async def test_register_without_username_gets_a_generated_localpart(api):
    status, challenge = await api.post("/register", {})
    status, body = await api.post("/register", {"password": "correct horse",
                                                "auth": {"type": "m.login.dummy", "session": challenge["session"]}})
    assert status == 200, body
    assert body["user_id"].startswith("@") and body["user_id"].endswith(":localhost") and body["access_token"]
    status, who = await api.get("/account/whoami", token=body["access_token"])
    assert who["user_id"] == body["user_id"]


async def test_password_is_required_once_the_flow_is_complete(api):
    status, challenge = await api.post("/register", {"username": "nopass"})
    status, body = await api.post("/register", {"username": "nopass",
                                                "auth": {"type": "m.login.dummy", "session": challenge["session"]}})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.post("/register", {"username": "nopass", "password": "correct horse",
                                                "auth": {"type": "m.login.dummy", "session": challenge["session"]}})
    assert (status, body["user_id"]) == (200, "@nopass:localhost"), "the completed session goes on to the registration"


async def test_retrying_a_completed_stage_continues(api):
    user = await api.register("retry")
    token = user["access_token"]
    request = {"new_password": "another secret", "logout_devices": False}
    status, challenge = await api.post("/account/password", request, token=token)
    auth = _password(challenge["session"], "@retry:localhost")
    assert (await api.post("/account/password", {**request, "auth": auth}, token=token))[0] == 200
    status, body = await api.post("/account/password", {**request, "auth": auth}, token=token)
    assert status == 200, f"a retried completed stage must not be an unknown session: {body}"
    status, body = await api.post("/account/password", {**request, "auth": {"session": challenge["session"]}},
                                  token=token)
    assert status == 200, body


async def test_a_retried_registration_answers_with_the_account_it_made(api):
    status, challenge = await api.post("/register", {})
    body = {"password": "correct horse", "auth": {"type": "m.login.dummy", "session": challenge["session"]}}
    status, first = await api.post("/register", body)
    assert status == 200, first
    status, again = await api.post("/register", body)
    assert status == 200, again
    assert again["user_id"] == first["user_id"], "one session registers one account, however often retried"
    assert again["access_token"] != first["access_token"]
    assert (await api.get("/account/whoami", token=again["access_token"]))[1]["user_id"] == first["user_id"]


async def test_concurrent_retries_of_a_registration_make_one_account(api):
    status, challenge = await api.post("/register", {})
    auth = {"type": "m.login.dummy", "session": challenge["session"]}
    answers = await asyncio.gather(*(api.post("/register", {"username": f"racer{n}", "password": "correct horse",
                                                            "auth": auth}) for n in range(6)))
    assert all(status == 200 for status, _ in answers), answers
    assert len({body["user_id"] for _, body in answers}) == 1, answers
    available = [(await api.get("/register/available", params={"username": f"racer{n}"}))[0] for n in range(6)]
    assert available.count(200) == 5


async def test_a_registration_token_session_registers_one_account(make_server):
    api = await make_server(registration={"mode": "token"})
    async with command_line_users(api.homeserver.config) as users:  # beside the server, like the CLI
        token = await users.create_registration_token("twice", 1, None)
    status, challenge = await api.post("/register", {"username": "first", "password": "correct horse"})
    auth = {"type": "m.login.registration_token", "token": token, "session": challenge["session"]}
    status, first = await api.post("/register", {"username": "first", "password": "correct horse", "auth": auth})
    assert (status, first["user_id"]) == (200, "@first:localhost")
    status, second = await api.post("/register", {"username": "second", "password": "correct horse",
                                                  "auth": {"session": challenge["session"]}})
    assert (status, second["user_id"]) == (200, "@first:localhost"), "no second account from a one-use token"
    status, taken = await api.get("/register/available", params={"username": "second"})
    assert taken == {"available": True}


async def _with_devices_keep_a_b(api: Api, name: str) -> str:
    """Register `name` on device KEEP and log it in on devices A and B; the KEEP token."""
    user = await api.register(name, device_id="KEEP")
    for device in ("A", "B"):
        await api.post("/login", {"type": "m.login.password", "user": name, "password": "correct horse",
                                  "device_id": device})
    return user["access_token"]


async def test_a_session_begun_to_delete_one_device_cannot_delete_another(api):
    token = await _with_devices_keep_a_b(api, "owner")
    status, challenge = await api.delete("/devices/A", {}, token=token)
    assert status == 401
    auth = _password(challenge["session"], "@owner:localhost")
    status, body = await api.delete("/devices/B", {"auth": auth}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.post("/delete_devices", {"devices": ["B"], "auth": auth}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    devices = {d["device_id"] for d in (await api.get("/devices", token=token))[1]["devices"]}
    assert devices == {"KEEP", "A", "B"}
    status, body = await api.delete("/devices/A", {"auth": auth}, token=token)
    assert status == 200, body
    devices = {d["device_id"] for d in (await api.get("/devices", token=token))[1]["devices"]}
    assert devices == {"KEEP", "B"}


async def test_a_bulk_delete_session_is_bound_to_its_device_list(api):
    token = await _with_devices_keep_a_b(api, "bulk")
    status, challenge = await api.post("/delete_devices", {"devices": ["A"]}, token=token)
    auth = _password(challenge["session"], "@bulk:localhost")
    status, body = await api.post("/delete_devices", {"devices": ["A", "B", "KEEP"], "auth": auth}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await api.post("/delete_devices", {"devices": ["A"], "auth": auth}, token=token))[0] == 200


async def test_a_password_change_session_is_bound_to_the_new_password(api):
    user = await api.register("bound")
    token = user["access_token"]
    status, challenge = await api.post("/account/password", {"new_password": "chosen by me"}, token=token)
    auth = _password(challenge["session"], "@bound:localhost")
    status, body = await api.post("/account/password", {"new_password": "chosen by a thief", "auth": auth}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_authenticating_as_another_user_is_403(api):
    user = await api.register("mine", device_id="KEEP")
    await api.register("theirs")
    await api.post("/login", {"type": "m.login.password", "user": "mine", "password": "correct horse", "device_id": "X"})
    status, challenge = await api.delete("/devices/X", {}, token=user["access_token"])
    for other in ("@theirs:localhost", "theirs", "@mine:elsewhere.example"):
        status, body = await api.delete("/devices/X", {"auth": _password(challenge["session"], other)},
                                        token=user["access_token"])
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (other, body)
        assert "flows" not in body


async def test_a_localpart_with_a_trailing_newline_is_refused(api):
    for username in ("name-\n", "name\n"):
        status, body = await api.post("/register", {"username": username, "password": "correct horse"})
        assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME"), username
        status, body = await api.get("/register/available", params={"username": username})
        assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME"), username
    status, challenge = await api.post("/register", {})
    status, body = await api.post("/register", {"username": "name-\n", "password": "correct horse",
                                                "auth": {"type": "m.login.dummy", "session": challenge["session"]}})
    assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")


async def test_a_user_id_with_a_trailing_newline_names_nobody(api: Api):
    user = await api.register("newline")
    status, body = await api.post("/login", {"type": "m.login.password", "user": "@newline:localhost\n",
                                             "password": "correct horse"})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
    room_id = await api.create_room(user["access_token"])
    status, body = await api.post(f"/rooms/{room_id}/invite", {"user_id": "@newline:localhost\n"},
                                  token=user["access_token"])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body


async def test_the_stored_binding_does_not_reveal_a_new_password(api, homeserver):
    user = await api.register("secretive")
    request = {"new_password": "guess me if you can"}
    status, challenge = await api.post("/account/password", request, token=user["access_token"])
    stored_key = (await homeserver.users.store.get_uia_session(challenge["session"]))[2]
    plain = hashlib.sha256(orjson.dumps({"body": request, "path": {}}, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert stored_key and stored_key != plain, "keyed with a server secret, not a plain hash"
