"""A cold initial sync (just after a restart, nothing in memory) reads all its rooms with a
few queries, whatever their number: heads, current state, recent events and memberships
are read for all rooms at once. A counting wrapper on the engine keeps it so."""

from __future__ import annotations

import asyncio

import aiohttp

from ranvier.server import Homeserver
from tests.conftest import Api, with_server

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
    alice, bob = await with_server(server_config, _build)
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


async def test_rooms_whose_state_changed_within_their_timeline_are_read_together(server_config):
    """A full section starts from the state before its timeline: when a member joined
    within the timeline, that is a state group other than the room's current state, and
    those of all rooms are read together, not one query per room."""
    hs = Homeserver(server_config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            alice, bob = await api.register_all("alice", "bob")
            joins = {}

            async def room(n: int) -> None:
                room_id = await api.create_room(alice["access_token"], preset="public_chat", name=f"room {n}")
                for i in range(12):
                    await api.send_text(alice["access_token"], room_id, f"before {i}")
                status, joined = await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
                assert status == 200
                joins[room_id] = joined["room_id"]
                await api.send_text(bob["access_token"], room_id, "hello")

            await asyncio.gather(*(room(n) for n in range(20)))
    finally:
        await hs.stop()
    hs = Homeserver(server_config)
    await hs.start()
    try:
        await asyncio.sleep(0.1)
        counter = QueryCounter(hs.db)
        async with aiohttp.ClientSession() as session:
            body = await Api(session, hs.base_url).sync(alice["access_token"], filter={"room": {"timeline": {"limit": 10}}})
    finally:
        await hs.stop()
    assert counter.count <= 20, f"{counter.count} reads for 20 rooms"
    assert set(body["rooms"]["join"]) == set(joins)
    for section in body["rooms"]["join"].values():
        timeline = section["timeline"]["events"]
        assert section["timeline"]["limited"] and len(timeline) == 10
        assert [e["type"] for e in timeline[-2:]] == ["m.room.member", "m.room.message"]
        state = {(e["type"], e["state_key"]): e for e in section["state"]["events"]}
        # the state before the timeline: the room's, with alice but not yet bob
        assert ("m.room.create", "") in state and ("m.room.power_levels", "") in state
        assert state[("m.room.member", "@alice:localhost")]["content"]["membership"] == "join"
        assert ("m.room.member", "@bob:localhost") not in state
        assert state[("m.room.name", "")]["content"]["name"].startswith("room ")


async def test_a_sync_of_more_rooms_than_the_caches_hold_evicts_nothing(server_config, monkeypatch):
    """With more rooms than the room-heads cache holds, an initial sync keeps the heads it
    loads only while the cache has room (no other user's head is evicted), reads the rest
    for itself alone, and, reading more events than half the event cache, leaves them out
    of it: each sync costs the same few reads and gives the same answer."""
    from ranvier.rooms import store, writer

    alice, bob = await with_server(server_config, _build)
    monkeypatch.setattr(writer, "_HEADS_CACHED", 10)
    monkeypatch.setattr(store, "_EVENT_CACHE_SIZE", 100)
    hs = Homeserver(server_config)
    await hs.start()
    try:
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            bob_rooms = set((await api.sync(bob, filter=LAZY))["rooms"]["join"])
            assert set(hs.rooms.cached_heads(list(bob_rooms))) == bob_rooms
            counter = QueryCounter(hs.db)
            answers, reads = [], []
            for _ in range(3):
                counter.count = 0
                answers.append((await api.sync(alice, filter=LAZY))["rooms"]["join"])
                reads.append(counter.count)
        assert set(hs.rooms.cached_heads(list(bob_rooms))) == bob_rooms  # not evicted by alice's syncs
        assert len(hs.rooms.cached_heads(list(answers[0]))) == 10
        assert max(reads) <= 20, reads
        timeline_ids = [e["event_id"] for section in answers[0].values() for e in section["timeline"]["events"]]
        assert len(timeline_ids) == 300
        messages = [e["event_id"] for room, section in answers[0].items() for e in section["timeline"]["events"]
                    if e["type"] == "m.room.message" and room not in bob_rooms]  # bob's small sync cached his
        assert not [event_id for event_id in messages if hs.rooms.store.cached_event(event_id) is not None]
        for answer in answers[1:]:
            assert {room: [e["event_id"] for e in section["timeline"]["events"]] for room, section in answer.items()} \
                == {room: [e["event_id"] for e in section["timeline"]["events"]] for room, section in answers[0].items()}
            assert {room: section["summary"] for room, section in answer.items()} \
                == {room: section["summary"] for room, section in answers[0].items()}
    finally:
        await hs.stop()


async def test_an_initial_sync_of_many_rooms_with_an_empty_timeline(api):
    """Timeline limit 0: every room's section has its whole state and no events."""
    alice, = await api.register_all("alice")
    rooms = {await api.create_room(alice["access_token"], preset="private_chat", name=f"room {n}") for n in range(3)}
    body = await api.sync(alice["access_token"], filter={"room": {"timeline": {"limit": 0}}})
    assert set(body["rooms"]["join"]) == rooms
    for section in body["rooms"]["join"].values():
        assert section["timeline"]["events"] == [] and section["timeline"]["limited"]
        types = {event["type"] for event in section["state"]["events"]}
        assert {"m.room.create", "m.room.member", "m.room.name", "m.room.power_levels"} <= types


async def test_membership_histories_of_many_rooms_in_one_read(homeserver):
    """The user's membership changes of each room asked for, oldest first, in one read
    (rooms named twice or unknown included), and nothing of another user's."""
    async with aiohttp.ClientSession() as session:
        api = Api(session, homeserver.base_url)
        alice, bob = await api.register_all("alice", "bob")
        rooms = [await api.create_room(alice["access_token"], preset="public_chat") for _ in range(3)]
        for room_id in rooms:
            assert (await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"]))[0] == 200
        assert (await api.post(f"/rooms/{rooms[0]}/leave", {}, token=bob["access_token"]))[0] == 200
        assert (await api.post(f"/rooms/{rooms[0]}/join", {}, token=bob["access_token"]))[0] == 200
    counter = QueryCounter(homeserver.db)
    histories = await homeserver.sync.queries.membership_histories(
        "@bob:localhost", [rooms[0], rooms[1], "!unknown:localhost", rooms[2], rooms[0]])
    assert counter.count == 1
    assert set(histories) == {*rooms, "!unknown:localhost"}
    assert [m for _, m in histories[rooms[0]]] == ["join", "leave", "join"]
    assert [m for _, m in histories[rooms[1]]] == [m for _, m in histories[rooms[2]]] == ["join"]
    assert histories["!unknown:localhost"] == []
    first = [stream for stream, _ in histories[rooms[0]]]
    assert first == sorted(first) and len(set(first)) == 3
