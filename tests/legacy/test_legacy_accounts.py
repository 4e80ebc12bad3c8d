"""Registration, unregistration and login of the draft API, the login fallback page in
headless Chromium (tests/js/login_fallback.mjs), and the error codes of each."""

from __future__ import annotations

import pytest

from draft_support import PREFIX, DraftApi
from tests.js_support import page_script_steps


async def test_register_allocated_or_chosen_and_taken(draft: DraftApi, api):
    status, allocated = await draft.post("/register", {})
    assert status == 200 and allocated["user_id"].endswith("@sy.org")
    # The token works on the draft API, as the query parameter it asks for.
    assert (await draft.get("/presence/" + allocated["user_id"] + "/status", token=allocated["access_token"]))[0] == 200

    for asked, given in (("bob", "bob@sy.org"), ("carol@sy.org", "carol@sy.org"), ("@dave:sy.org", "dave@sy.org"),
                         ("Eve", "eve@sy.org")):
        status, body = await draft.post("/register", {"user_id": asked})
        assert (status, body["user_id"]) == (200, given), body
    status, body = await draft.post("/register", {"user_id": "bob@sy.org"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    status, body = await draft.post("/register", {"user_id": "@bob:sy.org"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")

    # The same user is seen through today's API.
    status, profile = await api.get("/profile/@carol:sy.org")
    assert status == 200 and profile["displayname"] == "carol"


async def test_register_refuses_bad_bodies(draft: DraftApi):
    for body in ({"user_id": "bob@elsewhere.org"}, {"user_id": "not a name"}, {"user_id": 7},
                 {"user_id": "nul\u0000@sy.org"}, {"password": 5}, {"password": "short"}):
        status, answer = await draft.post("/register", body)
        assert (status, answer["errcode"]) == (400, "M_BAD_JSON"), (body, answer)
        assert set(answer) == {"errcode", "error"}


async def test_register_errors_not_json_and_closed(draft: DraftApi, homeserver):
    status, body = await draft.post("/register", data=b"{not json")
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    status, body = await draft.post("/register", data=b"[1]")
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    homeserver.config.registration.mode = "closed"
    status, body = await draft.post("/register", {})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_unregister_ends_the_account_and_its_rooms(draft: DraftApi):
    user, token = await draft.register("leaving", "a good password")
    _, owner = await draft.register("owner")
    await draft.ok("PUT", "/rooms/lobby@sy.org", {"visibility": "public"}, token=owner)
    await draft.ok("PUT", f"/rooms/lobby@sy.org/members/{user}/state", {"membership": "join"}, token=token)
    status, body = await draft.post("/unregister", {}, token=token)
    assert (status, body) == (200, {})
    status, body = await draft.post("/unregister", {}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    members = await draft.ok("GET", "/rooms/lobby@sy.org/members/list", token=owner)
    assert [member["user_id"] for member in members["chunk"]] == ["owner@sy.org"]
    status, body = await draft.post("/login", {"type": "m.login.password", "user": user, "password": "a good password"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await draft.post("/register", {"user_id": user})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    status, body = await draft.post("/unregister", {})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_login_with_password_in_every_id_form(draft: DraftApi, api):
    await draft.register("bob", "monkey see monkey do")
    status, info = await draft.get("/login")
    assert (status, info) == (200, {"type": "m.login.password"})
    for user in ("bob@sy.org", "@bob:sy.org", "bob"):
        status, result = await draft.post("/login", {"type": "m.login.password", "user": user,
                                                     "password": "monkey see monkey do"})
        assert status == 200 and result["user_id"] == "bob@sy.org", result
        status, me = await api.get("/account/whoami", token=result["access_token"])
        assert (status, me["user_id"]) == (200, "@bob:sy.org")


LOGIN_ERRORS = [
    ({"type": "m.login.password", "user": "bob@sy.org", "password": "wrong"}, 403, "M_FORBIDDEN", "password"),
    ({"type": "m.login.password", "user": "nobody@sy.org", "password": "x"}, 403, "M_FORBIDDEN", "password"),
    ({"type": "m.login.password", "user": "bob@elsewhere.org", "password": "x"}, 403, "M_FORBIDDEN", "server"),
    ({"type": "m.login.password", "password": "x"}, 400, "M_BAD_JSON", "user"),
    ({"type": "m.login.password", "user": "bob@sy.org"}, 400, "M_BAD_JSON", "password"),
    ({"user": "bob@sy.org", "password": "x"}, 400, "M_BAD_JSON", "type"),
    ({"type": "m.login.oauth2", "user": "bob@sy.org"}, 400, "M_BAD_JSON", "OAuth2 provider"),
    ({"type": "m.login.email.code", "user": "bob@sy.org", "email": "bob@mydomain.com"}, 400, "M_BAD_JSON", "e-mail"),
    ({"type": "m.login.email.url", "session": "ewuigf7462"}, 400, "M_BAD_JSON", "e-mail"),
    ({"type": "m.login.magic"}, 400, "M_BAD_JSON", "m.login.password"),
]


async def test_login_errors(draft: DraftApi):
    await draft.register("bob", "monkey see monkey do")
    for body, status, errcode, says in LOGIN_ERRORS:
        got, answer = await draft.post("/login", body)
        assert (got, answer["errcode"]) == (status, errcode), (body, answer)
        assert says in answer["error"]


async def test_login_not_json(draft: DraftApi):
    for data, errcode in ((b"", "M_NOT_JSON"), (b"{", "M_NOT_JSON"), (b'"text"', "M_BAD_JSON")):
        status, body = await draft.post("/login", data=data)
        assert (status, body["errcode"]) == (400, errcode)


async def test_login_fallback_is_a_page_that_uses_the_login_api(draft: DraftApi, api, homeserver):
    async with api.session.get(homeserver.base_url + PREFIX + "/login/fallback") as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
    assert f'const api = "{PREFIX}";' in page and "m.login.password" in page and "{{" not in page


@pytest.mark.interop
async def test_login_fallback_logs_in_from_headless_chromium(draft: DraftApi, homeserver):
    await draft.register("browser", "open sesame please")
    steps = await page_script_steps("login_fallback.mjs", homeserver.base_url + PREFIX + "/login/fallback",
                                    "browser@sy.org", "open sesame please", "not the password")
    assert "M_FORBIDDEN" in steps["refused"]["text"]
    assert "Logged in as browser@sy.org" in steps["logged in"]["text"]
    token = steps["logged in"]["token"]
    status, body = await draft.get("/events", token=token, params={"timeout": "0"})
    assert status == 200 and body["chunk"] == []
