"""Headless Chromium (Debian's `chromium`), driven over the DevTools protocol with
aiohttp's WebSocket client: enough to load a page, run script in it and wait for it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import time
from typing import Any

import aiohttp

BINARY = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-port=0")


class BrowserError(RuntimeError):
    pass


class Page:
    def __init__(self, browser: "Chromium", session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    async def evaluate(self, expression: str) -> Any:
        """The value of a script expression in the page (a promise is awaited)."""
        result = await self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                               "awaitPromise": True}, self.session_id)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} failed in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Evaluate until the expression is truthy (failing while the page is still loading
        counts as not yet); its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except BrowserError as error:
                value, failure = None, error
            else:
                failure = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r}") from failure
            await asyncio.sleep(0.05)


class Chromium:
    """`async with Chromium() as browser: page = await browser.open(url)`; a fresh profile
    each time, and the browser process ended (by its PID) on exit."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}

    async def __aenter__(self) -> "Chromium":
        self.profile = tempfile.mkdtemp(prefix="ranvier-chromium-")
        self.process = await asyncio.create_subprocess_exec(
            BINARY, *FLAGS, f"--user-data-dir={self.profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            port, path = await self._devtools_address()
            self.http = aiohttp.ClientSession()
            self.socket = await self.http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        except BaseException:
            await self._stop_process()
            raise
        self._reader = asyncio.create_task(self._read())
        return self

    async def _devtools_address(self) -> tuple[str, str]:
        active = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}")
            if os.path.exists(active):
                lines = open(active).read().split()
                if len(lines) >= 2:
                    return lines[0], lines[1]
            await asyncio.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port")

    async def _read(self) -> None:
        async for message in self.socket:
            data = message.json()
            future = self._waiting.pop(data.get("id"), None)
            if future is not None and not future.done():
                if "error" in data:
                    future.set_exception(BrowserError(str(data["error"])))
                else:
                    future.set_result(data.get("result", {}))

    async def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        message_id = next(self._ids)
        future = self._waiting[message_id] = asyncio.get_running_loop().create_future()
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        await self.socket.send_json(message)
        return await asyncio.wait_for(future, 30)

    async def open(self, url: str) -> Page:
        target = await self.send("Target.createTarget", {"url": url})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        return Page(self, attached["sessionId"])

    async def _stop_process(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.socket.close()
        await self.http.close()
        await self._stop_process()
