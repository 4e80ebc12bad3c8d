"""OpenID tokens and their federation userinfo, TURN credentials, and the support well-known."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

USERINFO = "/_matrix/federation/v1/openid/userinfo"


async def test_openid_token_proves_who_the_user_is(api):
    alice, bob = await api.register_all("alice", "bob")
    status, token = await api.post("/user/@alice:localhost/openid/request_token", {}, token=alice["access_token"])
    assert status == 200, token
    assert token["token_type"] == "Bearer" and token["matrix_server_name"] == "localhost"
    assert token["expires_in"] == 3600 and token["access_token"]
    assert await api.get(USERINFO, params={"access_token": token["access_token"]}) == (200, {"sub": "@alice:localhost"})
    status, body = await api.post("/user/@bob:localhost/openid/request_token", {}, token=alice["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), "only for oneself"
    status, body = await api.post("/user/@alice:localhost/openid/request_token", data=b"", token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")


async def test_userinfo_refuses_anything_but_a_live_openid_token(api, homeserver):
    (alice,) = await api.register_all("alice")
    for bad in ("nonsense", alice["access_token"]):
        status, body = await api.get(USERINFO, params={"access_token": bad})
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), bad
    status, body = await api.get(USERINFO)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    openid = await homeserver.users.tokens.create_openid_token("@alice:localhost", lifetime_ms=-1)
    status, body = await api.get(USERINFO, params={"access_token": openid})
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), "expired"
    status, token = await api.post("/user/@alice:localhost/openid/request_token", {}, token=alice["access_token"])
    status, openid_token = await api.get(USERINFO, params={"access_token": token["access_token"]})
    assert status == 200
    status, body = await api.get("/account/whoami", token=token["access_token"])
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), "an OpenID token is no access token"
    await homeserver.users.deactivate("@alice:localhost")
    status, body = await api.get(USERINFO, params={"access_token": token["access_token"]})
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), "a deactivated account proves nothing"


async def test_turn_server_answers_nothing_without_configuration(api):
    (alice,) = await api.register_all("alice")
    assert await api.get("/voip/turnServer", token=alice["access_token"]) == (200, {})
    status, body = await api.get("/voip/turnServer")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_turn_credentials_are_the_ones_coturn_checks(make_server):
    uris = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]
    api = await make_server(turn={"uris": uris, "shared_secret": "s3cr3t", "credential_lifetime_ms": 3600_000})
    user = await api.register("caller")
    before = int(time.time())
    status, turn = await api.get("/voip/turnServer", token=user["access_token"])
    assert status == 200, turn
    assert turn["uris"] == uris and turn["ttl"] == 3600
    expiry, _, user_id = turn["username"].partition(":")
    assert user_id == "@caller:localhost"
    assert before + 3600 <= int(expiry) <= int(time.time()) + 3600
    expected = base64.b64encode(hmac.new(b"s3cr3t", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["password"] == expected


async def test_support_is_404_until_configured(api):
    status, body = await api.get("/.well-known/matrix/support")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_support_serves_the_configured_contacts(make_server):
    api = await make_server(support={
        "contacts": [{"role": "m.role.admin", "matrix_id": "@admin:example.org", "email_address": "admin@example.org"},
                     {"role": "m.role.security", "email_address": "security@example.org"}],
        "support_page": "https://example.org/help",
    })
    status, body = await api.get("/.well-known/matrix/support")
    assert (status, body) == (200, {
        "contacts": [{"role": "m.role.admin", "matrix_id": "@admin:example.org", "email_address": "admin@example.org"},
                     {"role": "m.role.security", "email_address": "security@example.org"}],
        "support_page": "https://example.org/help",
    })
    page_only = await make_server(support={"support_page": "https://example.org/help"})
    assert await page_only.get("/.well-known/matrix/support") == (200, {"support_page": "https://example.org/help"})
