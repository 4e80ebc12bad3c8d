"""synadm, the admin command line for Synapse's admin API (from PyPI, in its own venv made
by scripts/test), configured non-interactively against a ranvier started here: it lists,
creates, modifies and deactivates users, and lists rooms."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import yaml

from tests.admin.conftest import SYNAPSE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNADM = os.path.join(ROOT, ".venv-synadm", "bin", "synadm")

pytestmark = pytest.mark.interop


@pytest.fixture
def synadm(homeserver, admin, tmp_path):
    assert os.path.exists(SYNADM), "synadm is needed: run scripts/test (it makes .venv-synadm)"
    config = tmp_path / "synadm.yaml"
    config.write_text(yaml.safe_dump({
        "user": "root", "token": admin, "protocol": "http", "base_url": homeserver.base_url,
        "admin_path": "/_synapse/admin", "matrix_path": "/_matrix", "format": "json", "timeout": 30,
        "server_discovery": "well-known", "homeserver": "localhost", "ssl_verify": False,
    }))

    async def run(*args: str, expect_404: bool = False):
        """synadm's output; any answer but 2xx is a failure (a 404 only where one is expected)."""
        process = await asyncio.create_subprocess_exec(
            SYNADM, "--batch", "-c", str(config), "-o", "json", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "HOME": str(tmp_path)},
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, (args, out.decode(), err.decode())
        warnings = [line for line in err.decode().splitlines() if "returned status code" in line]
        assert warnings == (["WARNING Synapse returned status code 404"] if expect_404 else []), (args, warnings)
        return out.decode()

    return run


def last_json(output: str):
    """The JSON document synadm printed last (it may print notes before it)."""
    start = max(output.rfind("\n{"), output.rfind("\n["))
    return json.loads(output[start + 1:] if start >= 0 else output)


async def test_synadm_lists_creates_modifies_and_deactivates_users_and_lists_rooms(synadm, api, admin):
    bob = await api.register("bob")
    room = await api.create_room(bob["access_token"], name="Where synadm looks")
    listed = last_json(await synadm("user", "list"))
    assert [user["name"] for user in listed["users"]] == ["@bob:localhost", "@root:localhost"]
    assert listed["total"] == 2

    # synadm shows the account before creating it: that lookup is the expected 404
    await synadm("user", "modify", "carol", "--password", "a synadm password", "--display-name", "Carol",
                 expect_404=True)
    status, carol = await api.get(f"{SYNAPSE}/v2/users/@carol:localhost", token=admin)
    assert status == 200 and carol["displayname"] == "Carol" and carol["admin"] is False
    assert (await api.post("/login", {"type": "m.login.password", "user": "carol",
                            "password": "a synadm password"}))[0] == 200

    await synadm("user", "modify", "carol", "--display-name", "Carol C", "--admin")
    status, carol = await api.get(f"{SYNAPSE}/v2/users/@carol:localhost", token=admin)
    assert carol["displayname"] == "Carol C" and carol["admin"] is True

    details = last_json(await synadm("user", "details", "carol"))
    assert details["name"] == "@carol:localhost" and details["deactivated"] is False

    deactivated = last_json(await synadm("user", "deactivate", "bob"))
    assert deactivated == {"id_server_unbind_result": "success"}
    status, body = await api.get(f"{SYNAPSE}/v2/users/@bob:localhost", token=admin)
    assert body["deactivated"] is True
    after = last_json(await synadm("user", "list"))
    assert "@bob:localhost" not in [user["name"] for user in after["users"]]
    with_deactivated = last_json(await synadm("user", "list", "--deactivated"))
    assert "@bob:localhost" in [user["name"] for user in with_deactivated["users"]]

    rooms = last_json(await synadm("room", "list"))
    assert rooms["total_rooms"] == 1
    assert rooms["rooms"][0]["room_id"] == room and rooms["rooms"][0]["name"] == "Where synadm looks"
    found = last_json(await synadm("room", "list", "--name", "synadm"))
    assert [r["room_id"] for r in found["rooms"]] == [room]
