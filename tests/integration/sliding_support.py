"""Helpers for the sliding sync tests: a connection that keeps its `pos`."""

from __future__ import annotations

from typing import Any

SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
#: Required state in the pairs dialect, as Element X asks for it.
PAIRS = [["m.room.name", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"], ["m.room.create", ""]]


class Connection:
    """One sliding sync connection of a user: each response's `pos` goes into the next request."""

    def __init__(self, api, token: str, conn_id: str | None = None) -> None:
        self.api = api
        self.token = token
        self.conn_id = conn_id
        self.pos: str | None = None

    async def sync(self, body: dict[str, Any] | None = None, *, timeout: int | None = None,
                   pos: str | None = None) -> dict[str, Any]:
        status, response = await self.request(body, timeout=timeout, pos=pos)
        assert status == 200, response
        self.pos = response["pos"]
        return response

    async def request(self, body: dict[str, Any] | None = None, *, timeout: int | None = None,
                      pos: str | None = None) -> tuple[int, dict[str, Any]]:
        """The raw answer, without moving `pos` on."""
        body = dict(body or {})
        if self.conn_id is not None:
            body["conn_id"] = self.conn_id
        if pos or self.pos:
            body["pos"] = pos or self.pos
        if timeout is not None:
            body["timeout"] = timeout
        return await self.api.post(SLIDING_SYNC, body, token=self.token)


def a_list(range_: list[int] | None = None, *, limit: int = 1, required_state: Any = None, **filters) -> dict:
    config: dict[str, Any] = {"timeline_limit": limit, "required_state": required_state or {"include": []}}
    if range_ is not None:
        config["range"] = range_
    if filters:
        config["filters"] = filters
    return config


def bodies(room: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in room.get("timeline", []) if e["type"] == "m.room.message"]


def state_keys(room: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room.get("required_state", [])}
