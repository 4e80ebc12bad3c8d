"""Helpers of the federation tests: servers reachable as `127.0.0.1:PORT` (a TLS listener
with a self-signed certificate on that port, a plain one for their clients), waiting for
what crosses from one server to the other."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ranvier.federation.certificates import write_self_signed_pair
from ranvier.federation.client import FederationError
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


async def chat_both_ways(first: Federated, first_user: dict, second: Federated, second_user: dict,
                         room_id: str) -> None:
    """`first_user` writes in the room, `second_user` answers once their server shows that
    message (sent before, the two would be concurrent: a fork whose order is the servers'
    choice), and both servers end up showing the two messages in that order."""
    hello, answer = f"hello from {first.name}", f"hello from {second.name}"
    await first.api.send_text(first_user["access_token"], room_id, hello)

    async def second_sees_first():
        return hello in await room_bodies(second.api, second_user["access_token"], room_id)

    await eventually(second_sees_first)
    await second.api.send_text(second_user["access_token"], room_id, answer)

    async def both_see_both():
        on_first = await room_bodies(first.api, first_user["access_token"], room_id)
        on_second = await room_bodies(second.api, second_user["access_token"], room_id)
        return answer in on_first and (on_first, on_second)

    on_first, on_second = await eventually(both_see_both)
    assert on_first[-2:] == on_second[-2:] == [hello, answer]


async def bodies_paging_back(api: Api, token: str, room_id: str, page_size: int, pages: int) -> list[str]:
    """The bodies of the room's messages, oldest first, read as a client scrolls back:
    page after page of /messages from the newest (each page may make the server backfill),
    until the start of the room or `pages` pages."""
    seen: list[str] = []
    position = None
    for _ in range(pages):
        params = {"dir": "b", "limit": str(page_size), **({"from": position} if position else {})}
        status, page = await api.get(f"/rooms/{room_id}/messages", params=params, token=token)
        assert status == 200, page
        seen += [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]
        position = page.get("end")
        if position is None:
            break
    return list(reversed(seen))


async def signed(b: Federated, a: Federated, method: str, path: str, body=None, query=None):
    """b's signed request to a: (status, answer)."""
    try:
        return 200, await b.hs.federation.client.request(method, a.name, path, body=body, query=query)
    except FederationError as exc:
        return exc.status, exc.body


async def new_room(api: Api, token: str, name: str, *, space: bool = False, preset: str = "public_chat") -> str:
    """A named room (a space with `space`) made with `preset`; its ID."""
    body = {"name": name, "preset": preset, **({"creation_content": {"type": "m.space"}} if space else {})}
    return await api.create_room(token, **body)


async def link_child(api: Api, token: str, parent: str, child: str, via: list[str], **content) -> None:
    """The m.space.child event of `child` in the space `parent`."""
    status, body = await api.put(f"/rooms/{quote(parent)}/state/m.space.child/{quote(child)}",
                                 {"via": via, **content}, token=token)
    assert status == 200, body


async def hierarchy_names(api: Api, token: str, room_id: str, **params) -> list[str]:
    """The names of the rooms of every page of the space's hierarchy, as the client API gives it."""
    names, query = [], {key: str(value).lower() for key, value in params.items()}
    while True:
        status, body = await api.get(f"/_matrix/client/v1/rooms/{quote(room_id)}/hierarchy", token=token,
                                     params=query)
        assert status == 200, body
        names += [room.get("name") for room in body["rooms"]]
        if "next_batch" not in body:
            return names
        query["from"] = body["next_batch"]
