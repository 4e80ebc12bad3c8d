"""Only server admins reach the admin API: every admin route answers a non-admin 403
M_FORBIDDEN and a caller without a token 401, and every call is audited in one log line
without secrets."""

from __future__ import annotations

import logging
import re

import pytest

from ranvier import admin_api
from ranvier.admin_api.common import AdminRoutes
from tests.admin.conftest import SYNAPSE, login

ADMIN_ROUTES = [route for table in admin_api.route_tables() if isinstance(table, AdminRoutes)
                for route in table.entries]


def concrete(path: str) -> str:
    """The route's path with each parameter filled with something plausible."""
    values = {"user_id": "@root:localhost", "room_id": "!nowhere:localhost", "server_name": "localhost"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def test_the_sweep_covers_every_area():
    paths = {route.path for route in ADMIN_ROUTES}
    for area in ("/v2/users", "/v1/rooms", "/v1/media", "/v1/registration_tokens", "/v1/event_reports",
                 "/v1/purge_history", "/v1/background_updates", "/_ranvier/admin/api/v1/stats"):
        assert any(area in path for path in paths), area
    assert len(ADMIN_ROUTES) >= 50


async def test_every_admin_route_refuses_a_non_admin_and_a_stranger(api, admin, caplog):
    caplog.set_level(logging.INFO, logger="ranvier.admin")
    user = await api.register("mallory")
    for route in ADMIN_ROUTES:
        path = concrete(route.path)
        body = {} if route.method in ("POST", "PUT", "DELETE") else None
        status, answer = await api.request(route.method, path, body, token=user["access_token"])
        assert (status, answer.get("errcode")) == (403, "M_FORBIDDEN"), (route.method, path, answer)
        status, answer = await api.request(route.method, path, body)
        assert (status, answer.get("errcode")) == (401, "M_MISSING_TOKEN"), (route.method, path, answer)
    refused = [r.getMessage() for r in caplog.records if "@mallory:localhost" in r.getMessage()]
    assert len(refused) == len(ADMIN_ROUTES)
    assert all(line.endswith("-> 403 M_FORBIDDEN") for line in refused)


async def test_an_admin_call_is_audited_in_one_line_without_secrets(api, admin, caplog):
    caplog.set_level(logging.INFO, logger="ranvier.admin")
    status, _ = await api.post(f"{SYNAPSE}/v1/reset_password/@root:localhost",
                               {"new_password": "a secret horse", "logout_devices": False}, token=admin,
                               params={"access_token": admin})
    assert status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "ranvier.admin"]
    assert lines == ["admin @root:localhost POST /_synapse/admin/v1/reset_password/@root:localhost -> 200"]
    assert admin not in caplog.text and "a secret horse" not in caplog.text


async def test_an_admin_made_admin_by_the_api_gets_in_and_a_demoted_one_is_refused(api, admin):
    bob = await api.register("bob")
    assert (await api.get(f"{SYNAPSE}/v2/users", token=bob["access_token"]))[0] == 403
    assert (await api.put(f"{SYNAPSE}/v1/users/@bob:localhost/admin", {"admin": True}, token=admin))[0] == 200
    assert (await api.get(f"{SYNAPSE}/v2/users", token=bob["access_token"]))[0] == 200
    status, body = await api.put(f"{SYNAPSE}/v1/users/@bob:localhost/admin", {"admin": False},
                                 token=bob["access_token"])
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")  # one cannot demote oneself
    assert (await api.put(f"{SYNAPSE}/v1/users/@bob:localhost/admin", {"admin": False}, token=admin))[0] == 200
    assert (await api.get(f"{SYNAPSE}/v2/users", token=bob["access_token"]))[0] == 403


async def test_guests_and_deactivated_admins_are_refused(api, admin, homeserver):
    await homeserver.users.register("old", "correct horse", admin=True, inhibit_login=True)
    old_token = await login(api, "old")
    assert (await api.post(f"{SYNAPSE}/v1/deactivate/@old:localhost", {}, token=admin))[0] == 200
    status, body = await api.get(f"{SYNAPSE}/v2/users", token=old_token)
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


@pytest.mark.parametrize(("path", "expected"), [("/_ranvier/admin/", 'id="login-form"'),
                                              ("/_ranvier/admin/admin.js", "textContent"),
                                              ("/_ranvier/admin/uPlot.LICENSE", "The MIT License")])
async def test_the_web_admin_files_need_no_token(api, path, expected):
    async with api.session.get(api.base_url + path) as response:
        assert response.status == 200
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert expected in await response.text()


@pytest.mark.parametrize("path", ["/_ranvier/admin/server.py", "/_ranvier/admin/..%2Fserver.py",
                                  "/_ranvier/admin/vendor%2FREADME.md"])
async def test_nothing_else_of_the_package_is_served(api, path):
    async with api.session.get(api.base_url + path) as response:
        assert response.status == 404
