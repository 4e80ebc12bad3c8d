"""The load generator: the same client-server API calls against every server.

Every loop is bounded in count and in time, and only ever talks to the server's loopback URL.
A server that answers 404, 405 or M_UNRECOGNIZED for an endpoint a scenario needs raises
NotServed; any other error raises, and the scenario is reported with the reason.
"""

import asyncio
import itertools
import os
import random
import time
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import orjson
from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from measure import cpu_seconds, median, percentile, reset_peak_rss, status_bytes
from poller import Closed, SyncPoller

PASSWORD = "bench-password-1"
TXN = itertools.count()


@dataclass(frozen=True)
class Counts:
    """How much load each scenario applies; --quick swaps in smaller numbers."""

    senders: int = 16
    #: The senders of the shared-room scenario: enough that a room's writer always has a queue.
    shared_senders: int = 64
    messages_per_sender: int = 1000
    send_seconds: float = 15
    receivers: int = 50
    delivery_messages: int = 250
    delivery_interval: float = 0.020
    sustained_messages: int = 50
    sustained_interval: float = 0.200
    history_rooms: int = 100
    history_messages: int = 20
    initial_syncs: int = 5
    many_rooms: int = 1000
    huge_rooms: int = 10_000
    #: Building 10,000 rooms takes ranvier a minute or two, Synapse far longer: a server
    #: that has not built them within this time is reported as not measured.
    huge_build_seconds: float = 900
    fanout_pollers: tuple[int, ...] = (200, 500, 1000)
    fanout_messages: int = 250
    fanout_interval: float = 0.020
    #: The whole fan-out scenario (registering, joining and the three steps); a step not
    #: reached in time is reported as not measured, with the reason.
    fanout_seconds: float = 900
    incremental_syncs: int = 50
    deep_history_small: int = 1_000
    deep_history_large: int = 100_000
    deep_history_fill_seconds: float = 140
    sliding_rooms: int = 1_000
    sliding_history: int = 5_000
    #: Making a thousand rooms takes Synapse minutes on a busy machine.
    sliding_seconds: float = 900
    push_storage_messages: int = 2000
    index_cost_pairs: int = 3
    index_cost_messages: int = 2000
    index_cost_seconds: float = 4
    search_rooms: int = 100
    search_step1: int = 1_000
    search_step2: int = 10_000
    search_step3: int = 100_000
    search_fill_seconds: float = 200
    search_repeats: int = 10
    media_files: int = 16
    media_kib: int = 1024
    big_upload_mib: int = 50
    push_members: int = 1000
    push_messages: int = 200
    key_users: int = 1000
    claim_devices: int = 100
    fanout_devices: int = 1000
    key_requests: int = 20
    scenario_seconds: float = 300

    @property
    def delivery_target(self):
        return 1 / self.delivery_interval

    @property
    def sustained_target(self):
        return 1 / self.sustained_interval

    @property
    def fanout_target(self):
        return 1 / self.fanout_interval

    def labels(self):
        """The values the table's labels are formatted with."""
        return {**self.__dict__, "delivery_target": self.delivery_target, "sustained_target": self.sustained_target,
                "fanout_target": self.fanout_target, "fanout": dict(zip(("small", "medium", "large"),
                                                                         self.fanout_pollers))}


FULL = Counts()
QUICK = Counts(
    messages_per_sender=100,
    send_seconds=3,
    receivers=20,
    delivery_messages=50,
    sustained_messages=15,
    history_rooms=20,
    many_rooms=100,
    huge_rooms=1_000,
    huge_build_seconds=300,
    fanout_pollers=(50, 100, 200),
    fanout_messages=50,
    fanout_seconds=300,
    initial_syncs=3,
    incremental_syncs=20,
    deep_history_small=200,
    deep_history_large=5_000,
    deep_history_fill_seconds=60,
    sliding_rooms=200,
    sliding_history=1_000,
    sliding_seconds=300,
    push_storage_messages=300,
    index_cost_pairs=2,
    index_cost_messages=300,
    index_cost_seconds=2,
    search_rooms=20,
    search_step1=200,
    search_step2=1_000,
    search_step3=5_000,
    search_fill_seconds=60,
    search_repeats=5,
    media_files=4,
    big_upload_mib=10,
    push_members=100,
    push_messages=50,
    key_users=100,
    claim_devices=20,
    fanout_devices=100,
    key_requests=5,
    scenario_seconds=120,
)


class NotServed(Exception):
    """The server says it has no such endpoint yet."""


class Failed(Exception):
    """The server answered, but not as the spec says; the scenario's figures would be wrong."""


class Partial(dict):
    """A scenario's figures when some could not be measured (`reason` says which and why):
    the table shows the others, and a footnote instead of the missing ones."""

    def __init__(self, metrics, reason):
        super().__init__(metrics)
        self.reason = reason


class Api:
    """A thin client: JSON in and out, and errors turned into NotServed or Failed with the
    endpoint's name, so the table can say what is missing."""

    def __init__(self, session, base_url):
        self.session = session
        self.base = base_url

    async def call(self, endpoint, method, path, token=None, body=None, data=None,
                   params=None, content_type=None, ok=(200,), raw=False):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = orjson.dumps(body)
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(
                method, self.base + path, data=data, params=params, headers=headers
            ) as resp:
                status, payload = resp.status, await resp.read()
        except (aiohttp.ClientError, OSError) as e:
            raise Failed(f"{endpoint}: {type(e).__name__}: {e}") from None
        if status in ok:
            return payload if raw else _json(payload)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        doc = doc if isinstance(doc, dict) else {}
        reason = f"{endpoint} → {status} {doc.get('errcode', '')}".rstrip()
        if status in (404, 405) or doc.get("errcode") == "M_UNRECOGNIZED":
            raise NotServed(reason)
        raise Failed(f"{reason} {doc.get('error', '')}".rstrip())


def _json(payload):
    try:
        return orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        raise Failed(f"answer is not JSON: {payload[:80]!r}") from None


def first_error(group):
    """The first failure inside a TaskGroup's exception group, to be raised as itself."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


async def together(*coros):
    """Runs coroutines concurrently; the first failure cancels the others (no stray load
    keeps running) and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as failure:
        raise first_error(failure) from None
    return [t.result() for t in tasks]


async def bounded(limit, coros):
    """together(), but at most `limit` at a time: setup work should not become a load test."""
    gate = asyncio.Semaphore(limit)

    async def one(coro):
        try:
            async with gate:
                return await coro
        finally:
            coro.close()  # a coroutine cancelled before it started must not warn

    return await together(*(one(c) for c in coros))


@dataclass
class User:
    user_id: str
    token: str


class Bench:
    """One server under test: its API, its users, and its processes (`pids()` with its
    PostgreSQL cluster, whose CPU counts as its own; `own_pids()` without)."""

    def __init__(self, api, counts, server):
        self.api = api
        self.counts = counts
        self.server = server
        self.pool = []
        self.names = itertools.count()
        self.history = None
        self.key_devices = None

    async def restart(self):
        """Restarts the server process (see `Server.restart`); a fresh client session, since
        the old one's pooled connections went with the process."""
        await asyncio.to_thread(self.server.restart)
        old = self.api.session
        self.api.session = aiohttp.ClientSession(timeout=old.timeout, connector=aiohttp.TCPConnector(limit=256))
        await old.close()

    async def users(self, n):
        """The first n users of a pool shared by the scenarios: registration is not measured."""
        missing = n - len(self.pool)
        if missing > 0:
            self.pool += await bounded(8, (self.register() for _ in range(missing)))
        return self.pool[:n]

    async def register(self):
        """Registers through user-interactive auth: ask, read the session, answer m.login.dummy."""
        body = {"username": f"bench{next(self.names)}", "password": PASSWORD,
                "initial_device_display_name": "bench"}
        url = "/_matrix/client/v3/register"
        doc = await self.api.call("POST /register", "POST", url, body=body, ok=(200, 401))
        if "access_token" not in doc:
            stages = {s for flow in doc.get("flows", []) for s in flow.get("stages", [])}
            if "m.login.dummy" not in stages:
                raise NotServed(f"POST /register offers no m.login.dummy flow: {sorted(stages)}")
            body["auth"] = {"type": "m.login.dummy", "session": doc.get("session")}
            doc = await self.api.call("POST /register", "POST", url, body=body)
        return User(doc["user_id"], doc["access_token"])

    async def create_room(self, user, preset="public_chat"):
        doc = await self.api.call("POST /createRoom", "POST", "/_matrix/client/v3/createRoom",
                                  user.token, body={"preset": preset})
        return doc["room_id"]

    async def join(self, user, room):
        await self.api.call("POST /join/{roomId}", "POST", f"/_matrix/client/v3/join/{quote(room)}",
                            user.token, body={})

    async def send(self, user, room, content, event_type="m.room.message"):
        path = f"/_matrix/client/v3/rooms/{quote(room)}/send/{event_type}/t{next(TXN)}"
        doc = await self.api.call("PUT /rooms/{roomId}/send/{eventType}/{txnId}", "PUT", path,
                                  user.token, body=content)
        return doc["event_id"]

    async def sync(self, user, since=None, sync_filter=None, timeout=0):
        params = {"timeout": str(timeout)}
        if since:
            params["since"] = since
        if sync_filter is not None:
            params["filter"] = orjson.dumps(sync_filter).decode()
        return await self.api.call("GET /sync", "GET", "/_matrix/client/v3/sync", user.token,
                                   params=params)

    async def room_with_members(self, n):
        """A public room created by the first of n users and joined by the others."""
        users = await self.users(n)
        room = await self.create_room(users[0])
        await bounded(8, (self.join(u, room) for u in users[1:]))
        return users, room

    async def history_user(self):
        """A user in history_rooms rooms of history_messages messages each, built once per
        server run and shared by the sync scenarios; building it is not measured."""
        if self.history is None:
            c = self.counts
            user = await self.register()
            rooms = await bounded(4, (self.create_room(user, "private_chat")
                                      for _ in range(c.history_rooms)))

            async def fill(room):
                for i in range(c.history_messages):
                    await self.send(user, room, message(f"history {i}"))

            await bounded(8, (fill(r) for r in rooms))
            self.history = (user, rooms)
        return self.history


def message(body, **extra):
    return {"msgtype": "m.text", "body": body, **extra}


def timeline(doc, room):
    return doc.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])


def gapped(doc, room):
    """Whether the answer's timeline of the room is limited: events before it were skipped
    (a client fills the gap from /messages), so a receiver that fell far behind misses
    them here without the server having lost anything."""
    return doc.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("limited", False)


LAZY = {"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}}}
#: What a long-poller of the delivery scenarios asks for: the room's timeline, nothing else.
QUIET = {"room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": True}},
         "presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}}


class Meter:
    """Wall time, this process's CPU and the server's CPU over one measured stretch."""

    def __init__(self, bench):
        self.bench = bench

    def __enter__(self):
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.server = cpu_seconds(self.bench.server.pids())
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.own = time.process_time() - self.own
        self.server = cpu_seconds(self.bench.server.pids()) - self.server

    @property
    def loadgen_cpu_pct(self):
        return 100 * self.own / self.wall


async def send_load(bench, shared):
    """Closed loop: each sender sends its next message when the previous one is answered,
    until it has sent messages_per_sender or send_seconds have passed, whichever comes first:
    a fast server gets enough messages to be measured, a slow one a bounded time."""
    c = bench.counts
    if shared:
        users, room = await bench.room_with_members(c.shared_senders)
        rooms = [room] * c.shared_senders
    else:
        users = await bench.users(c.senders)
        rooms = await bounded(4, (bench.create_room(u) for u in users))
    await together(*(bench.send(u, r, message("warm-up")) for u, r in zip(users, rooms)))
    latencies = []
    deadline = time.monotonic() + c.send_seconds

    async def sender(user, room):
        for i in range(c.messages_per_sender):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            await bench.send(user, room, message(f"load {i}"))
            latencies.append(time.perf_counter() - start)

    with Meter(bench) as m:
        await together(*(sender(u, r) for u, r in zip(users, rooms)))
    return {
        "rate": len(latencies) / m.wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_ms_per_event": m.server / len(latencies) * 1000,
        "loadgen_cpu_pct": m.loadgen_cpu_pct,
    }


async def send_own(bench):
    return await send_load(bench, shared=False)


async def send_shared(bench):
    return await send_load(bench, shared=True)


async def delivery(bench):
    """Delivery at the target rate of delivery_interval: more than some servers can take, so
    its latency means something only next to the send rate the server reached."""
    return await delivery_at(bench, bench.counts.delivery_interval, bench.counts.delivery_messages)


async def delivery_sustained(bench):
    """Delivery at a rate every server sustains (sustained_interval): the latency of a
    server that keeps up, on its own."""
    return await delivery_at(bench, bench.counts.sustained_interval, bench.counts.sustained_messages)


async def delivery_at(bench, interval, messages):
    """Open loop: one message every `interval` whatever the answers, and the time from
    issuing each send until each long-polling receiver has it."""
    c = bench.counts
    users, room = await bench.room_with_members(c.receivers + 1)
    sender, receivers = users[0], users[1:]
    starts = await bounded(8, (bench.sync(u, sync_filter=QUIET) for u in receivers))
    sent_at, done_at, latencies, received = {}, [], [], [0] * len(receivers)
    gaps = itertools.count()

    async def receive(i, user, since):
        seen = set()
        while len(seen) < messages:
            doc = await bench.sync(user, since, QUIET, timeout=30000)
            now = time.perf_counter()
            since = doc["next_batch"]
            if gapped(doc, room):
                next(gaps)
            for event in timeline(doc, room):
                seq = event.get("content", {}).get("seq")
                if seq in sent_at and seq not in seen:
                    seen.add(seq)
                    latencies.append(now - sent_at[seq])
            received[i] = len(seen)

    async def send(seq):
        async with in_flight:
            sent_at[seq] = time.perf_counter()
            await bench.send(sender, room, message(f"delivery {seq}", seq=seq))
            done_at.append(time.perf_counter())

    tasks = [asyncio.create_task(receive(i, u, s["next_batch"]))
             for i, (u, s) in enumerate(zip(receivers, starts))]
    in_flight = asyncio.Semaphore(64)
    try:
        await asyncio.sleep(0.5)  # let every receiver park its long poll first
        with Meter(bench) as m:
            begin = time.perf_counter()
            try:
                async with asyncio.TaskGroup() as sends:
                    for seq in range(messages):
                        due = begin + seq * interval
                        await asyncio.sleep(max(0.0, due - time.perf_counter()))
                        sends.create_task(send(seq))
            except BaseExceptionGroup as failure:
                raise first_error(failure) from None
        await asyncio.wait(tasks, timeout=5)
    finally:
        for t in tasks:
            t.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    done_at.sort()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "lost": messages * len(receivers) - sum(received),
        "gapped": next(gaps),
        # answered sends per second: a server that queues them falls below the target
        "rate_reached": (len(done_at) - 1) / (done_at[-1] - done_at[0]),
        "loadgen_cpu_pct": m.loadgen_cpu_pct,
    }


async def delivery_fanout(bench):
    """Delivery to many long-pollers in one room: for each count of fanout_pollers, that
    many members long-poll /sync while one message is sent every fanout_interval (open
    loop); delivery p50/p99, messages lost, the send rate reached, and the CPU of the server
    and of this load generator over the stretch (the generator shares the machine's cores:
    its CPU says when it, not the server, is the limit), and the server's CPU per /sync
    answered (the send's share included). The room grows from one step to the
    next; a step not reached within fanout_seconds is reported as not measured."""
    c = bench.counts
    deadline = time.monotonic() + c.fanout_seconds
    creator = (await bench.users(1))[0]
    room = await bench.create_room(creator)
    joined, metrics = 1, {}
    for pollers in c.fanout_pollers:
        try:
            users = await asyncio.wait_for(bench.users(pollers + 1), deadline - time.monotonic())
            await asyncio.wait_for(bounded(8, (bench.join(u, room) for u in users[joined:])),
                                   deadline - time.monotonic())
            joined = len(users)
            step = await asyncio.wait_for(fanout_step(bench, users[0], room, users[1:]), deadline - time.monotonic())
        except asyncio.TimeoutError:
            return Partial(metrics, f"not measured from {pollers:,} long-pollers on: the scenario's "
                                    f"{c.fanout_seconds:.0f} s ran out (room of {joined:,} members)")
        except (Failed, NotServed) as e:
            return Partial(metrics, f"not measured from {pollers:,} long-pollers on: {e}")
        metrics.update({f"{key}_{pollers}": value for key, value in step.items()})
    return metrics


async def fanout_step(bench, sender, room, receivers):
    """One step of delivery_fanout. The receivers use a client as cheap as can be (see
    poller.py): at a thousand of them, an aiohttp client would measure itself."""
    c = bench.counts
    sent_at, done_at, latencies, received = {}, [], [], [0] * len(receivers)
    answers, gaps = itertools.count(), itertools.count()
    quiet = orjson.dumps(QUIET).decode()
    pollers = [SyncPoller(bench.api.base, user.token, quiet) for user in receivers]
    try:

        async def sync(i, since, timeout_ms):
            try:
                status, body = await pollers[i].sync(since, timeout_ms)
            except (Closed, OSError) as e:
                raise Failed(f"GET /sync: {type(e).__name__}: {e}") from None
            if status != 200:
                raise Failed(f"GET /sync → {status} {body[:80]!r}")
            return orjson.loads(body)

        starts = await bounded(16, (sync(i, None, 0) for i in range(len(receivers))))

        async def receive(i, since):
            seen = 0
            while seen < c.fanout_messages:
                doc = await sync(i, since, 30000)
                now = time.perf_counter()
                next(answers)
                since = doc["next_batch"]
                if gapped(doc, room):
                    next(gaps)
                for event in timeline(doc, room):
                    seq = event.get("content", {}).get("seq")
                    if seq in sent_at:
                        seen += 1
                        latencies.append(now - sent_at[seq])
                received[i] = seen

        async def send(seq):
            async with in_flight:
                sent_at[seq] = time.perf_counter()
                await bench.send(sender, room, message(f"fan-out {seq}", seq=seq))
                done_at.append(time.perf_counter())

        tasks = [asyncio.create_task(receive(i, start["next_batch"])) for i, start in enumerate(starts)]
        in_flight = asyncio.Semaphore(64)
        try:
            await asyncio.sleep(1.0)  # let every receiver park its long poll first
            with Meter(bench) as m:
                begin = time.perf_counter()
                try:
                    async with asyncio.TaskGroup() as sends:
                        for seq in range(c.fanout_messages):
                            await asyncio.sleep(max(0.0, begin + seq * c.fanout_interval - time.perf_counter()))
                            sends.create_task(send(seq))
                except BaseExceptionGroup as failure:
                    raise first_error(failure) from None
                await asyncio.wait(tasks, timeout=10)
        finally:
            for t in tasks:
                t.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for poller in pollers:
            poller.close()
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    done_at.sort()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "lost": c.fanout_messages * len(receivers) - sum(received),
        "gapped": next(gaps),
        "rate_reached": (len(done_at) - 1) / (done_at[-1] - done_at[0]),
        "server_cpu_pct": 100 * m.server / m.wall,
        "server_ms_per_sync": 1000 * m.server / max(next(answers), 1),
        "loadgen_cpu_pct": m.loadgen_cpu_pct,
    }


async def cold_and_warm_syncs(bench, user, rooms):
    """Restart the server, then time its first initial sync of `user` (cold: nothing in the
    process's memory, the database files in the OS cache) and the median of the next ones
    (warm). Each request's filter differs slightly so that no server can answer from a
    response cache."""
    await bench.restart()
    times = []
    for i in range(bench.counts.initial_syncs):
        sync_filter = {**LAZY, "account_data": {"not_types": [f"bench.run.{i}"]}}
        start = time.perf_counter()
        doc = await bench.sync(user, sync_filter=sync_filter)
        times.append(time.perf_counter() - start)
        joined = len(doc.get("rooms", {}).get("join", {}))
        if joined != len(rooms):
            raise Failed(f"initial sync returned {joined} of {len(rooms)} rooms")
    return {"cold_ms": times[0] * 1000, "warm_ms": median(times[1:] or times) * 1000}


async def initial_sync(bench):
    """A user in history_rooms rooms of history_messages messages each, cold and warm."""
    return await cold_and_warm_syncs(bench, *await bench.history_user())


async def initial_sync_many(bench):
    """A user in many_rooms rooms of one message each, cold and warm: a cold sync that reads
    room by room costs many_rooms times its reads, one that batches them does not."""
    c = bench.counts
    user = await bench.register()
    rooms = await bounded(8, (bench.create_room(user, "private_chat") for _ in range(c.many_rooms)))
    await bounded(8, (bench.send(user, room, message("only message")) for room in rooms))
    return await cold_and_warm_syncs(bench, user, rooms)


async def initial_sync_huge(bench):
    """The same for huge_rooms rooms of one message each: what grows faster than the rooms
    shows ten times more clearly. Building them is bounded by huge_build_seconds; a server
    that has not built them by then is reported with the count it reached, not measured."""
    c = bench.counts
    user = await bench.register()
    rooms = []
    deadline = time.monotonic() + c.huge_build_seconds
    started = itertools.count()

    async def build():
        while time.monotonic() < deadline and next(started) < c.huge_rooms:
            room = await bench.create_room(user, "private_chat")
            await bench.send(user, room, message("only message"))
            rooms.append(room)

    await together(*(build() for _ in range(8)))
    if len(rooms) < c.huge_rooms:
        return Partial({"built": len(rooms)}, f"not measured: {len(rooms):,} of {c.huge_rooms:,} rooms built "
                                              f"in {c.huge_build_seconds:.0f} s")
    return await cold_and_warm_syncs(bench, user, rooms)


async def incremental_latencies(bench, user, rooms):
    """Send one message, then time the sync that returns it; repeated over the user's rooms."""
    since = (await bench.sync(user, sync_filter=LAZY))["next_batch"]
    times = []
    for i in range(bench.counts.incremental_syncs):
        room = rooms[i % len(rooms)]
        event_id = await bench.send(user, room, message(f"incremental {i}"))
        start = time.perf_counter()
        doc = await bench.sync(user, since, LAZY)
        times.append(time.perf_counter() - start)
        if not any(e.get("event_id") == event_id for e in timeline(doc, room)):
            raise Failed("incremental sync did not return the message sent just before")
        since = doc["next_batch"]
    return percentile(times, 50) * 1000, percentile(times, 99) * 1000


async def incremental_sync(bench):
    """Its cost should follow what changed, not how much history the user has."""
    small_user = await bench.register()
    small_room = await bench.create_room(small_user)
    for i in range(5):
        await bench.send(small_user, small_room, message(f"small {i}"))
    small = await incremental_latencies(bench, small_user, [small_room])
    large = await incremental_latencies(bench, *await bench.history_user())
    return {"small_p50_ms": small[0], "small_p99_ms": small[1],
            "large_p50_ms": large[0], "large_p99_ms": large[1]}


async def deep_history(bench):
    """Incremental sync for a user in `senders` busy rooms, once they hold deep_history_small
    events and again at deep_history_large: the cost should not grow with what was said before.
    Filling is not measured; a server too slow to fill within deep_history_fill_seconds fails."""
    c = bench.counts
    senders = await bench.users(c.senders)
    reader = await bench.register()
    rooms = await bounded(4, (bench.create_room(s) for s in senders))
    await bounded(8, (bench.join(reader, r) for r in rooms))
    sent = 0

    async def fill_to(total):
        deadline = time.monotonic() + c.deep_history_fill_seconds

        async def sender(user, room):
            nonlocal sent
            while sent < total:
                if time.monotonic() > deadline:
                    raise Failed(f"filled {sent} of {total} events in {c.deep_history_fill_seconds:.0f} s")
                sent += 1
                await bench.send(user, room, message(f"history {sent}"))

        await together(*(sender(u, r) for u, r in zip(senders, rooms)))

    await fill_to(c.deep_history_small)
    small = await incremental_latencies(bench, reader, rooms)
    await fill_to(c.deep_history_large)
    large = await incremental_latencies(bench, reader, rooms)
    return {"small_p50_ms": small[0], "small_p99_ms": small[1],
            "large_p50_ms": large[0], "large_p99_ms": large[1]}


SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
#: The required state Element X (the matrix-rust-sdk) asks for in its room list and subscriptions.
DEFAULT_REQUIRED_STATE = [
    ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.topic", ""], ["m.room.avatar", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""], ["m.room.tombstone", ""],
    ["m.room.create", ""], ["m.room.history_visibility", ""], ["io.element.functional_members", ""],
    ["m.space.parent", "*"], ["m.space.child", "*"], ["m.beacon_info", "*"],
]
SUBSCRIPTION_REQUIRED_STATE = DEFAULT_REQUIRED_STATE + [["m.room.pinned_events", ""]]


def room_list_request(conn_id, ranges=((0, 19),), subscriptions=()):
    """Element X's room list request: one list ordered by activity with each room's last
    event, opened rooms as subscriptions of 20 events, three extensions."""
    return {
        "conn_id": conn_id,
        "lists": {"all_rooms": {"ranges": [list(r) for r in ranges], "timeline_limit": 1,
                                "required_state": DEFAULT_REQUIRED_STATE, "filters": {}}},
        "room_subscriptions": {room_id: {"timeline_limit": 20, "required_state": SUBSCRIPTION_REQUIRED_STATE}
                               for room_id in subscriptions},
        "extensions": {"account_data": {"enabled": True}, "receipts": {"enabled": True, "rooms": ["*"]},
                       "typing": {"enabled": True}},
    }


async def sliding(bench, user, body, pos=None, timeout=0):
    """One simplified sliding sync request, `pos` and `timeout` in the query as Element X sends them."""
    params = {"timeout": str(timeout)}
    if pos:
        params["pos"] = pos
    return await bench.api.call("POST " + SLIDING_SYNC, "POST", SLIDING_SYNC, user.token, body=body, params=params)


async def sliding_incremental(bench, user):
    """Send one message into one of the 20 rooms on screen (sent on this connection already),
    then time the request that returns it."""
    body = room_list_request("incremental")
    first = await sliding(bench, user, body)
    on_screen, pos = list(first["rooms"]), first["pos"]
    times = []
    for i in range(bench.counts.incremental_syncs):
        room = on_screen[i % len(on_screen)]
        event_id = await bench.send(user, room, message(f"sliding {i}"))
        start = time.perf_counter()
        doc = await sliding(bench, user, body, pos)
        times.append(time.perf_counter() - start)
        if not any(e.get("event_id") == event_id for e in doc.get("rooms", {}).get(room, {}).get("timeline", [])):
            raise Failed("the incremental sliding sync did not return the message sent just before")
        pos = doc["pos"]
    return percentile(times, 50) * 1000, percentile(times, 99) * 1000


async def sliding_sync(bench):
    """Simplified sliding sync for a user in sliding_rooms rooms: the first response of a
    list of range 0–19 (a new connection each time), then an incremental response after one
    new message, again once sliding_history more messages are stored. Building the rooms
    and the history is not measured; filling must finish within deep_history_fill_seconds."""
    c = bench.counts
    user = await bench.register()
    rooms = await bounded(4, (bench.create_room(user, "private_chat") for _ in range(c.sliding_rooms)))
    await bounded(8, (bench.send(user, room, message("hello")) for room in rooms))
    times = []
    for i in range(c.initial_syncs):
        start = time.perf_counter()
        doc = await sliding(bench, user, room_list_request(f"first-{i}"))
        times.append(time.perf_counter() - start)
        count = doc.get("lists", {}).get("all_rooms", {}).get("count")
        if count != len(rooms) or len(doc.get("rooms", {})) != 20:
            raise Failed(f"the first response listed {count} rooms and returned {len(doc.get('rooms', {}))}, "
                         f"not {len(rooms)} and 20")
    shallow = await sliding_incremental(bench, user)
    deadline = time.monotonic() + c.deep_history_fill_seconds
    sent = 0

    async def filler(offset):
        nonlocal sent
        while sent < c.sliding_history:
            if time.monotonic() > deadline:
                raise Failed(f"stored {sent} of {c.sliding_history} more messages in {c.deep_history_fill_seconds:.0f} s")
            sent += 1
            await bench.send(user, rooms[(offset + sent * 7) % len(rooms)], message(f"history {sent}"))

    await together(*(filler(i) for i in range(8)))
    deep = await sliding_incremental(bench, user)
    return {"first_ms": times[0] * 1000, "warm_ms": median(times[1:] or times) * 1000,
            "incremental_p50_ms": shallow[0], "incremental_p99_ms": shallow[1],
            "deep_p50_ms": deep[0], "deep_p99_ms": deep[1]}


async def push_rules(bench):
    """The push rules of a big room: push_members members, each with three rules of their own
    (a keyword to highlight, a muted sender, a muted other room), and one of them sending one
    message at a time. The added time per event is the latency (and server CPU) over the
    same sender's messages in a room of their own."""
    c = bench.counts
    users, room = await bench.room_with_members(c.push_members)
    sender = users[0]
    alone = await bench.create_room(sender)
    elsewhere = await bench.create_room(sender)
    base = "/_matrix/client/v3/pushrules/global"

    async def own_rules(i, user):
        for path, body in ((f"content/keyword{i}", {"pattern": f"keyword{i}", "actions": ["notify", {"set_tweak": "highlight"}]}),
                           (f"sender/{quote('@spammer:localhost')}", {"actions": []}),
                           (f"room/{quote(elsewhere)}", {"actions": []})):
            await bench.api.call("PUT /pushrules/global/{kind}/{ruleId}", "PUT", f"{base}/{path}", user.token,
                                 body=body)

    await bounded(8, (own_rules(i, u) for i, u in enumerate(users[1:])))

    async def timed(target, n):
        latencies = []
        with Meter(bench) as m:
            for i in range(n):
                start = time.perf_counter()
                await bench.send(sender, target, message(f"push {i}"))
                latencies.append(time.perf_counter() - start)
        return percentile(latencies, 50) * 1000, m.server / n * 1000

    await timed(alone, 10)
    await timed(room, 10)
    alone_p50, alone_cpu = await timed(alone, c.push_messages)
    room_p50, room_cpu = await timed(room, c.push_messages)
    return {"alone_p50_ms": alone_p50, "room_p50_ms": room_p50, "added_ms": room_p50 - alone_p50,
            "added_cpu_ms": room_cpu - alone_cpu}


async def index_cost(bench):
    """What the search index adds to a send: the senders of the send scenario, in their own
    rooms, alternately send messages (m.room.message, indexed) and the same content under a
    type no server indexes; the difference of server CPU per event is the index's share."""
    c = bench.counts
    users = await bench.users(c.senders)
    rooms = await bounded(4, (bench.create_room(u) for u in users))

    async def phase(event_type):
        sent = 0
        deadline = time.monotonic() + c.index_cost_seconds

        async def sender(user, room):
            nonlocal sent
            while sent < c.index_cost_messages and time.monotonic() < deadline:
                sent += 1
                await bench.send(user, room, message(f"the index cost {sent} of a message"), event_type)

        with Meter(bench) as m:
            await together(*(sender(u, r) for u, r in zip(users, rooms)))
        return m.server / sent * 1000

    await phase("m.room.message")  # warm-up
    plain, indexed = [], []
    for _ in range(c.index_cost_pairs):
        plain.append(await phase("bench.unindexed"))
        indexed.append(await phase("m.room.message"))
    return {"plain_ms": median(plain), "indexed_ms": median(indexed),
            "added_ms": median([i - p for i, p in zip(indexed, plain)])}


async def push_storage(bench):
    """What each message costs in the tables behind notification counts and /notifications,
    in a room of shared_senders local members: they all send (closed loop) until
    push_storage_messages are stored; the growth of those tables (and indexes) and of the
    whole database, per message."""
    c = bench.counts
    if bench.server.push_table_bytes is None:
        raise NotServed("no database to measure")
    users, room = await bench.room_with_members(c.shared_senders)
    await together(*(bench.send(u, room, message("warm-up")) for u in users))
    before = await asyncio.to_thread(bench.server.push_table_bytes)
    sent = 0

    async def sender(user):
        nonlocal sent
        while sent < c.push_storage_messages:
            sent += 1
            await bench.send(user, room, message(f"what notifying message {sent} costs"))

    await together(*(sender(u) for u in users))
    await asyncio.sleep(1)  # a group commit or a background move of rows may still be landing
    after = await asyncio.to_thread(bench.server.push_table_bytes)
    per_message = (after[0] - before[0]) / sent
    return {"push_bytes_per_message": per_message, "push_mb_per_10k": per_message * 10_000 / 1e6,
            "db_bytes_per_message": (after[1] - before[1]) / sent}


#: Words of the search scenario's messages: a vocabulary drawn with Zipf's law, and two
#: probe words in a known share of messages, searched for.
VOCABULARY = [a + b for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "va", "ze", "bo", "di", "fu", "ge",
                              "hy", "ja") for b in ("rin", "mak", "tel", "sun", "dor", "vel", "pix", "qua", "wen", "yot",
                                                    "zam", "cur", "fen", "gol", "hap", "lim")]
ZIPF = [1 / rank for rank in range(1, len(VOCABULARY) + 1)]
RARE, COMMON = "nebula", "comet"  # in 1 message in 100, and in 1 in 10


def search_text(number):
    chosen = random.Random(number).choices(VOCABULARY, ZIPF, k=4 + number % 13)
    if number % 100 == 0:
        chosen.insert(len(chosen) // 2, RARE)
    if number % 10 == 5:
        chosen.append(COMMON)
    return " ".join(chosen)


async def search(bench):
    """A user's search over search_rooms rooms of their own, once they hold search_step1
    messages, then search_step2, then search_step3: the first page (default limit, count
    included) by rank and by recency for a word in 1 message of 100, and at the last step
    also by rank for a word in 1 of 10. Filling is not measured; a step not filled within
    search_fill_seconds (from the start of filling) is not searched, and the messages
    reached are reported."""
    c = bench.counts
    user = await bench.register()
    rooms = await bounded(4, (bench.create_room(user, "private_chat") for _ in range(c.search_rooms)))
    deadline = time.monotonic() + c.search_fill_seconds
    sent = 0

    async def fill_to(total):
        nonlocal sent

        async def sender(lane):
            nonlocal sent
            while sent < total and time.monotonic() < deadline:
                sent += 1
                await bench.send(user, rooms[(sent + lane) % len(rooms)], message(search_text(sent)))

        await together(*(sender(lane) for lane in range(c.senders)))
        return sent >= total

    async def first_page_ms(term, order):
        body = {"search_categories": {"room_events": {"search_term": term, "order_by": order}}}
        times = []
        for _ in range(c.search_repeats):
            start = time.perf_counter()
            doc = await bench.api.call("POST /search", "POST", "/_matrix/client/v3/search", user.token, body=body)
            times.append(time.perf_counter() - start)
            found = doc.get("search_categories", {}).get("room_events", {}).get("results", [])
            if not found or not all(term in r["result"]["content"]["body"].split() for r in found):
                raise Failed(f"the search for {term!r} ({order}) did not return what it should: {len(found)} results")
        return percentile(times, 50) * 1000

    metrics = {}
    for step, total in enumerate((c.search_step1, c.search_step2, c.search_step3), 1):
        if not await fill_to(total):
            if step == 1:
                raise Failed(f"filled {sent} of {total} messages in {c.search_fill_seconds:.0f} s")
            break
        metrics[f"step{step}_rank_ms"] = await first_page_ms(RARE, "rank")
        metrics[f"step{step}_recent_ms"] = await first_page_ms(RARE, "recent")
    if "step3_rank_ms" in metrics:
        metrics["step3_common_ms"] = await first_page_ms(COMMON, "rank")
    metrics["filled"] = sent
    return metrics


MEDIA_PREFIXES = ("/_matrix/client/v1/media/download/", "/_matrix/media/v3/download/")


async def upload(bench, user, data, filename):
    """Uploads data as one file; returns its server name and media ID."""
    doc = await bench.api.call("POST /_matrix/media/v3/upload", "POST", "/_matrix/media/v3/upload",
                               user.token, data=data, params={"filename": filename},
                               content_type="application/octet-stream")
    return doc["content_uri"].removeprefix("mxc://")


async def upload_peak(bench):
    """One big_upload_mib file uploaded to a server that has done nothing else yet: how far
    it lifts the server's peak resident set above what it held just before."""
    user = (await bench.users(1))[0]
    big = os.urandom(bench.counts.big_upload_mib * 2**20)
    pids = bench.server.own_pids()
    before = status_bytes(pids, "VmRSS")
    reset_peak_rss(pids)
    await upload(bench, user, big, "big.bin")
    return {"peak_above_mib": (status_bytes(pids, "VmHWM") - before) / 2**20}


def huge_png():
    """A palette PNG of 5,700 x 5,700 pixels (just under 32 Mi pixels, the usual limit),
    a few KiB on the wire."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("P", (5700, 5700), 0).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


async def thumbnail_memory(bench):
    """The upload of `huge_png` and one thumbnail of it (some servers render thumbnails at
    upload, others when asked): how far they lift the server's peak resident set above
    what it held before, and what it still holds a second after (summed over the server's
    own processes, a thumbnail worker it keeps for a while included)."""
    user = (await bench.users(1))[0]
    data = huge_png()
    pids = bench.server.own_pids()
    before = status_bytes(pids, "VmRSS")
    reset_peak_rss(pids)
    doc = await bench.api.call("POST /_matrix/media/v3/upload", "POST", "/_matrix/media/v3/upload", user.token,
                               data=data, params={"filename": "huge.png"}, content_type="image/png")
    media_id = doc["content_uri"].removeprefix("mxc://")
    params = {"width": "320", "height": "240", "method": "scale"}
    for prefix in ("/_matrix/client/v1/media/thumbnail/", "/_matrix/media/v3/thumbnail/"):
        try:
            await bench.api.call(f"GET {prefix}{{serverName}}/{{mediaId}}", "GET", prefix + media_id, user.token,
                                 params=params, raw=True)
            break
        except NotServed:
            if prefix.startswith("/_matrix/media"):
                raise
    # Processes the server started for the thumbnail count too (their peak is their whole life).
    peak = status_bytes(sorted(set(pids) | set(bench.server.own_pids())), "VmHWM")
    await asyncio.sleep(1)
    retained = status_bytes(bench.server.own_pids(), "VmRSS")
    return {"peak_above_mib": (peak - before) / 2**20, "retained_mib": (retained - before) / 2**20}


async def media(bench):
    """Upload then download media_files random (incompressible) files, four at a time."""
    c = bench.counts
    user = (await bench.users(1))[0]
    blob = os.urandom(c.media_kib * 1024)

    async def download(media_id, prefix):
        payload = await bench.api.call(f"GET {prefix}{{serverName}}/{{mediaId}}", "GET",
                                       prefix + media_id, user.token, raw=True)
        if len(payload) != len(blob):
            raise Failed(f"download returned {len(payload)} bytes of {len(blob)}")

    with Meter(bench) as up:
        ids = await bounded(4, (upload(bench, user, blob, f"bench{i}.bin") for i in range(c.media_files)))
    prefix = MEDIA_PREFIXES[0]
    try:
        await download(ids[0], prefix)
    except NotServed:
        prefix = MEDIA_PREFIXES[1]  # servers without authenticated media (spec v1.11)
    with Meter(bench) as down:
        await bounded(4, (download(i, prefix) for i in ids))
    mib = c.media_files * c.media_kib / 1024
    return {"upload_mib_s": mib / up.wall, "download_mib_s": mib / down.wall}


@dataclass
class Device:
    user_id: str
    device_id: str
    token: str


def device_keys(device):
    """Identity keys signed by the device's own ed25519 key, as a client makes them."""
    signing_key = generate_signing_key(device.device_id)
    public = encode_base64(get_verify_key(signing_key).encode())
    keys = {"user_id": device.user_id, "device_id": device.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{device.device_id}": public, f"curve25519:{device.device_id}": encode_base64(os.urandom(32))}}
    return sign_json(keys, device.user_id, signing_key), signing_key


async def upload_keys(bench, device, one_time_keys=0):
    keys, signing_key = device_keys(device)
    body = {"device_keys": keys}
    if one_time_keys:
        body["one_time_keys"] = {f"signed_curve25519:k{i}": sign_json({"key": encode_base64(os.urandom(32))},
                                                                       device.user_id, signing_key)
                                 for i in range(one_time_keys)}
    await bench.api.call("POST /keys/upload", "POST", "/_matrix/client/v3/keys/upload", device.token, body=body)


async def key_devices(bench):
    """key_users users with two devices each, all with uploaded identity keys; the first
    claim_devices devices also hold one-time keys for every claim. Built once, not measured."""
    if bench.key_devices is None:
        c = bench.counts
        users = await bench.users(c.key_users)

        async def second_device(user):
            doc = await bench.api.call("POST /login", "POST", "/_matrix/client/v3/login", body={
                "type": "m.login.password", "password": PASSWORD,
                "identifier": {"type": "m.id.user", "user": user.user_id}})
            return Device(user.user_id, doc["device_id"], doc["access_token"])

        async def first_device(user):
            doc = await bench.api.call("GET /account/whoami", "GET", "/_matrix/client/v3/account/whoami", user.token)
            return Device(user.user_id, doc["device_id"], user.token)

        firsts = await bounded(8, (first_device(u) for u in users))
        seconds = await bounded(8, (second_device(u) for u in users))
        devices = [d for pair in zip(firsts, seconds) for d in pair]
        await bounded(8, (upload_keys(bench, d, c.key_requests if i < c.claim_devices else 0)
                          for i, d in enumerate(devices)))
        bench.key_devices = devices
    return bench.key_devices


def latencies_ms(times):
    return {"p50_ms": percentile(times, 50) * 1000, "p99_ms": percentile(times, 99) * 1000}


async def keys_query(bench):
    """The identity keys of key_users users of two devices each, in one request."""
    devices = await key_devices(bench)
    users = sorted({d.user_id for d in devices})
    body = {"device_keys": {u: [] for u in users}}
    times = []
    for _ in range(bench.counts.key_requests):
        start = time.perf_counter()
        doc = await bench.api.call("POST /keys/query", "POST", "/_matrix/client/v3/keys/query", devices[0].token,
                                   body=body)
        times.append(time.perf_counter() - start)
        found = sum(len(d) for d in doc.get("device_keys", {}).values())
        if found != len(devices):
            raise Failed(f"keys/query returned {found} of {len(devices)} devices")
    return latencies_ms(times)


async def keys_claim(bench):
    """One one-time key from each of claim_devices devices, in one request; every claim
    empties one key per device (each holds key_requests of them)."""
    c = bench.counts
    devices = (await key_devices(bench))[:c.claim_devices]
    wanted = {}
    for d in devices:
        wanted.setdefault(d.user_id, {})[d.device_id] = "signed_curve25519"
    claimer = (await key_devices(bench))[-1]
    times, seen = [], set()
    for _ in range(c.key_requests):
        start = time.perf_counter()
        doc = await bench.api.call("POST /keys/claim", "POST", "/_matrix/client/v3/keys/claim", claimer.token,
                                   body={"one_time_keys": wanted})
        times.append(time.perf_counter() - start)
        keys = [(u, dev, key_id) for u, by_device in doc.get("one_time_keys", {}).items()
                for dev, key in by_device.items() for key_id in key]
        if len(keys) != len(devices) or seen.intersection(keys):
            raise Failed(f"keys/claim returned {len(keys)} keys for {len(devices)} devices, or a key twice")
        seen.update(keys)
    return latencies_ms(times)


async def to_device(bench):
    """One to-device message to fanout_devices devices (every device of fanout_devices / 2
    users) per request; then the last recipient syncs and must have every one."""
    c = bench.counts
    devices = await key_devices(bench)
    recipients = sorted({d.user_id for d in devices[:c.fanout_devices]})
    sender, receiver = devices[-1], devices[c.fanout_devices - 1]
    since = (await bench.sync(User(receiver.user_id, receiver.token)))["next_batch"]
    times = []
    for i in range(c.key_requests):
        body = {"messages": {u: {"*": {"bench": i}} for u in recipients}}
        path = f"/_matrix/client/v3/sendToDevice/m.bench/t{next(TXN)}"
        start = time.perf_counter()
        await bench.api.call("PUT /sendToDevice/{eventType}/{txnId}", "PUT", path, sender.token, body=body)
        times.append(time.perf_counter() - start)
    doc = await bench.sync(User(receiver.user_id, receiver.token), since)
    got = [e.get("content", {}).get("bench") for e in doc.get("to_device", {}).get("events", [])]
    if got != list(range(c.key_requests)):
        raise Failed(f"a recipient got to-device messages {got}")
    return latencies_ms(times)


SCENARIOS = {
    "upload_peak": upload_peak,  # first, while the server is still idle
    "send": send_own,
    "send_shared": send_shared,
    "delivery": delivery,
    "delivery_sustained": delivery_sustained,
    "incremental_sync": incremental_sync,
    "media": media,
    "thumbnail_memory": thumbnail_memory,
    "keys_query": keys_query,
    "keys_claim": keys_claim,
    "to_device": to_device,
    "deep_history": deep_history,
    "sliding_sync": sliding_sync,
    "push_rules": push_rules,
    "index_cost": index_cost,
    "push_storage": push_storage,
    "search": search,
    "initial_sync": initial_sync,  # these two restart the server: last, once memory is measured
    "initial_sync_many": initial_sync_many,
    "initial_sync_huge": initial_sync_huge,
    "delivery_fanout": delivery_fanout,
}
#: Run only when named: filling 100,000 events takes minutes (half an hour on Synapse), and
#: so do making a thousand rooms, or 1,000 members joining one room and setting their
#: rules, on Synapse.
OPT_IN_SCENARIOS = ("deep_history", "sliding_sync", "push_rules", "search", "initial_sync_huge", "delivery_fanout")
#: Scenarios that restart the server: they run after every other one, and after the
#: "memory after the load" reading, which a restart would empty.
RESTARTING_SCENARIOS = ("initial_sync", "initial_sync_many", "initial_sync_huge")


#: Scenarios with a time limit of their own (the others have scenario_seconds); each
#: bounds its own slow part more tightly, so that what it reached is reported.
SCENARIO_SECONDS = {
    "sliding_sync": lambda c: c.sliding_seconds,
    "initial_sync_huge": lambda c: c.huge_build_seconds + c.scenario_seconds,
    "delivery_fanout": lambda c: c.fanout_seconds + 60,
}


async def run_scenarios(base_url, names, counts, server, report, before_restarts=lambda: None):
    """Runs the named scenarios in order against one server, those that restart it last
    (`before_restarts()` is called just before the first of them); report(name, status,
    reason, metrics) is called after each, whatever happened."""
    timeout = aiohttp.ClientTimeout(total=90)
    connector = aiohttp.TCPConnector(limit=256)
    bench = Bench(Api(aiohttp.ClientSession(timeout=timeout, connector=connector), base_url), counts, server)
    ordered = [n for n in names if n not in RESTARTING_SCENARIOS] + [n for n in names if n in RESTARTING_SCENARIOS]
    try:
        for name in ordered:
            if name == next((n for n in ordered if n in RESTARTING_SCENARIOS), None):
                before_restarts()
            limit = SCENARIO_SECONDS.get(name, lambda c: c.scenario_seconds)(counts)
            try:
                metrics = await asyncio.wait_for(SCENARIOS[name](bench), limit)
            except NotServed as e:
                report(name, "not served", str(e), {})
            except asyncio.TimeoutError:
                report(name, "failed", f"failed: timed out after {limit:.0f} s", {})
            except Exception as e:  # any failure is a finding to report, never a crash of the run
                kind = "" if isinstance(e, Failed) else f"{type(e).__name__}: "
                report(name, "failed", f"failed: {kind}{e}", {})
            else:
                if isinstance(metrics, Partial):
                    report(name, "partial", metrics.reason, dict(metrics))
                else:
                    report(name, "ok", "", metrics)
    finally:
        await bench.api.session.close()
