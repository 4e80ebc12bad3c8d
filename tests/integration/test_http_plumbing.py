"""Every malformed request gets a Matrix error with the right status, never a 500."""

from __future__ import annotations

import random

import pytest

from tests.conftest import route_url


async def test_unknown_endpoint_is_404_unrecognized(api):
    status, body = await api.get("/_matrix/client/v3/no/such/thing")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")


async def test_wrong_method_is_405_unrecognized(api):
    status, body = await api.delete("/_matrix/client/versions")
    assert (status, body["errcode"]) == (405, "M_UNRECOGNIZED")


async def test_garbage_json_is_not_json(api):
    status, body = await api.post("/login", data=b"{not json")
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")


@pytest.mark.parametrize("payload", [b"[]", b"3", b'"text"', b"null"])
async def test_json_that_is_not_an_object_is_bad_json(api, payload):
    status, body = await api.post("/login", data=payload)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_wrong_field_type_is_bad_json(api):
    status, body = await api.post("/login", {"type": 42})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_missing_field_is_missing_param(api):
    status, body = await api.post("/login", {"identifier": {"type": "m.id.user", "user": "x"}})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


async def test_body_over_the_limit_is_too_large(api, homeserver):
    huge = b'{"type": "' + b"x" * (homeserver.config.limits.max_request_body_bytes + 10) + b'"}'
    status, body = await api.post("/login", data=huge)
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")


async def test_chunked_body_over_the_limit_is_too_large(api, homeserver):
    limit = homeserver.config.limits.max_request_body_bytes

    async def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    status, body = await api.post("/login", data=chunks())
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")


async def test_no_token_is_missing_token(api):
    status, body = await api.get("/account/whoami")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_bad_token_is_unknown_token(api):
    status, body = await api.get("/account/whoami", token="rva_nonsense")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert body["soft_logout"] is False


async def test_malformed_authorization_header_is_missing_token(api):
    status, body = await api.get("/account/whoami", headers={"Authorization": "Basic abc"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_token_in_query_parameter_is_accepted(api):
    user = await api.register("querytoken")
    status, body = await api.get("/account/whoami", params={"access_token": user["access_token"]})
    assert (status, body["user_id"]) == (200, "@querytoken:localhost")


async def test_cors_preflight_on_any_client_path(api):
    async with api.session.options(
        api.base_url + "/_matrix/client/v3/rooms/!a:b/send/m.room.message/1",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"},
    ) as response:
        assert response.status in (200, 204)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "PUT" in response.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_cors_headers_on_errors_too(api):
    async with api.session.get(api.base_url + "/_matrix/client/v3/nothing") as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_r0_aliases_are_served(api):
    user = await api.register("oldclient")
    status, body = await api.get("/_matrix/client/r0/account/whoami", token=user["access_token"])
    assert (status, body["user_id"]) == (200, "@oldclient:localhost")


ENDPOINTS = [
    ("POST", "/register"), ("POST", "/login"), ("POST", "/logout"), ("POST", "/refresh"),
    ("POST", "/account/password"), ("POST", "/account/deactivate"), ("PUT", "/devices/X"),
    ("POST", "/delete_devices"), ("DELETE", "/devices/X"), ("GET", "/register/available"),
    ("POST", "/_matrix/client/v1/login/get_token"),
]
PAYLOADS = [
    b"", b"\x00\xff\xfe", b"{", b"[1,2", b'{"auth": 5}', b'{"auth": {"type": []}}', b'{"username": {"a": 1}}',
    b'{"password": 12, "username": "x"}', b'{"identifier": "x", "type": "m.login.password"}',
    b'{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 7}, "password": "p"}',
    b'{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@bad"}, "password": "p"}',
    b'{"devices": "notalist"}', b'{"devices": [1, 2]}', b'{"display_name": false}', b'{"refresh_token": 3}',
    b'{"new_password": null}', b'{"device_id": ["x"]}', b'{"inhibit_login": "yes"}', "{\"u\": \"\ud800\"}".encode("utf-8", "surrogatepass"),
    b'{"a": 1e400}', b'{"a": ' + b"[" * 10000 + b"]" * 10000 + b"}",
]


async def test_no_malformed_request_produces_a_500(api):
    user = await api.register("fuzzer")
    rng = random.Random(1234)
    for method, path in ENDPOINTS:
        for payload in PAYLOADS + [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) for _ in range(5)]:
            for token in (None, user["access_token"]):
                status, body = await api.request(method, path, data=payload, token=token,
                                                 params={"username": "x\x00y", "kind": "user"})
                assert status < 500, (method, path, payload, body)
                if status >= 400:
                    assert isinstance(body.get("errcode"), str) or "flows" in body, (method, path, payload, body)


BODIES = PAYLOADS[:12] + [
    b"[]", b"null", b'"text"', b'{"body": 5, "msgtype": []}', b'{"membership": 1, "displayname": {}}',
    b'{"limit": "x", "filter": 5, "since": []}', b'{"receipts": 1, "m.fully_read": []}', b'{"timeout": "soon", "typing": "yes"}',
    b'{"room_version": 7, "preset": [], "invite": "x", "initial_state": [1]}', b'{"user_id": "@", "reason": 7}',
]
QUERIES = [
    {}, {"limit": "-1"}, {"limit": "lots"}, {"from": "garbage", "to": "s_x"}, {"dir": "sideways"},
    {"filter": "{not json"}, {"filter": '{"room": {"timeline": {"limit": "x"}}}'}, {"since": "zz_9_!"},
    {"timeout": "nan"}, {"at": "bogus", "membership": "wizard"}, {"width": "-5", "height": "1e9", "method": "melt"},
    {"ts": "yesterday", "dir": "f"}, {"url": "http://127.0.0.1/", "ts": "-1"}, {"server": "bad/name", "suggested_only": "maybe"},
    {"format": "federation", "event_format": 3}, {"recurse": "2", "max_depth": "x", "key": "\x00"},
]


def route_urls(room_id: str, event_id: str, user_id: str) -> list[tuple[str, str]]:
    """Every client API route, its parameters filled with real and with malformed values."""
    from ranvier.server import route_tables

    real = {"room_id": room_id, "room_id_or_alias": room_id, "event_id": event_id, "user_id": user_id,
            "room_alias": "#nowhere:localhost", "server_name": "localhost", "media_id": "nosuchmedia",
            "event_type": "m.room.message", "type": "m.room.name", "state_key": "", "rel_type": "m.thread",
            "receipt_type": "m.read", "txn_id": "t1", "tag": "u.work", "key": "m.status"}
    bad = {"room_id": "notaroom", "room_id_or_alias": "#", "event_id": "%24", "user_id": "@", "media_id": "..",
           "server_name": "a:b:c", "event_type": "x" * 300, "receipt_type": "m.nope", "txn_id": "%00"}
    urls = []
    for routes in route_tables():
        for route in routes.entries:
            if "logout" in route.path or "deactivate" in route.path:
                continue  # would end the session the rest of the sweep uses
            for values in (real, {**real, **bad}):
                method = "GET" if route.method == "*" else route.method  # a catch-all: any method
                urls.append((method, route_url(route, values)))
    return sorted(set(urls))


#: The sweep below is split into this many tests, every one taking every SHARDS-th URL, so
#: that the test processes share it.
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
async def test_no_request_to_any_endpoint_produces_a_500(api, shard):
    user = await api.register("sweeper")
    token = user["access_token"]
    room_id = await api.create_room(token, preset="public_chat")
    event_id = await api.send_text(token, room_id, "hello")
    rng = random.Random(99 + shard)
    for method, path in route_urls(room_id, event_id, user["user_id"])[shard::SHARDS]:
        for data, params in [(body, {}) for body in BODIES] + [(b"{}", query) for query in QUERIES]:
            if method == "GET":
                data = None
            status, body = await api.request(method, path, data=data, token=token,
                                             params={"timeout": "0", **params} if "sync" in path or "events" in path
                                             else params)
            assert status < 500, (method, path, data, params, body)
            if status >= 400:
                assert isinstance(body.get("errcode"), str) or "flows" in body, (method, path, data, params, body)
        junk = bytes(rng.getrandbits(8) for _ in range(32))
        status, _ = await api.request(method, path, data=None if method == "GET" else junk, token=token)
        assert status < 500, (method, path, junk)
