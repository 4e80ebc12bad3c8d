"""A cold initial sync (just after a restart, nothing in memory) reads all its rooms with a
few queries, whatever their number: heads, current state, recent events and memberships
are read for all rooms at once. A counting wrapper on the engine keeps it so."""

from __future__ import annotations

import asyncio

import aiohttp

from ranvier.server import Homeserver
from tests.conftest import Api

LAZY = {"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}}}


class QueryCounter:
    """Counts the reads a database engine answers (every read goes through `fetchall`)."""

    def __init__(self, db) -> None:
        self.count = 0
        self._fetchall = db.fetchall
        db.fetchall = self._counting

    async def _counting(self, sql, *args):
        self.count += 1
        return await self._fetchall(sql, *args)


async def _build(api: Api) -> tuple[str, str]:
    """alice in 30 rooms (bob in 3 of them), each with a few messages from both."""
    alice, bob = await api.register_all("alice", "bob")

    async def room(n: int) -> None:
        room_id = await api.create_room(alice["access_token"], preset="public_chat", name=f"room {n}")
        if n < 3:
            assert (await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"]))[0] == 200
        for i in range(3):
            await api.send_text(alice["access_token"], room_id, f"message {i}")

    await asyncio.gather(*(room(n) for n in range(30)))
    return alice["access_token"], bob["access_token"]


async def _cold_sync_reads(server_config, token: str, rooms: int) -> int:
    """Restart the server, then count the reads of one initial sync."""
    hs = Homeserver(server_config)
    await hs.start()
    try:
        await asyncio.sleep(0.1)  # the start-up sweeps are done
        counter = QueryCounter(hs.db)
        async with aiohttp.ClientSession() as session:
            body = await Api(session, hs.base_url).sync(token, filter=LAZY)
        assert len(body["rooms"]["join"]) == rooms
        assert all(len(section["timeline"]["events"]) == 10 for section in body["rooms"]["join"].values())
        return counter.count
    finally:
        await hs.stop()


async def test_a_cold_initial_sync_reads_all_rooms_in_a_few_queries(server_config):
    hs = Homeserver(server_config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            alice, bob = await _build(Api(session, hs.base_url))
    finally:
        await hs.stop()
    few = await _cold_sync_reads(server_config, bob, 3)
    many = await _cold_sync_reads(server_config, alice, 30)
    assert many <= 20, f"{many} reads for 30 rooms"
    assert many - few <= 2, f"{few} reads for 3 rooms, {many} for 30: reads grow with rooms"


async def test_unread_counts_of_many_rooms_are_read_in_parts(api, monkeypatch):
    """An initial sync of more rooms than one counting query takes: every room's counts."""
    from ranvier.sync import stream_sections

    monkeypatch.setattr(stream_sections, "_COUNTED_PER_QUERY", 2)
    alice, bob = await api.register_all("alice", "bob")
    rooms = []
    for n in range(5):
        room_id = await api.create_room(alice["access_token"], preset="public_chat")
        assert (await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"]))[0] == 200
        for i in range(n + 1):
            await api.send_text(alice["access_token"], room_id, f"message {i}")
        rooms.append(room_id)
    body = await api.sync(bob["access_token"], filter=LAZY)
    counts = [body["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] for room_id in rooms]
    assert counts == [1, 2, 3, 4, 5]
