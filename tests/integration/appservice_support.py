"""What the application service tests share: the bridge's tokens, a free port for the
service to listen on, starting the service's app there, and its registration (exclusive
users `@_bridge_*` and aliases `#_bridge_*`, not rate limited)."""

from __future__ import annotations

import socket

from aiohttp import web

AS_TOKEN, HS_TOKEN = "bridge-as-token", "bridge-hs-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve(app: web.Application, port: int) -> web.AppRunner:
    """Start the service's app on 127.0.0.1:port; its runner, to clean up."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def registration(url: str | None, **changes) -> dict:
    """The bridge's registration file (as YAML data), with `changes` applied."""
    data = {
        "id": "bridge", "url": url, "as_token": AS_TOKEN, "hs_token": HS_TOKEN, "sender_localpart": "bridgebot",
        "rate_limited": False,
        "namespaces": {"users": [{"exclusive": True, "regex": r"@_bridge_.*:localhost"}],
                       "aliases": [{"exclusive": True, "regex": r"#_bridge_.*:localhost"}], "rooms": []},
    }
    return {**data, **changes}
