"""Application services over real HTTP: a bridge registered by a YAML file registers and
logs in its users, acts as them with its as_token, is asked about unknown users and
aliases in its namespaces, keeps its exclusive namespaces to itself, massages
timestamps, pings itself, and is spared the rate limits. The service is a small aiohttp
server on a free port that answers the homeserver's queries as a bridge would."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
import yaml
from aiohttp import web

from appservice_support import AS_TOKEN, HS_TOKEN, free_port, registration, serve
from ranvier.appservice.registration import load_registrations, parse_registration
from ranvier.config import ConfigError

class FakeBridge:
    """The service's side: records the homeserver's requests and answers its queries by
    creating the user or the room through the client API, as a bridge does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, str, dict]] = []
        self.api = None  # the homeserver's client API, once it runs
        self.ping_status = 200
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_matrix/app/v1/users/{user_id}", self.user_query)
        app.router.add_get("/_matrix/app/v1/rooms/{alias}", self.alias_query)
        app.router.add_post("/_matrix/app/v1/ping", self.ping)
        self.runner = await serve(app, self.port)

    async def stop(self) -> None:
        await self.runner.cleanup()

    def _record(self, request: web.Request, body: dict) -> None:
        self.requests.append((request.path, request.headers.get("Authorization", ""), body))

    async def user_query(self, request: web.Request) -> web.Response:
        self._record(request, {})
        user_id = unquote(request.match_info["user_id"])
        if "missing" in user_id:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        status, _ = await self.api.post("/register", {"type": "m.login.application_service",
                                                       "username": user_id[1:].split(":")[0], "inhibit_login": True},
                                        token=AS_TOKEN)
        return web.json_response({}, status=200 if status == 200 else 500)

    async def alias_query(self, request: web.Request) -> web.Response:
        self._record(request, {})
        alias = unquote(request.match_info["alias"])
        if "missing" in alias:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        status, _ = await self.api.post("/createRoom", {"room_alias_name": alias[1:].split(":")[0]}, token=AS_TOKEN)
        return web.json_response({}, status=200 if status == 200 else 500)

    async def ping(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(request, body)
        if self.ping_status != 200:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "not today"}, status=self.ping_status)
        return web.json_response({})


@pytest.fixture
async def bridge():
    service = FakeBridge()
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def api(make_server, tmp_path, bridge):
    """A server (registration closed, messages limited to a burst of 3) with the bridge and a
    second service without a URL registered."""
    files = []
    for name, data in (("bridge.yaml", registration(bridge.url)),
                       ("quiet.yaml", registration(None, id="quiet", as_token="quiet-as", hs_token="quiet-hs",
                                                   sender_localpart="quietbot", rate_limited=True,
                                                   namespaces={"users": [{"exclusive": False,
                                                                          "regex": r"@_quiet_.*"}]}))):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        files.append(str(path))
    server = await make_server(app_services={"registration_files": files}, registration={"mode": "closed"},
                               rate_limits={"message": {"per_second": 0.01, "burst": 3}})
    bridge.api = server
    return server


async def register_ghost(api, localpart: str) -> str:
    status, body = await api.post("/register", {"type": "m.login.application_service", "username": localpart,
                                                "inhibit_login": True}, token=AS_TOKEN)
    assert status == 200, body
    return body["user_id"]


async def test_a_service_registers_logs_in_and_acts_as_its_users(api):
    status, body = await api.get("/account/whoami", token=AS_TOKEN)
    assert (status, body["user_id"]) == (200, "@bridgebot:localhost")  # its sender, made at start
    ghost = await register_ghost(api, "_bridge_alice")
    assert ghost == "@_bridge_alice:localhost"
    status, body = await api.get("/account/whoami", token=AS_TOKEN, params={"user_id": ghost})
    assert (status, body["user_id"], body["device_id"]) == (200, ghost, "")
    # Outside its namespaces, or a user it has not registered: refused.
    for user_id in ("@someone:localhost", "@_bridge_nobody:localhost", "@_quiet_x:localhost"):
        status, body = await api.get("/account/whoami", token=AS_TOKEN, params={"user_id": user_id})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), user_id
    # Registration: only its own namespaces, only with its token, even with registration closed.
    status, body = await api.post("/register", {"type": "m.login.application_service", "username": "plain"},
                                  token=AS_TOKEN)
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    status, body = await api.post("/register", {"type": "m.login.application_service", "username": "_bridge_x"},
                                  token="not-a-service")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = await api.post("/register", {"type": "m.login.application_service", "username": "_bridge_x"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.post("/register", {"username": "ordinary", "password": "long enough password"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # closed to everyone else
    # Login: a device of the ghost's own, whose token then works like any other.
    status, flows = await api.get("/login")
    assert {"type": "m.login.application_service"} in flows["flows"]
    login = {"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": "_bridge_alice"},
             "initial_device_display_name": "bridge device"}
    status, session = await api.post("/login", login, token=AS_TOKEN)
    assert status == 200 and session["user_id"] == ghost, session
    status, body = await api.get("/account/whoami", token=session["access_token"])
    assert (status, body["device_id"]) == (200, session["device_id"])
    status, body = await api.get("/account/whoami", token=AS_TOKEN,
                                 params={"user_id": ghost, "device_id": session["device_id"]})
    assert (status, body["device_id"]) == (200, session["device_id"])
    status, body = await api.get("/account/whoami", token=AS_TOKEN, params={"user_id": ghost, "device_id": "NOPE"})
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_DEVICE")
    status, body = await api.post("/login", {**login, "identifier": {"type": "m.id.user", "user": "someone"}},
                                  token=AS_TOKEN)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.post("/login", login)
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    # The admin API names the service a user belongs to.
    root = await api.homeserver.users.register("root", "long enough password", admin=True)
    for user_id, service in ((ghost, "bridge"), ("@bridgebot:localhost", "bridge"), ("@root:localhost", None)):
        status, body = await api.get(f"/_synapse/admin/v2/users/{user_id}", token=root["access_token"])
        assert (status, body["appservice_id"]) == (200, service), user_id
    # Keys belong to a device: acting without one, the service cannot upload any.
    status, body = await api.post("/keys/upload", {}, token=AS_TOKEN, params={"user_id": ghost})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


async def test_exclusive_namespaces_keep_others_out(make_server, tmp_path, bridge):
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(registration(bridge.url)))
    api = await make_server(app_services={"registration_files": [str(path)]})
    status, body = await api.post("/register", {"username": "_bridge_mallory", "password": "long enough password",
                                                "auth": {"type": "m.login.dummy"}})
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    status, body = await api.get("/register/available", params={"username": "_bridge_mallory"})
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    (user,) = await api.register_all("carol")
    room_id = await api.create_room(user["access_token"])
    status, body = await api.put("/directory/room/%23_bridge_lobby:localhost", {"room_id": room_id},
                                 token=user["access_token"])
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    status, body = await api.post("/createRoom", {"room_alias_name": "_bridge_hall"}, token=user["access_token"])
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    # The service itself may; and names outside the namespaces stay open to everyone.
    status, body = await api.post("/createRoom", {"room_alias_name": "_bridge_hall"}, token=AS_TOKEN)
    assert status == 200, body
    status, body = await api.put("/directory/room/%23carols:localhost", {"room_id": room_id},
                                 token=user["access_token"])
    assert status == 200, body


async def test_timestamps_transaction_ids_and_rate_limits(api):
    ghost = await register_ghost(api, "_bridge_bob")
    status, created = await api.post("/createRoom", {"preset": "public_chat"}, token=AS_TOKEN,
                                     params={"user_id": ghost})
    assert status == 200, created
    room_id = created["room_id"]
    path = f"/rooms/{room_id}/send/m.room.message/txn1"
    message = {"msgtype": "m.text", "body": "sent long ago on the other network"}
    status, first = await api.put(path, message, token=AS_TOKEN, params={"user_id": ghost, "ts": "1234567890123"})
    assert status == 200, first
    status, again = await api.put(path, message, token=AS_TOKEN, params={"user_id": ghost, "ts": "1234567890123"})
    assert again == first  # the service's transaction IDs are its own, without a device
    status, event = await api.get(f"/rooms/{room_id}/event/{first['event_id']}", token=AS_TOKEN,
                                  params={"user_id": ghost})
    assert event["origin_server_ts"] == 1234567890123
    status, state = await api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "bridged"}, token=AS_TOKEN,
                                  params={"user_id": ghost, "ts": "1234567890999"})
    status, event = await api.get(f"/rooms/{room_id}/event/{state['event_id']}", token=AS_TOKEN,
                                  params={"user_id": ghost})
    assert event["origin_server_ts"] == 1234567890999
    status, body = await api.put(f"/rooms/{room_id}/send/m.room.message/bad", message, token=AS_TOKEN,
                                 params={"user_id": ghost, "ts": "yesterday"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # Its users are spared the message limit (a burst of 3 here) ...
    for index in range(8):
        status, body = await api.put(f"/rooms/{room_id}/send/m.room.message/many{index}", message, token=AS_TOKEN,
                                     params={"user_id": ghost})
        assert status == 200, (index, body)
    # ... an ordinary user is not, and a `ts` of theirs is ignored.
    status, session = await api.post("/login", {"type": "m.login.application_service",
                                                "identifier": {"type": "m.id.user", "user": "_quiet_q"}},
                                     token="quiet-as")
    assert (status, session["errcode"]) == (403, "M_FORBIDDEN")  # not registered, so no login either
    status, quiet = await api.post("/register", {"type": "m.login.application_service", "username": "_quiet_q"},
                                   token="quiet-as")
    assert status == 200, quiet
    await api.post(f"/rooms/{room_id}/join", {}, token=quiet["access_token"])
    statuses = []
    for index in range(5):
        status, body = await api.put(f"/rooms/{room_id}/send/m.room.message/q{index}", message,
                                     token=quiet["access_token"], params={"ts": "1000"})
        statuses.append(status)
        if status == 200:
            _, event = await api.get(f"/rooms/{room_id}/event/{body['event_id']}", token=quiet["access_token"])
            assert event["origin_server_ts"] > 1000
    assert 429 in statuses and statuses[0] == 200


async def test_unknown_users_and_aliases_are_asked_of_the_service(api, bridge):
    status, body = await api.get("/profile/@_bridge_carol:localhost")
    assert status == 200, body  # the service made the user when asked
    assert bridge.requests[0] == ("/_matrix/app/v1/users/@_bridge_carol:localhost", f"Bearer {HS_TOKEN}", {})
    status, body = await api.get("/profile/@_bridge_missing:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.get("/profile/@stranger:localhost")
    assert status == 404
    assert [path for path, _, _ in bridge.requests].count("/_matrix/app/v1/users/@stranger:localhost") == 0
    # Inviting a ghost that does not exist yet.
    owner = await register_ghost(api, "_bridge_owner")
    room_id = (await api.post("/createRoom", {}, token=AS_TOKEN, params={"user_id": owner}))[1]["room_id"]
    status, body = await api.post(f"/rooms/{room_id}/invite", {"user_id": "@_bridge_dave:localhost"},
                                  token=AS_TOKEN, params={"user_id": owner})
    assert status == 200, body
    status, body = await api.post(f"/rooms/{room_id}/invite", {"user_id": "@_bridge_missing2:localhost"},
                                  token=AS_TOKEN, params={"user_id": owner})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # An alias in its namespace: the service makes the room when asked, then it resolves.
    status, body = await api.get("/directory/room/%23_bridge_portal:localhost")
    assert status == 200 and body["room_id"].startswith("!"), body
    assert ("/_matrix/app/v1/rooms/#_bridge_portal:localhost", f"Bearer {HS_TOKEN}", {}) in bridge.requests
    status, body = await api.get("/directory/room/%23_bridge_missing:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_the_ping(api, bridge):
    status, body = await api.post("/_matrix/client/v1/appservice/bridge/ping", {"transaction_id": "t-1"},
                                  token=AS_TOKEN)
    assert status == 200 and isinstance(body["duration_ms"], int), body
    assert bridge.requests[-1] == ("/_matrix/app/v1/ping", f"Bearer {HS_TOKEN}", {"transaction_id": "t-1"})
    bridge.ping_status = 500
    status, body = await api.post("/_matrix/client/v1/appservice/bridge/ping", {}, token=AS_TOKEN)
    assert (status, body["errcode"], body["status"]) == (502, "M_BAD_STATUS", 500)
    assert "not today" in body["body"]
    status, body = await api.put("/directory/list/appservice/irc/!room:localhost", {"visibility": "public"},
                                 token=AS_TOKEN)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")  # no such room
    status, body = await api.post("/_matrix/client/v1/appservice/quiet/ping", {}, token="quiet-as")
    assert (status, body["errcode"]) == (400, "M_URL_NOT_SET")
    status, body = await api.post("/_matrix/client/v1/appservice/bridge/ping", {}, token="quiet-as")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await bridge.stop()
    status, body = await api.post("/_matrix/client/v1/appservice/bridge/ping", {}, token=AS_TOKEN)
    assert (status, body["errcode"]) == (502, "M_CONNECTION_FAILED")
    await bridge.start()


def test_registration_files_are_checked(tmp_path):
    good = registration("http://127.0.0.1:9")
    parsed = parse_registration(good, "example.org", "bridge.yaml")
    assert parsed.sender == "@bridgebot:example.org" and parsed.claims_user("@_bridge_x:localhost")
    assert not parsed.claims_user("@x_bridge_:localhost") and parsed.claims_user("@bridgebot:example.org")
    assert parsed.claims_alias("#_bridge_a:localhost", exclusive_only=True)
    for change, message in (({"as_token": ""}, "as_token"), ({"url": "ftp://x"}, "url"),
                            ({"sender_localpart": "Bad Name"}, "sender_localpart"),
                            ({"namespaces": {"users": [{"regex": "(unclosed"}]}}, "regex"),
                            ({"namespaces": {"users": [{"regex": ".*", "exclusive": "yes"}]}}, "exclusive"),
                            ({"rate_limited": "no"}, "rate_limited")):
        with pytest.raises(ConfigError, match=message):
            parse_registration({**good, **change}, "example.org", "bridge.yaml")
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(good))
    second.write_text(yaml.safe_dump({**good, "id": "other", "sender_localpart": "other"}))
    with pytest.raises(ConfigError, match="as_token"):
        load_registrations([str(first), str(second)], "localhost")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_registrations([str(tmp_path / "missing.yaml")], "localhost")
