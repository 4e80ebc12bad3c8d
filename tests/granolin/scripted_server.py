"""A scripted homeserver: a real aiohttp server on 127.0.0.1 playing canned answers.

It exists to test the client's own behaviour against HTTP answers that are hard
to provoke from a real homeserver (429 with retry_after_ms, 401 M_UNKNOWN_TOKEN,
dropped connections). It is not a Matrix implementation: every endpoint answers
what the test scripted, and a few defaults keep the sync loop going.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = tuple[int, dict[str, Any]] | Callable[[web.Request], Awaitable[web.StreamResponse]]
DROP = "drop"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class ScriptedHomeserver:
    """Answers requests from per-endpoint scripts, records every request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[tuple[str, str], deque[Answer | str]] = defaultdict(deque)
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, method: str, path: str, *answers: Answer | str) -> None:
        """Queue answers for ``method path``; DROP closes the connection without answering."""
        self.scripts[(method, path)].extend(answers)

    def syncs(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/_matrix/client/v3/sync"]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedHomeserver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), await request.read(), dict(request.headers))
        )
        queue = self.scripts.get((request.method, request.path))
        if queue:
            answer = queue.popleft()
            if answer == DROP:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if callable(answer):
                return await answer(request)
            status, body = answer  # type: ignore[misc]
            return web.json_response(body, status=status)
        if request.path == "/_matrix/client/v3/sync":
            # Like a quiet real server: hold the long-poll (briefly), answer "nothing new".
            await asyncio.sleep(min(int(request.query.get("timeout", "0")), 200) / 1000)
            return web.json_response({"next_batch": request.query.get("since", "s0")})
        if request.path.startswith("/_matrix/client/v3/rooms/") and ("/send/" in request.path or "/redact/" in request.path):
            return web.json_response({"event_id": f"$sent{len(self.requests)}"})
        return web.json_response({"errcode": "M_UNRECOGNIZED", "error": "not scripted"}, status=404)


def sync_answer(token: str, room_id: str = "!room:scripted", *timeline: dict[str, Any], **sections: Any) -> tuple[int, dict[str, Any]]:
    """A 200 /sync answer with ``timeline`` events in one joined room."""
    body: dict[str, Any] = {"next_batch": token}
    if timeline:
        body["rooms"] = {"join": {room_id: {"timeline": {"events": list(timeline)}}}}
    body.update(sections)
    return 200, body


def text(body: str, sender: str = "@alice:scripted", event_id: str | None = None) -> dict[str, Any]:
    """A text message event as /sync reports it."""
    return {
        "type": "m.room.message",
        "sender": sender,
        "event_id": event_id or f"${abs(hash((body, sender)))}",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
    }
