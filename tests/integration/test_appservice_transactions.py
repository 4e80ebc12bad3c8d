"""Transactions to application services: two fake services on free ports record every
transaction they are sent. The events of their users, of rooms where their users are
joined or whose alias they claim, and memberships naming their users reach them, with
their hs_token; nothing else does. A failed transaction comes again under the same ID, a
restart resumes where delivery stopped, and only a service that asks gets typing,
receipts and presence."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from ranvier.server import Homeserver
from tests.conftest import Api, test_config

BRIDGE_AS_TOKEN, QUIET_AS_TOKEN = "bridge-as-token", "quiet-as-token"
GHOST = "@_bridge_ghost:localhost"


@dataclass
class Attempt:
    txn_id: str
    authorization: str | None
    body: dict
    status: int


class FakeService:
    """An application service on a free port that records every transaction it is sent,
    answers 500 while `failures_left`, and 403 to a request without its hs_token."""

    def __init__(self, hs_token: str) -> None:
        self.hs_token = hs_token
        self.attempts: list[Attempt] = []
        self.failures_left = 0
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", self._transaction)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def _transaction(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        status = 200
        if authorization != f"Bearer {self.hs_token}":
            status = 403
        elif self.failures_left > 0:
            self.failures_left -= 1
            status = 500
        self.attempts.append(Attempt(request.match_info["txn_id"], authorization, await request.json(), status))
        self.arrived.set()
        return web.json_response({} if status == 200 else {"errcode": "M_UNKNOWN"}, status=status)

    @property
    def taken(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status == 200]

    def events(self) -> list[dict]:
        """The room events of the transactions taken, in order."""
        return [event for attempt in self.taken for event in attempt.body["events"]]

    def ephemeral(self) -> list[dict]:
        return [event for attempt in self.taken for event in attempt.body.get("ephemeral", [])]

    def bodies(self) -> list[str]:
        return [event["content"]["body"] for event in self.events() if event["type"] == "m.room.message"]

    async def wait_until(self, condition, timeout: float = 10) -> None:
        async def satisfied():
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(satisfied(), timeout)


def registration_yaml(service_id: str, url: str, as_token: str, hs_token: str, prefix: str, *,
                      ephemeral: bool) -> str:
    return f"""
id: {service_id}
url: {url}
as_token: {as_token}
hs_token: {hs_token}
sender_localpart: {prefix}bot
receive_ephemeral: {str(ephemeral).lower()}
namespaces:
  users:
    - exclusive: true
      regex: "@_{prefix}_.*:localhost"
  aliases:
    - exclusive: false
      regex: "#_{prefix}_.*:localhost"
"""


@pytest.fixture
async def bridge():
    service = FakeService("bridge-hs-token")
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def quiet():
    service = FakeService("quiet-hs-token")
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def config(tmp_path, database_url, bridge, quiet):
    files = []
    for service, as_token, prefix, ephemeral in ((bridge, BRIDGE_AS_TOKEN, "bridge", True),
                                                 (quiet, QUIET_AS_TOKEN, "quiet", False)):
        path = tmp_path / f"{prefix}.yaml"
        path.write_text(registration_yaml(prefix, service.url, as_token, service.hs_token, prefix,
                                          ephemeral=ephemeral))
        files.append(str(path))
    return test_config(tmp_path / "data", database_url, app_services={"registration_files": files},
                       outbound={"initial_backoff_ms": 50, "max_backoff_ms": 200})


@pytest.fixture
async def server(config):
    hs = Homeserver(config)
    await hs.start()
    yield hs
    await hs.stop()


@pytest.fixture
async def api(server):
    async with aiohttp.ClientSession() as session:
        yield Api(session, server.base_url)


async def create_puppet(hs: Homeserver, user_id: str) -> None:
    await hs.users.store.create_account(user_id, None, now=int(time.time() * 1000), displayname=None)


async def as_puppet(api: Api, method: str, path: str, user_id: str, body=None, as_token: str = BRIDGE_AS_TOKEN):
    status, answer = await api.request(method, path, body if body is not None else {}, token=as_token,
                                       params={"user_id": user_id})
    assert status == 200, answer
    return answer


async def room_with_ghost(api: Api, hs: Homeserver, alice: dict, ghost: str = GHOST,
                          as_token: str = BRIDGE_AS_TOKEN) -> str:
    """A room of alice's that a service's ghost (the bridge's by default) joined."""
    await create_puppet(hs, ghost)
    room = await api.create_room(alice["access_token"], preset="public_chat")
    await as_puppet(api, "POST", f"/rooms/{room}/join", ghost, as_token=as_token)
    return room


def message(body: str) -> dict:
    return {"msgtype": "m.text", "body": body}


async def test_the_events_a_service_is_interested_in_reach_it(api, server, bridge, quiet):
    alice = await api.register("alice")
    token = alice["access_token"]
    unrelated = await api.create_room(token, preset="public_chat")
    await api.send_text(token, unrelated, "nobody's business")
    await create_puppet(server, "@_bridge_invitee:localhost")
    status, _ = await api.post(f"/rooms/{unrelated}/invite", {"user_id": "@_bridge_invitee:localhost"}, token=token)
    assert status == 200
    await api.send_text(token, unrelated, "still nobody's business")
    joined = await room_with_ghost(api, server, alice)
    ghost_says = (await as_puppet(api, "PUT", f"/rooms/{joined}/send/m.room.message/t1", GHOST,
                                  message("ghost speaking")))["event_id"]
    await api.send_text(token, joined, "to the ghost")
    aliased = await api.create_room(token, preset="public_chat")
    status, _ = await api.put("/directory/room/%23_bridge_lobby:localhost", {"room_id": aliased}, token=token)
    assert status == 200
    last = await api.send_text(token, aliased, "in the lobby")
    await bridge.wait_until(lambda: any(e["event_id"] == last for e in bridge.events()))

    events = bridge.events()
    assert {e["room_id"] for e in events} == {unrelated, joined, aliased}
    assert [(e["type"], e.get("state_key"), e["content"].get("membership")) for e in events
            if e["room_id"] == unrelated] == [("m.room.member", "@_bridge_invitee:localhost", "invite")]
    assert bridge.bodies() == ["ghost speaking", "to the ghost", "in the lobby"]
    assert ("m.room.member", GHOST) in [(e["type"], e.get("state_key")) for e in events if e["room_id"] == joined]
    ghost_event = next(e for e in events if e["event_id"] == ghost_says)
    assert ghost_event["sender"] == GHOST and "hashes" not in ghost_event and "signatures" not in ghost_event
    assert "age" in ghost_event["unsigned"]
    assert len({e["event_id"] for e in events}) == len(events)
    assert {a.authorization for a in bridge.attempts} == {"Bearer bridge-hs-token"}
    assert all(a.txn_id.startswith("r") for a in bridge.attempts if a.body["events"])
    assert quiet.events() == []


async def test_a_room_named_by_its_canonical_alias_alone(api, bridge):
    """The alias is gone from the directory, but the room's canonical alias event still
    names it (its creator, who deleted it, may not change that event)."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice["access_token"], preset="public_chat")
    assert (await api.post(f"/rooms/{room}/join", {}, token=bob["access_token"]))[0] == 200
    alias = "#_bridge_attic:localhost"
    assert (await api.put("/directory/room/%23_bridge_attic:localhost", {"room_id": room},
                          token=bob["access_token"]))[0] == 200
    assert (await api.put(f"/rooms/{room}/state/m.room.canonical_alias/", {"alias": alias},
                          token=alice["access_token"]))[0] == 200
    assert (await api.delete("/directory/room/%23_bridge_attic:localhost", token=bob["access_token"]))[0] == 200
    sent = await api.send_text(alice["access_token"], room, "up in the attic")
    await bridge.wait_until(lambda: any(e["event_id"] == sent for e in bridge.events()))


async def test_a_failed_transaction_comes_again_under_its_id(api, server, quiet):
    """(The service without ephemeral events: its transactions are all of room events.)"""
    alice = await api.register("alice")
    ghost = "@_quiet_ghost:localhost"
    room = await room_with_ghost(api, server, alice, ghost, QUIET_AS_TOKEN)
    await quiet.wait_until(lambda: any(e.get("state_key") == ghost for e in quiet.events()))
    before = len(quiet.attempts)
    quiet.failures_left = 1
    first = await api.send_text(alice["access_token"], room, "one")
    await quiet.wait_until(lambda: len(quiet.attempts) > before)
    second = await api.send_text(alice["access_token"], room, "two")  # sent while the first waits for its retry
    third = await api.send_text(alice["access_token"], room, "three")
    await quiet.wait_until(lambda: any(e["event_id"] == third for e in quiet.events()))

    failed, retried = quiet.attempts[before], quiet.attempts[before + 1]
    assert (failed.status, retried.status) == (500, 200)
    assert retried.txn_id == failed.txn_id
    assert [e["event_id"] for e in retried.body["events"]] == [e["event_id"] for e in failed.body["events"]] \
        == [first]
    ids = [e["event_id"] for e in quiet.events()]
    assert len(set(ids)) == len(ids)
    assert ids[-3:] == [first, second, third]
    taken_ids = [a.txn_id for a in quiet.taken]
    assert len(set(taken_ids)) == len(taken_ids)


async def test_delivery_resumes_after_a_restart(config, bridge):
    hs = Homeserver(config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            alice = await api.register("alice")
            room = await room_with_ghost(api, hs, alice)
            before = await api.send_text(alice["access_token"], room, "before")
            await bridge.wait_until(lambda: "before" in bridge.bodies())
            bridge.failures_left = 10**6  # the service is down
            queued = [await api.send_text(alice["access_token"], room, f"queued {i}") for i in range(3)]
            await bridge.wait_until(lambda: bridge.attempts[-1].status == 500)
            await asyncio.sleep(0.2)
    finally:
        await hs.stop()
    bridge.failures_left = 0
    hs = Homeserver(config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            after = await api.send_text(alice["access_token"], room, "after")
            await bridge.wait_until(lambda: any(e["event_id"] == after for e in bridge.events()))
    finally:
        await hs.stop()
    ids = [e["event_id"] for e in bridge.events()]
    assert ids[-5:] == [before, *queued, after]
    assert len(set(ids)) == len(ids)


async def test_only_a_service_that_asks_gets_typing_receipts_and_presence(api, server, bridge, quiet):
    alice = await api.register("alice")
    token = alice["access_token"]
    elsewhere = await api.create_room(token, preset="public_chat")
    status, _ = await api.put(f"/rooms/{elsewhere}/typing/@alice:localhost", {"typing": True, "timeout": 30000},
                              token=token)
    assert status == 200
    room = await room_with_ghost(api, server, alice)
    await create_puppet(server, "@_quiet_ghost:localhost")
    await as_puppet(api, "POST", f"/rooms/{room}/join", "@_quiet_ghost:localhost", as_token=QUIET_AS_TOKEN)
    sent = await api.send_text(token, room, "hello")
    status, _ = await api.put(f"/rooms/{room}/typing/@alice:localhost", {"typing": True, "timeout": 30000},
                              token=token)
    assert status == 200
    status, _ = await api.post(f"/rooms/{room}/receipt/m.read/{sent}", {}, token=token)
    assert status == 200
    status, _ = await api.put("/presence/@alice:localhost/status", {"presence": "online", "status_msg": "here"},
                              token=token)
    assert status == 200
    await bridge.wait_until(lambda: {e["type"] for e in bridge.ephemeral()} >= {"m.typing", "m.receipt", "m.presence"})
    await quiet.wait_until(lambda: any(e["event_id"] == sent for e in quiet.events()))

    ephemeral = bridge.ephemeral()
    typing = [e for e in ephemeral if e["type"] == "m.typing"]
    assert typing == [{"type": "m.typing", "room_id": room, "content": {"user_ids": ["@alice:localhost"]}}]
    receipt = next(e for e in ephemeral if e["type"] == "m.receipt")
    assert receipt["room_id"] == room and list(receipt["content"]) == [sent]
    assert set(receipt["content"][sent]["m.read"]) == {"@alice:localhost"}
    presence = [e for e in ephemeral if e["type"] == "m.presence"]
    assert presence[-1]["sender"] == "@alice:localhost"
    assert presence[-1]["content"]["presence"] == "online"
    for attempt in bridge.taken:
        if attempt.body.get("ephemeral"):
            assert attempt.body["de.sorunome.msc2409.ephemeral"] == attempt.body["ephemeral"]
            assert attempt.body["events"] == [] and attempt.txn_id.startswith("e")
    assert len({a.txn_id for a in bridge.taken}) == len(bridge.taken)
    await asyncio.sleep(0.2)
    assert all(not a.body.get("ephemeral") for a in quiet.attempts)


async def test_a_new_service_starts_from_now(tmp_path, database_url, bridge):
    """A service registered on a server with history is not sent that history."""
    plain = test_config(tmp_path / "data", database_url)
    hs = Homeserver(plain)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            alice = await api.register("alice")
            room = await api.create_room(alice["access_token"], preset="public_chat", room_alias_name="_bridge_news")
            await api.send_text(alice["access_token"], room, "old news")
    finally:
        await hs.stop()
    path = tmp_path / "bridge.yaml"
    path.write_text(registration_yaml("bridge", bridge.url, BRIDGE_AS_TOKEN, bridge.hs_token, "bridge",
                                      ephemeral=False))
    hs = Homeserver(test_config(tmp_path / "data", database_url, app_services={"registration_files": [str(path)]}))
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            status, login = await api.post("/login", {"type": "m.login.password", "identifier": {
                "type": "m.id.user", "user": "alice"}, "password": "correct horse"})
            assert status == 200, login
            await api.send_text(login["access_token"], room, f"news {uuid.uuid4().hex}")
            await bridge.wait_until(lambda: bridge.bodies() != [])
    finally:
        await hs.stop()
    assert [body.startswith("news ") for body in bridge.bodies()] == [True]
