"""Pushers and delivery to a push gateway: a small real HTTP server started by the tests
receives exactly the notifications the rules say, in both formats, after failures, after
a restart, and stops receiving them for a rejected pushkey or a deleted device."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from ranvier.server import Homeserver
from tests.conftest import Api, test_config

NOTIFY = "/_matrix/push/v1/notify"


class Gateway:
    """A push gateway on a free port that records every notification it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.failures_left = 0
        self.rejected: set[str] = set()
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post(NOTIFY, self._notify)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{NOTIFY}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def _notify(self, request: web.Request) -> web.Response:
        if self.failures_left > 0:
            self.failures_left -= 1
            return web.json_response({"error": "try later"}, status=503)
        notification = (await request.json())["notification"]
        self.received.append(notification)
        self.arrived.set()
        keys = [d["pushkey"] for d in notification["devices"] if d["pushkey"] in self.rejected]
        return web.json_response({"rejected": keys})

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict]:
        async def enough():
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.received


@pytest.fixture
async def gateway():
    gw = Gateway()
    await gw.start()
    yield gw
    await gw.stop()


def push_config(tmp_path, database_url):
    return test_config(tmp_path / "data", database_url,
                       outbound={"allowed_networks": ["127.0.0.0/8"], "initial_backoff_ms": 50, "max_backoff_ms": 200},
                       push={"http_gateway_urls": ["http://127.0.0.1:"]})


@pytest.fixture
async def server(tmp_path, database_url):
    hs = Homeserver(push_config(tmp_path, database_url))
    await hs.start()
    yield hs
    await hs.stop()


@pytest.fixture
async def client(server):
    async with aiohttp.ClientSession() as session:
        yield Api(session, server.base_url)


def pusher(url, pushkey="key-1", **extra) -> dict:
    return {"kind": "http", "app_id": "org.example.app", "pushkey": pushkey, "app_display_name": "Example",
            "device_display_name": "Phone", "lang": "en", "data": {"url": url, "custom": 7}, **extra}


async def room_of_two(client):
    alice, bob = await client.register("alice"), await client.register("bob")
    room = await client.create_room(alice["access_token"], preset="public_chat", name="Mission Control")
    assert (await client.post(f"/rooms/{room}/join", {}, token=bob["access_token"]))[0] == 200
    return alice, bob, room


async def test_set_list_and_delete_pushers(client, gateway):
    bob = await client.register("bob")
    token = bob["access_token"]
    assert await client.get("/pushers", token=token) == (200, {"pushers": []})
    assert (await client.post("/pushers/set", pusher(gateway.url, profile_tag="tag"), token=token))[0] == 200
    status, body = await client.get("/pushers", token=token)
    assert body["pushers"] == [{"pushkey": "key-1", "kind": "http", "app_id": "org.example.app",
                                "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
                                "profile_tag": "tag", "data": {"url": gateway.url, "custom": 7}}]
    assert (await client.post("/pushers/set", pusher(gateway.url, lang="fr"), token=token))[0] == 200
    assert [p["lang"] for p in (await client.get("/pushers", token=token))[1]["pushers"]] == ["fr"]
    delete = {"kind": None, "app_id": "org.example.app", "pushkey": "key-1"}
    assert (await client.post("/pushers/set", delete, token=token))[0] == 200
    assert (await client.post("/pushers/set", delete, token=token))[0] == 200  # idempotent
    assert await client.get("/pushers", token=token) == (200, {"pushers": []})


@pytest.mark.parametrize("change, errcode", [
    ({"kind": "email"}, "M_INVALID_PARAM"),
    ({"kind": "carrier-pigeon"}, "M_INVALID_PARAM"),
    ({"data": {"url": "http://push.example.org/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "https://push.example.org/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "https://10.0.0.1/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "https://push.example.org/_matrix/push/v1/notify", "format": "full"}}, "M_INVALID_PARAM"),
    ({"data": {}}, "M_MISSING_PARAM"),
    ({"data": "https://push.example.org"}, "M_BAD_JSON"),
    ({"lang": None}, "M_MISSING_PARAM"),
    ({"app_id": "a" * 65}, "M_INVALID_PARAM"),
    ({"pushkey": "k" * 513}, "M_INVALID_PARAM"),
    ({"pushkey": "nul\x00key"}, "M_INVALID_PARAM"),
    ({"append": "yes"}, "M_BAD_JSON"),
])
async def test_bad_pushers_are_refused(client, gateway, change, errcode):
    bob = await client.register("bob")
    status, body = await client.post("/pushers/set", {**pusher(gateway.url), **change}, token=bob["access_token"])
    assert (status, body.get("errcode")) == (400, errcode), body
    assert await client.get("/pushers", token=bob["access_token"]) == (200, {"pushers": []})


async def test_missing_kind_and_app_id(client):
    bob = await client.register("bob")
    for body in ({"app_id": "a", "pushkey": "k"}, {"kind": None, "pushkey": "k"}):
        status, answer = await client.post("/pushers/set", body, token=bob["access_token"])
        assert (status, answer["errcode"]) == (400, "M_MISSING_PARAM")


async def test_the_gateway_gets_what_the_rules_say_in_both_formats(client, gateway):
    alice, bob, room = await room_of_two(client)
    assert (await client.post("/pushers/set", pusher(gateway.url), token=bob["access_token"]))[0] == 200
    second = pusher(gateway.url, pushkey="key-2", data={"url": gateway.url, "format": "event_id_only"})
    assert (await client.post("/pushers/set", second, token=bob["access_token"]))[0] == 200
    notice = await client.put(f"/rooms/{room}/send/m.room.message/n1", {"msgtype": "m.notice", "body": "bot"},
                              token=alice["access_token"])
    assert notice[0] == 200
    mine = await client.send_text(bob["access_token"], room, "my own words")
    hello = await client.send_text(alice["access_token"], room, "hello bob")
    received = await gateway.wait_for(2)
    await asyncio.sleep(0.3)
    assert len(received) == 2  # nothing for the notice, nothing for bob's own message
    full = next(n for n in received if n["devices"][0]["pushkey"] == "key-1")
    short = next(n for n in received if n["devices"][0]["pushkey"] == "key-2")
    assert full["event_id"] == short["event_id"] == hello != mine
    assert full["room_id"] == short["room_id"] == room
    assert full["type"] == "m.room.message" and full["sender"] == alice["user_id"]
    assert full["content"] == {"msgtype": "m.text", "body": "hello bob"}
    assert full["sender_display_name"] == "alice" and full["room_name"] == "Mission Control"
    assert full["counts"] == {"unread": 1} and full["prio"] == "high"
    device = full["devices"][0]
    assert device["app_id"] == "org.example.app" and device["data"] == {"custom": 7}
    assert isinstance(device["pushkey_ts"], int) and device["tweaks"] == {"sound": "default", "highlight": True}
    assert set(short) == {"event_id", "room_id", "counts", "devices", "prio"}
    assert short["devices"][0]["data"] == {"format": "event_id_only"}


async def test_failures_are_retried_and_a_rejected_pushkey_removes_the_pusher(client, gateway):
    alice, bob, room = await room_of_two(client)
    assert (await client.post("/pushers/set", pusher(gateway.url), token=bob["access_token"]))[0] == 200
    gateway.failures_left = 3
    first = await client.send_text(alice["access_token"], room, "one")
    second = await client.send_text(alice["access_token"], room, "two")
    received = await gateway.wait_for(2)
    assert [n["event_id"] for n in received] == [first, second]
    assert gateway.failures_left == 0
    gateway.rejected.add("key-1")
    await client.send_text(alice["access_token"], room, "three")
    await gateway.wait_for(3)
    for _ in range(50):
        if (await client.get("/pushers", token=bob["access_token"]))[1]["pushers"] == []:
            break
        await asyncio.sleep(0.05)
    assert (await client.get("/pushers", token=bob["access_token"]))[1]["pushers"] == []
    await client.send_text(alice["access_token"], room, "four")
    await asyncio.sleep(0.3)
    assert len(gateway.received) == 3


async def test_a_pusher_goes_with_its_device(client, server, gateway):
    alice, bob, room = await room_of_two(client)
    assert (await client.post("/pushers/set", pusher(gateway.url), token=bob["access_token"]))[0] == 200
    assert (await client.post("/logout", {}, token=bob["access_token"]))[0] == 200
    status, login = await client.post("/login", {"type": "m.login.password", "identifier": {
        "type": "m.id.user", "user": "bob"}, "password": "correct horse"})
    assert status == 200
    assert await client.get("/pushers", token=login["access_token"]) == (200, {"pushers": []})
    await client.send_text(alice["access_token"], room, "anyone?")
    await asyncio.sleep(0.3)
    assert gateway.received == []


async def test_queued_notifications_survive_a_restart(tmp_path, database_url, gateway):
    config = push_config(tmp_path, database_url)
    hs = Homeserver(config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = Api(session, hs.base_url)
            alice, bob, room = await room_of_two(client)
            assert (await client.post("/pushers/set", pusher(gateway.url), token=bob["access_token"]))[0] == 200
            first = await client.send_text(alice["access_token"], room, "before")
            await gateway.wait_for(1)
            gateway.failures_left = 10**6  # the gateway is down
            queued = [await client.send_text(alice["access_token"], room, f"queued {i}") for i in range(3)]
            await asyncio.sleep(0.3)
    finally:
        await hs.stop()
    gateway.failures_left = 0
    hs = Homeserver(config)
    await hs.start()
    try:
        received = await gateway.wait_for(4)
        await asyncio.sleep(0.3)
        assert [n["event_id"] for n in gateway.received] == [first, *queued]
    finally:
        await hs.stop()

