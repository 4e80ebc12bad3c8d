"""Helpers of the live tests (a real homeserver)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from nio import AsyncClient, RoomMessageNotice, SyncResponse

from granolin.testing import TestHomeserver

T = TypeVar("T")


async def requires_endpoint(hs: TestHomeserver, method: str, path: str, token: str | None = None) -> None:
    """Skip the test while the server does not serve ``method path`` at all."""
    if not await hs.serves(method, path, token=token):
        who = "the server" if hs.external else "ranvier"
        pytest.skip(f"{who} does not serve {method} {path} yet")


async def eventually(probe: Callable[[], Awaitable[T | None] | T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` (plain or async) until it returns something other than None, or fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def nio_user(hs: TestHomeserver, name: str) -> AsyncClient:
    """A matrix-nio client (an independent Matrix client) for a new account."""
    user = await hs.register_user(name)
    client = AsyncClient(hs.base_url, user.user_id)
    client.restore_login(user.user_id, user.device_id or "NIO", user.access_token)
    return client


async def nio_wait(client: AsyncClient, check: Callable[[SyncResponse], T | None], timeout: float = 15.0, what: str = "event") -> T:
    """Sync ``client`` until ``check`` finds something in a sync answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        response = await client.sync(timeout=300)
        if isinstance(response, SyncResponse):
            found = check(response)
            if found is not None:
                return found
    raise AssertionError(f"timed out waiting for {what}")


def notices_in(room_id: str, sender: str) -> Callable[[SyncResponse], list[str] | None]:
    """A check for nio_wait: the bodies of the notices ``sender`` sent in ``room_id``."""

    def check(response: SyncResponse) -> list[str] | None:
        room = response.rooms.join.get(room_id)
        bodies = [e.body for e in room.timeline.events if isinstance(e, RoomMessageNotice) and e.sender == sender] if room else []
        return bodies or None

    return check
