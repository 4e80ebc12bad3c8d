"""Fixtures of the admin API's tests: a server admin (`admin`: their access token) made the
way an operator makes one (`UserService.register(admin=True)`, as `ranvier user add --admin`
does), and `login`."""

from __future__ import annotations

import pytest

ADMIN_ID = "@root:localhost"
PASSWORD = "correct horse"
SYNAPSE = "/_synapse/admin"


async def login(api, user: str, password: str = PASSWORD) -> str:
    status, body = await api.post("/login", {"type": "m.login.password",
                                             "identifier": {"type": "m.id.user", "user": user}, "password": password})
    assert status == 200, body
    return body["access_token"]


@pytest.fixture
async def admin(homeserver, api) -> str:
    await homeserver.users.register("root", PASSWORD, admin=True, inhibit_login=True)
    return await login(api, "root")
