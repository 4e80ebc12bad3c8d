"""The draft's error shape on every endpoint: a bad or missing access token, bodies that
are not JSON or not objects, unknown paths and methods, and NUL characters (which
PostgreSQL refuses) answered as errors, never a 500."""

from __future__ import annotations

import itertools
import re

from draft_support import DraftApi
from ranvier.legacy_api.routing import PREFIX, legacy_routes

#: Endpoints that need no access token.
OPEN = {("POST", "/register"), ("GET", "/login"), ("POST", "/login"), ("GET", "/login/fallback")}
#: A value for each path parameter: an existing room and users of the setup below.
VALUES = {"room_id": "room_beta@sy.org", "user_id": "bob@sy.org", "from": "alice@sy.org",
          "msgfrom": "alice@sy.org", "msg_id": "m1", "feedback": "d"}


def _endpoints() -> list[tuple[str, str]]:
    found = []
    for routes in legacy_routes():
        for route in routes.entries:
            if route.method == "*":
                continue
            path = route.path[len(PREFIX):]
            found.append((route.method, re.sub(r"\{(\w+)\}", lambda m: VALUES[m.group(1)], path)))
    return found


ENDPOINTS = _endpoints()
AUTHENTICATED = [endpoint for endpoint in ENDPOINTS if (endpoint[0], endpoint[1]) not in OPEN]
WITH_BODIES = [endpoint for endpoint in ENDPOINTS if endpoint[0] in ("PUT", "POST")]


async def _setup(draft: DraftApi) -> tuple[str, str]:
    _, alice = await draft.register("alice")
    _, bob = await draft.register("bob")
    await draft.ok("PUT", "/rooms/room_beta@sy.org", {"visibility": "public"}, token=alice)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/messages/alice@sy.org/m1", {"msgtype": "m.text", "body": "x"},
                   token=alice)
    return alice, bob


def test_every_endpoint_of_the_draft_is_served():
    templates = {(route.method, route.path[len(PREFIX):]) for routes in legacy_routes() for route in routes.entries}
    assert templates == {
        ("POST", "/register"), ("POST", "/unregister"), ("GET", "/login"), ("POST", "/login"),
        ("GET", "/login/fallback"), ("PUT", "/rooms/{room_id}"), ("POST", "/rooms"),
        ("GET", "/rooms/{room_id}/topic"), ("PUT", "/rooms/{room_id}/topic"), ("GET", "/public/rooms"),
        ("GET", "/rooms/list"), ("PUT", "/rooms/{room_id}/members/{user_id}/state"),
        ("GET", "/rooms/{room_id}/members/{user_id}/state"), ("DELETE", "/rooms/{room_id}/members/{user_id}/state"),
        ("GET", "/rooms/{room_id}/members/list"), ("PUT", "/rooms/{room_id}/messages/{from}/{msg_id}"),
        ("GET", "/rooms/{room_id}/messages/{from}/{msg_id}"),
        ("PUT", "/rooms/{room_id}/messages/{msgfrom}/{msg_id}/feedback/{from}/{feedback}"),
        ("GET", "/rooms/{room_id}/messages/{msgfrom}/{msg_id}/feedback/{from}/{feedback}"),
        ("GET", "/rooms/{room_id}/messages/list"), ("GET", "/events"), ("GET", "/im/sync"),
        ("GET", "/profile/{user_id}/displayname"), ("PUT", "/profile/{user_id}/displayname"),
        ("GET", "/profile/{user_id}/avatar_url"), ("PUT", "/profile/{user_id}/avatar_url"),
        ("GET", "/presence/{user_id}/status"), ("PUT", "/presence/{user_id}/status"),
        ("GET", "/presence_list/{user_id}"), ("POST", "/presence_list/{user_id}"), ("*", "/{path:.*}"),
    }


async def test_a_missing_or_bad_token_is_forbidden(draft: DraftApi):
    await _setup(draft)
    for method, path in AUTHENTICATED:
        for token in (None, "rva_not_a_token"):
            status, body = await draft.request(method, path, {}, token=token)
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (method, path, token, body)
            assert set(body) == {"errcode", "error"}


async def test_bodies_that_are_not_json_objects(draft: DraftApi):
    _, bob = await _setup(draft)
    for method, path in WITH_BODIES:
        status, body = await draft.request(method, path, data=b'{"msgtype": "m.text",', token=bob)
        assert (status, body["errcode"]) == (400, "M_NOT_JSON"), (method, path, body)
        status, body = await draft.request(method, path, data=b'["an", "array"]', token=bob)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), (method, path, body)


async def test_nul_in_path_parameters_is_an_error_not_a_crash(draft: DraftApi):
    _, bob = await _setup(draft)
    for (method, path), (name, value) in itertools.product(AUTHENTICATED, VALUES.items()):
        if value in path:
            status, body = await draft.request(method, path.replace(value, value[:1] + "%00" + value[1:], 1),
                                               {"msgtype": "m.text", "body": "x", "membership": "join",
                                                "topic": "t", "state": 1, "displayname": "d"}, token=bob)
            # 200 where the parameter is one the server replaces ($from of a message or a feedback).
            assert status in (200, 400, 403, 404), (name, status, body)
            assert status == 200 or body["errcode"].startswith("M_"), (name, status, body)


async def test_unknown_paths_and_methods(draft: DraftApi):
    _, bob = await _setup(draft)
    status, body = await draft.get("/no/such/thing", token=bob)
    assert (status, body) == (404, {"errcode": "M_NOT_FOUND", "error": "No resource was found for this request"})
    status, body = await draft.request("PATCH", "/rooms/room_beta@sy.org/topic", {}, token=bob)
    assert (status, body["errcode"]) == (405, "M_NOT_FOUND") and "GET, PUT" in body["error"]
    status, body = await draft.delete("/events", token=bob)
    assert (status, body["errcode"]) == (405, "M_NOT_FOUND") and "GET" in body["error"]
