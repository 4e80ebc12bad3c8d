"""NUL and other control characters in every part of a request.

PostgreSQL text cannot hold U+0000, so a NUL anywhere in a request (a path parameter, a
query value, a JSON body, event content included) is refused with 400 M_INVALID_PARAM
before it reaches a service, on both engines alike; other control characters are stored as they are. Nothing
may answer 5xx.
"""

from __future__ import annotations

import inspect
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import route_url

NUL = "\x00"


async def _room_with_event(api) -> tuple[dict, str, str]:
    user = await api.register("alice")
    room_id = await api.create_room(user["access_token"], preset="public_chat")
    event_id = await api.send_text(user["access_token"], room_id, "hello")
    return user, room_id, event_id


def _requests(room_id: str, event_id: str) -> list[tuple[str, str, dict | None, dict | None, str]]:
    """(method, path, body, query, errcode) of the places where a NUL used to reach PostgreSQL."""
    room = quote(room_id)
    return [
        ("PUT", f"/rooms/{room}/state/m.room.topic/a%00b", {"topic": "t"}, None, "M_INVALID_PARAM"),
        ("PUT", f"/rooms/{room}/send/m.room.message/t%00x", {"body": "b", "msgtype": "m.text"}, None, "M_INVALID_PARAM"),
        ("PUT", f"/rooms/{room}/send/m.ro%00om/t1", {"body": "b"}, None, "M_INVALID_PARAM"),
        ("PUT", f"/rooms/{room}/send/m.room.message/t2", {"body": "a\x00b", "msgtype": "m.text"}, None, "M_INVALID_PARAM"),
        ("PUT", "/profile/@alice:localhost/displayname", {"displayname": "a\x00b"}, None, "M_INVALID_PARAM"),
        ("PUT", "/presence/@alice:localhost/status", {"presence": "online", "status_msg": "a\x00"}, None, "M_INVALID_PARAM"),
        ("POST", f"/rooms/{room}/report/{quote(event_id)}", {"reason": "x\x00"}, None, "M_INVALID_PARAM"),
        ("POST", "/user/@alice:localhost/filter", {"room": {"timeline": {"types": ["a\x00"]}}}, None, "M_INVALID_PARAM"),
        ("GET", "/sync", None, {"filter": '{"room": {"timeline": {"types": ["a\\u0000"]}}}', "timeout": "0"},
         "M_INVALID_PARAM"),
        ("GET", f"/rooms/{room}%00/state", None, None, "M_INVALID_PARAM"),
        ("GET", f"/rooms/{room}/event/{quote(event_id)}%00", None, None, "M_INVALID_PARAM"),
        ("POST", "/user_directory/search", {"search_term": "a\x00"}, None, "M_INVALID_PARAM"),
        ("POST", "/join/%23a%00b:localhost", {}, None, "M_INVALID_PARAM"),
        ("POST", "/_matrix/media/v3/upload", None, {"filename": "a\x00.txt"}, "M_INVALID_PARAM"),
        ("GET", "/_matrix/client/v3/rooms/" + room + "/messages", None, {"from": "a\x00", "dir": "b"},
         "M_INVALID_PARAM"),
    ]


UNAUTHENTICATED = [
    ("POST", "/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "a\x00"},
                        "password": "p"}, None, "M_INVALID_PARAM"),
    ("POST", "/register", {"username": "bob", "password": "correct horse", "device_id": "D\x00",
                           "initial_device_display_name": "n\x00"}, None, "M_INVALID_PARAM"),
    ("GET", "/profile/@a%00b:localhost", None, None, "M_INVALID_PARAM"),
    ("GET", "/_matrix/client/v1/register/m.login.registration_token/validity", None, {"token": "a\x00"},
     "M_INVALID_PARAM"),
    ("GET", "/register/available", None, {"username": "a\x00"}, "M_INVALID_PARAM"),
]


async def test_a_nul_anywhere_in_a_request_is_refused_with_400(api):
    user, room_id, event_id = await _room_with_event(api)
    for method, path, body, query, errcode in _requests(room_id, event_id) + UNAUTHENTICATED:
        data = b"some bytes" if path.endswith("/upload") else None
        status, answer = await api.request(method, path, body, token=user["access_token"], params=query, data=data)
        assert (status, answer.get("errcode")) == (400, errcode), (method, path, body, query, answer)


async def test_other_control_characters_are_stored_and_read_back_alike(api):
    """U+0001 to U+001F are valid in JSON strings and PostgreSQL text: they round-trip."""
    user, room_id, _ = await _room_with_event(api)
    token = user["access_token"]
    controls = "".join(chr(c) for c in range(1, 32))
    status, _ = await api.put(f"/rooms/{quote(room_id)}/state/m.room.topic/{quote('k' + controls[:8])}",
                              {"topic": controls}, token=token)
    assert status == 200
    status, state = await api.get(f"/rooms/{quote(room_id)}/state/m.room.topic/{quote('k' + controls[:8])}",
                                  token=token)
    assert (status, state) == (200, {"topic": controls})
    status, _ = await api.put("/profile/@alice:localhost/displayname", {"displayname": "al" + controls}, token=token)
    assert status == 200
    status, profile = await api.get("/profile/@alice:localhost/displayname")
    assert profile["displayname"] == "al" + controls


# -- every route, with hostile text in every place ----------------------------------------

CONTROL_CHARACTERS = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(["\x7f", "\x85", "\u2028"])
#: Fields that many handlers read, besides those found in each handler's source.
COMMON_FIELDS = ["body", "msgtype", "displayname", "avatar_url", "name", "topic", "reason", "user", "username",
                 "device_id", "initial_device_display_name", "display_name", "presence", "status_msg", "token",
                 "search_term", "room_alias_name", "room_id", "user_id", "event_id", "type", "filter", "alias",
                 "visibility", "membership", "new_password", "password", "session", "pushkey", "app_id", "kind",
                 "lang", "url", "version", "algorithm", "state_key", "since", "from", "to", "dir", "limit",
                 "score", "id_server", "medium", "address", "client_secret", "sid", "m.new_content"]
_FIELD = re.compile(r"""(?:field\(\w+, |\.get\(|query_\w+\(request, |\[)"([a-z_.]+)\"""")


def _names_read_by(handler) -> list[str]:
    """The body fields and query parameters a handler's own source names."""
    return sorted(set(_FIELD.findall(inspect.getsource(handler))))


def spoil(real: str, fragment: str, where: int) -> str:
    """`real` with `fragment` put before, inside or after it, or `fragment` alone."""
    middle = len(real) // 2
    return [fragment + real, real[:middle] + fragment + real[middle:], real + fragment, fragment][where % 4]


def _real_values(room_id: str, event_id: str, user_id: str) -> dict[str, str]:
    return {"room_id": room_id, "room_id_or_alias": room_id, "event_id": event_id, "user_id": user_id,
            "room_alias": "#alias:localhost", "server_name": "localhost", "media_id": "abc", "event_type":
            "m.room.message", "type": "m.room.name", "state_key": "", "rel_type": "m.thread", "receipt_type": "m.read",
            "txn_id": "t1", "tag": "u.work", "key": "displayname", "device_id": "DEVICE", "filter_id": "1",
            "version": "1", "session_id": "s", "kind": "override", "rule_id": "r", "scope": "global"}


@pytest.fixture
async def sweep_target(api):
    user = await api.register("sweeper")
    token = user["access_token"]
    room_id = await api.create_room(token, preset="public_chat", room_alias_name="alias")
    event_id = await api.send_text(token, room_id, "hello")
    return api, token, _real_values(room_id, event_id, user["user_id"])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(fragments=st.lists(st.text(CONTROL_CHARACTERS, min_size=1, max_size=3), min_size=3, max_size=3),
       where=st.integers(0, 3))
async def test_no_route_answers_5xx_to_control_characters(sweep_target, fragments, where):
    """Every route of the route tables, its path parameters, the query parameters and body
    fields its handler reads (and common ones) spoiled with control characters."""
    from ranvier.server import route_tables

    api, token, real = sweep_target
    counter = iter(range(10**6))

    def spoiled(value: str) -> str:
        index = next(counter)
        return spoil(value, fragments[index % len(fragments)], where + index)

    for routes in route_tables():
        for route in routes.entries:
            if "logout" in route.path or "deactivate" in route.path:
                continue  # would end the session the rest of the sweep uses
            params = re.findall(r"\{(\w+)", route.path)
            values = {name: quote(spoiled(real.get(name, "x")), safe="") for name in params}
            names = _names_read_by(route.handler)
            query = {name: spoiled("1") for name in names}
            body = {name: spoiled("x") for name in names + COMMON_FIELDS}
            body["identifier"] = {"type": "m.id.user", "user": spoiled("sweeper")}
            body["content"] = {"body": spoiled("hi")}
            method = route.method
            status, answer = await api.request(method, route_url(route, values), None if method == "GET" else body,
                                               token=token, params=query)
            assert status < 500, (method, route.path, values, query, body, answer)
