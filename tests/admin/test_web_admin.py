"""The web admin in Debian's headless Chromium, driven by playwright-core under node
(tests/js/web_admin.mjs): an admin logs in, the dashboard's graphs fill with live data while
messages are sent, a user is created and deactivated from the users page, and a screenshot
of the dashboard is kept (its path is printed). `scripts/test` installs chromium (apt) and
playwright-core (npm ci in tests/js)."""

from __future__ import annotations

import asyncio

import pytest

from tests.admin.conftest import PASSWORD, SYNAPSE
from tests.js_support import page_script_steps

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_log_in_watch_the_graphs_then_create_and_deactivate_a_user(homeserver, api, admin, tmp_path):
    alice = await api.register("alice")
    room = await api.create_room(alice["access_token"])
    stop = asyncio.Event()

    async def traffic():
        n = 0
        while not stop.is_set():
            await api.send_text(alice["access_token"], room, f"traffic {n}")
            n += 1
            await asyncio.sleep(0.05)

    sending = asyncio.create_task(traffic())
    screenshot = tmp_path / "web-admin-dashboard.png"
    try:
        steps = await page_script_steps("web_admin.mjs", homeserver.base_url, "root", PASSWORD, str(screenshot))
    finally:
        stop.set()
        await sending
    graphs = steps["graphs"]
    assert graphs["canvases"] == 5 and graphs["points"] >= 4
    assert graphs["maxEvents"] > 0 and graphs["maxRequests"] > 0 and graphs["memoryMiB"] > 1
    assert "Made in the browser" in steps["created"]["text"]
    status, user = await api.get(f"{SYNAPSE}/v2/users/@webuser:localhost", token=admin)
    assert status == 200 and user["deactivated"] is True and user["displayname"] is None
    assert screenshot.stat().st_size > 10_000
    print(f"\nweb admin screenshot: {screenshot}")
