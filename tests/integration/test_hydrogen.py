"""The Hydrogen web client (hydrogen-view-sdk from npm, bundled with esbuild, in headless
Chromium) against ranvier: it logs in, uploads its device keys, syncs, lists its rooms,
sends into a plain and an encrypted room, and reads an encrypted message; a matrix-nio
client with encryption is the other party and decrypts what Hydrogen sent. The page is
served from an origin of its own, so every request crosses CORS as in a real deployment.
`scripts/test` installs Chromium (apt) and the npm modules (npm ci in tests/js)."""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.parse

import nio
import pytest
from aiohttp import web

from nio_e2ee import ENCRYPTION, encrypting_client, receive, send, settle
from tests.js_support import JS_DIR, chromium_node, next_record

pytestmark = pytest.mark.interop

PASSWORD = "hydrogen in a browser"
MODULES = os.path.join(JS_DIR, "node_modules")


async def build_page(out_dir) -> None:
    """tests/js/hydrogen bundled into `out_dir` with the assets Hydrogen loads beside it:
    its own (download sandbox, worker, service worker) and Olm's."""
    source = os.path.join(JS_DIR, "hydrogen")
    esbuild = os.path.join(MODULES, ".bin", "esbuild")
    assert os.path.exists(esbuild), "esbuild is needed: run scripts/test (it runs npm ci in tests/js)"
    # Olm's script carries a branch for node that requires node's modules; the browser never takes it.
    process = await asyncio.create_subprocess_exec(
        esbuild, os.path.join(source, "entry.js"), "--bundle", "--format=esm", "--log-level=warning",
        f"--outfile={out_dir / 'app.js'}", "--external:crypto", "--external:path", "--external:fs",
        cwd=JS_DIR, stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    (out_dir / "index.html").write_bytes(open(os.path.join(source, "index.html"), "rb").read())
    sdk = os.path.join(MODULES, "hydrogen-view-sdk")
    os.symlink(os.path.join(sdk, "asset-build", "assets"), out_dir / "assets")
    os.symlink(os.path.join(sdk, "lib-build", "sw.js"), out_dir / "sw.js")
    os.symlink(os.path.join(MODULES, "@matrix-org", "olm"), out_dir / "olm")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_hydrogen_logs_in_and_chats_in_plain_and_encrypted_rooms(homeserver, api, tmp_path):
    node = chromium_node()
    page_dir = tmp_path / "page"
    page_dir.mkdir()
    await build_page(page_dir)
    app = web.Application()
    app.router.add_static("/", page_dir, follow_symlinks=True)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    hydra = await api.register("hydra", PASSWORD)
    olivia = encrypting_client(homeserver, tmp_path, "olivia")
    process = None
    try:
        assert isinstance(await olivia.register("olivia", "olivia's password"), nio.RegisterResponse)
        await settle(olivia)
        plain = await api.create_room(olivia.access_token, name="Plain", invite=[hydra["user_id"]])
        secret = await api.create_room(olivia.access_token, name="Secret", invite=[hydra["user_id"]],
                                       initial_state=[ENCRYPTION])
        for room_id in (plain, secret):
            assert (await api.post(f"/join/{room_id}", {}, token=hydra["access_token"]))[0] == 200
        query = urllib.parse.urlencode({"hs": homeserver.base_url, "user": "hydra", "password": PASSWORD,
                                        "plain_room": plain, "encrypted_room": secret,
                                        "expect": "secret for hydrogen"})
        process = await asyncio.create_subprocess_exec(
            node, os.path.join(JS_DIR, "hydrogen.mjs"), f"http://127.0.0.1:{port}/index.html?{query}",
            cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

        ready = await next_record(process, lambda r: r.get("step") == "ready", timeout=60)
        assert ready["userId"] == hydra["user_id"]
        assert sorted(ready["rooms"]) == sorted([[plain, "Plain", False], [secret, "Secret", True]])

        # What Hydrogen sent: the plain message as it is, the other one only as Megolm ciphertext
        # that olivia's device can decrypt because Hydrogen shared the room key with it.
        received = await receive(olivia, secret, "secret from hydrogen")
        assert received.decrypted and received.sender == hydra["user_id"]
        status, page = await api.get(f"/rooms/{plain}/messages", params={"dir": "b", "limit": "5"},
                                     token=olivia.access_token)
        assert status == 200
        assert "hello from hydrogen" in [e["content"].get("body") for e in page["chunk"]]

        # And the other way: olivia's encrypted message, which Hydrogen decrypts.
        await send(olivia, secret, "secret for hydrogen")
        read = await next_record(process, lambda r: r.get("step") == "read", timeout=60)
        assert read["sender"] == olivia.user_id
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await olivia.close()
        await runner.cleanup()
