"""Helpers of the federation tests: servers reachable as `127.0.0.1:PORT` (a TLS listener
with a self-signed certificate on that port, a plain one for their clients), waiting for
what crosses from one server to the other."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ranvier.federation.certificates import write_self_signed_pair
from ranvier.server import Homeserver
from tests.conftest import Api, test_config

#: How long a test waits for something to cross from one server to the other.
CROSSING_TIMEOUT_S = 20.0


@dataclass
class Federated:
    hs: Homeserver
    api: Api
    name: str
    tls_port: int

    async def user(self, localpart: str) -> dict:
        return await self.api.register(localpart)


async def another_database(engine: str, tmp_path: Path, request, label: str) -> str:
    """A fresh database on the engine under test, beside the one `database_url` gives."""
    if engine == "sqlite":
        return f"sqlite:{tmp_path / f'{label}.db'}"
    import asyncpg

    base = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return f"{base}/{name}"


def federated_config(data_dir: Path, database_url: str, tls_port: int, **sections):
    """A test server's config with federation on, reachable as 127.0.0.1:tls_port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cert, key = data_dir / "tls.crt", data_dir / "tls.key"
    write_self_signed_pair(str(cert), str(key), ["127.0.0.1"])
    defaults = {
        "server_name": f"127.0.0.1:{tls_port}",
        "listeners": [{"bind": "127.0.0.1", "port": 0}, {"bind": "127.0.0.1", "port": tls_port, "tls": True}],
        "tls": {"certificate_path": str(cert), "private_key_path": str(key)},
        "federation": {"enabled": True, "verify_certificates": False},
        "outbound": {"allowed_networks": ["127.0.0.0/8"], "initial_backoff_ms": 200, "max_backoff_ms": 2000},
    }
    for name, value in sections.items():
        defaults[name] = {**defaults[name], **value} if isinstance(defaults.get(name), dict) else value
    return test_config(data_dir, database_url, **defaults)


async def eventually(check, timeout: float = CROSSING_TIMEOUT_S, interval: float = 0.1):
    """Call `check()` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {check.__name__}")
        await asyncio.sleep(interval)


async def room_bodies(api: Api, token: str, room_id: str, limit: int = 100) -> list[str]:
    """The bodies of the room's messages as /messages gives them, oldest first."""
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "limit": str(limit)}, token=token)
    assert status == 200, page
    return [e["content"]["body"] for e in reversed(page["chunk"])
            if e["type"] == "m.room.message" and "body" in e.get("content", {})]
