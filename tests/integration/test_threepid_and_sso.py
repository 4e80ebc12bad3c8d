"""Third-party identifiers, third-party invites and single sign-on: none is configured, so
each endpoint answers with the spec's error for it, naming what is missing."""

from __future__ import annotations

import pytest


async def test_an_account_has_no_third_party_identifiers(api):
    (alice,) = await api.register_all("alice")
    assert await api.get("/account/3pid", token=alice["access_token"]) == (200, {"threepids": []})
    status, body = await api.get("/account/3pid")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("path, body, status, errcode, names", [
    ("/account/3pid", {"three_pid_creds": {"sid": "1", "client_secret": "x", "id_server": "id.example.org",
                                           "id_access_token": "t"}}, 403, "M_SERVER_NOT_TRUSTED", "identity server"),
    ("/account/3pid/bind", {"sid": "1", "client_secret": "x", "id_server": "id.example.org", "id_access_token": "t"},
     403, "M_SERVER_NOT_TRUSTED", "identity server"),
    ("/account/3pid/unbind", {"medium": "email", "address": "a@example.org"}, 403, "M_SERVER_NOT_TRUSTED",
     "identity server"),
    ("/account/3pid/add", {"sid": "1", "client_secret": "x"}, 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", "e-mail"),
    ("/account/3pid/delete", {"medium": "email", "address": "a@example.org"}, 400, "M_THREEPID_NOT_FOUND", "e-mail"),
])
async def test_changing_third_party_identifiers_is_refused_clearly(api, path, body, status, errcode, names):
    (alice,) = await api.register_all("alice")
    answer_status, answer = await api.post(path, body, token=alice["access_token"])
    assert (answer_status, answer["errcode"]) == (status, errcode)
    assert names in answer["error"]
    answer_status, answer = await api.post(path, body)
    assert (answer_status, answer["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_deleting_a_third_party_identifier_checks_the_body(api):
    (alice,) = await api.register_all("alice")
    status, body = await api.post("/account/3pid/delete", {"medium": "email"}, token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


@pytest.mark.parametrize("path, status, errcode", [
    ("/register/email/requestToken", 403, "M_THREEPID_DENIED"),
    ("/register/msisdn/requestToken", 403, "M_THREEPID_DENIED"),
    ("/account/password/email/requestToken", 403, "M_THREEPID_DENIED"),
    ("/account/password/msisdn/requestToken", 403, "M_THREEPID_DENIED"),
    ("/account/3pid/email/requestToken", 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
    ("/account/3pid/msisdn/requestToken", 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
])
async def test_no_validation_token_is_ever_sent(api, path, status, errcode):
    body = {"client_secret": "secret", "email": "a@example.org", "country": "GB", "phone_number": "07700900000",
            "send_attempt": 1}
    answer_status, answer = await api.post(path, body)
    assert (answer_status, answer["errcode"]) == (status, errcode)
    assert "e-mail" in answer["error"] and "identity server" in answer["error"]
    answer_status, answer = await api.post(path, data=b"{oops")
    assert (answer_status, answer["errcode"]) == (400, "M_NOT_JSON")


async def test_third_party_invites_need_an_identity_server(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    status, body = await api.post(f"/rooms/{room_id}/invite", {"id_server": "id.example.org", "id_access_token": "t",
                                                              "medium": "email", "address": "bob@example.org"},
                                  token=token)
    assert (status, body["errcode"]) == (403, "M_SERVER_NOT_TRUSTED") and "identity server" in body["error"]
    status, body = await api.post("/createRoom", {"invite_3pid": [{"id_server": "id.example.org", "id_access_token": "t",
                                                                   "medium": "email", "address": "bob@example.org"}]},
                                  token=token)
    assert (status, body["errcode"]) == (403, "M_SERVER_NOT_TRUSTED") and "identity server" in body["error"]
    status, body = await api.post(f"/rooms/{room_id}/invite", {}, token=token)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM"), "an invite names someone"


async def test_single_sign_on_is_not_offered(api):
    status, flows = await api.get("/login")
    assert status == 200
    assert not any(flow["type"] in ("m.login.sso", "m.login.cas") for flow in flows["flows"])
    for path in ("/login/sso/redirect", "/login/sso/redirect/oidc-example"):
        status, body = await api.get(path, params={"redirectUrl": "https://client.example.org/"})
        assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED") and "single sign-on" in body["error"].lower()
