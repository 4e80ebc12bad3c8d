"""Third-party networks over real HTTP: the protocols bridged by application services (their
metadata merged across services, each instance given an ID of this server), lookups
forwarded to the services with the client's query, reverse lookups asked of the services
whose namespaces hold the name, services that fail or answer garbage left out; and the
room directories of the services' networks, filled by the services and paged by
/publicRooms apart from the server's own. The services are small aiohttp servers on free
ports that answer what each test gives them."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import yaml
from aiohttp import web

from appservice_support import AS_TOKEN, HS_TOKEN, free_port, registration, serve
from ranvier.appservice.registration import parse_registration
from ranvier.config import ConfigError

PREFIX = "/_matrix/app/v1/thirdparty"
IRC_FIELDS = {"user_fields": ["network", "nickname"], "location_fields": ["network", "channel"],
              "icon": "mxc://localhost/irc",
              "field_types": {"network": {"regexp": "[a-z]+", "placeholder": "libera"},
                              "channel": {"regexp": "#[^\\s]+", "placeholder": "#matrix"},
                              "nickname": {"regexp": "[^\\s#]+", "placeholder": "bob"}}}
LIBERA = {"desc": "Libera Chat", "network_id": "libera", "fields": {"network": "libera"}}
OFTC = {"desc": "OFTC", "network_id": "oftc", "fields": {"network": "oftc"}, "icon": "mxc://localhost/oftc"}
GITTER = {"desc": "Gitter", "network_id": "gitter", "fields": {}}
BRIDGE_PORTAL = {"alias": "#_bridge_libera_matrix:localhost", "protocol": "irc",
                 "fields": {"network": "libera", "channel": "#matrix"}}
SECOND_PORTAL = {"alias": "#_second_oftc_matrix:localhost", "protocol": "irc",
                 "fields": {"network": "oftc", "channel": "#matrix"}}
BRIDGE_GHOST = {"userid": "@_bridge_libera_bob:localhost", "protocol": "irc",
                "fields": {"network": "libera", "nickname": "bob"}}
SECOND_GHOST = {"userid": "@_second_oftc_carol:localhost", "protocol": "irc",
                "fields": {"network": "oftc", "nickname": "carol"}}


class FakeService:
    """A service's side: answers each path with what `answers` holds for it (JSON, or raw
    bytes for garbage, or a (status, JSON) pair) and 404 M_UNRECOGNIZED for anything else;
    records every request as (path, query pairs, Authorization header)."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.port = free_port()
        self.answers = answers
        self.requests: list[tuple[str, list[tuple[str, str]], str]] = []
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def asked(self, path: str) -> list[tuple[str, list[tuple[str, str]], str]]:
        return [entry for entry in self.requests if entry[0] == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.answer)
        self.runner = await serve(app, self.port)

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def answer(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, list(request.query.items()), request.headers.get("Authorization", "")))
        answer = self.answers.get(request.path)
        if answer is None:
            return web.json_response({"errcode": "M_UNRECOGNIZED", "error": "no"}, status=404)
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="application/json")
        if isinstance(answer, tuple):
            return web.json_response(answer[1], status=answer[0])
        return web.json_response(answer)


@pytest.fixture
async def services():
    """`bridge` (irc: Libera, gitter), `second` (irc: OFTC) and `broken` (irc, slack:
    garbage and errors), each answering lookups in its own way."""
    bridge = FakeService({
        f"{PREFIX}/protocol/irc": {**IRC_FIELDS, "instances": [LIBERA, {"desc": "no network ID", "fields": {}}]},
        f"{PREFIX}/protocol/gitter": {"user_fields": [], "location_fields": [], "icon": "mxc://localhost/gitter",
                                      "field_types": {}, "instances": [GITTER]},
        f"{PREFIX}/location/irc": [BRIDGE_PORTAL, {"alias": 5, "protocol": "irc", "fields": {}}, "junk",
                                   {"alias": "#x:localhost", "protocol": "irc"}],
        f"{PREFIX}/user/irc": [BRIDGE_GHOST],
        f"{PREFIX}/location": [BRIDGE_PORTAL],
        f"{PREFIX}/user": [BRIDGE_GHOST],
    })
    second = FakeService({
        f"{PREFIX}/protocol/irc": {**IRC_FIELDS, "icon": "mxc://localhost/other", "instances": [OFTC]},
        f"{PREFIX}/location/irc": [SECOND_PORTAL],
        f"{PREFIX}/user/irc": {"not": "a list"},
        f"{PREFIX}/location": [SECOND_PORTAL],
        f"{PREFIX}/user": [SECOND_GHOST],
    })
    broken = FakeService({
        f"{PREFIX}/protocol/irc": b"{not json",
        f"{PREFIX}/protocol/slack": {"instances": "none"},
        f"{PREFIX}/location/irc": (500, {"errcode": "M_UNKNOWN", "error": "oops"}),
        f"{PREFIX}/user/irc": b"[1, 2",
    })
    for service in (bridge, second, broken):
        await service.start()
    yield bridge, second, broken
    for service in (bridge, second, broken):
        await service.stop()


@pytest.fixture
async def api(make_server, tmp_path, services):
    """A server with the three services registered, and a fourth bridging irc whose URL
    answers nothing."""
    bridge, second, broken = services
    files = []
    for name, data in (
        ("bridge", registration(bridge.url, protocols=["irc", "gitter"])),
        ("second", registration(second.url, id="second", as_token="second-as", hs_token="second-hs",
                                sender_localpart="secondbot", protocols=["irc"],
                                namespaces={"users": [{"exclusive": True, "regex": r"@_second_.*:localhost"}],
                                            "aliases": [{"exclusive": True, "regex": r"#_second_.*:localhost"}]})),
        ("broken", registration(broken.url, id="broken", as_token="broken-as", hs_token="broken-hs",
                                sender_localpart="brokenbot", protocols=["irc", "slack"], namespaces={})),
        ("down", registration(f"http://127.0.0.1:{free_port()}", id="down", as_token="down-as",
                              hs_token="down-hs", sender_localpart="downbot", protocols=["irc"], namespaces={})),
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append(str(path))
    return await make_server(app_services={"registration_files": files})


async def _user_token(api) -> str:
    (alice,) = await api.register_all("alice")
    return alice["access_token"]


async def test_protocols_merge_the_services_answers(api, services):
    bridge, second, broken = services
    token = await _user_token(api)
    status, protocols = await api.get("/thirdparty/protocols", token=token)
    assert status == 200, protocols
    # slack: only `broken` bridges it, and its answer is garbage: left out.
    assert sorted(protocols) == ["gitter", "irc"]
    irc = protocols["irc"]
    assert {key: irc[key] for key in IRC_FIELDS} == IRC_FIELDS  # the first service's fields
    assert irc["instances"] == [{**LIBERA, "instance_id": "bridge|libera"}, {**OFTC, "instance_id": "second|oftc"}]
    assert protocols["gitter"]["instances"] == [{**GITTER, "instance_id": "bridge|gitter"}]
    assert bridge.asked(f"{PREFIX}/protocol/irc")[0][2] == f"Bearer {HS_TOKEN}"
    assert second.asked(f"{PREFIX}/protocol/irc")[0][2] == "Bearer second-hs"
    assert broken.asked(f"{PREFIX}/protocol/irc") and broken.asked(f"{PREFIX}/protocol/slack")

    assert await api.get("/thirdparty/protocol/irc", token=token) == (200, irc)
    assert await api.get("/thirdparty/protocol/gitter", token=token) == (200, protocols["gitter"])
    for name in ("slack", "matrix"):
        status, body = await api.get(f"/thirdparty/protocol/{name}", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), name
    # The answers were kept: each service was asked once per protocol.
    assert len(bridge.asked(f"{PREFIX}/protocol/irc")) == len(second.asked(f"{PREFIX}/protocol/irc")) == 1
    assert len(broken.asked(f"{PREFIX}/protocol/slack")) == 1
    status, body = await api.get("/thirdparty/protocols")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_lookups_are_forwarded_with_the_query(api, services):
    bridge, second, broken = services
    token = await _user_token(api)
    status, found = await api.get("/thirdparty/location/irc", params={"channel": "#matrix", "network": "libera",
                                                                      "access_token": token})
    assert status == 200, found
    assert found == [BRIDGE_PORTAL, SECOND_PORTAL]  # malformed entries, the 500 and the silent one left out
    for service, hs_token in ((bridge, HS_TOKEN), (second, "second-hs"), (broken, "broken-hs")):
        assert service.asked(f"{PREFIX}/location/irc") == [
            (f"{PREFIX}/location/irc", [("channel", "#matrix"), ("network", "libera")], f"Bearer {hs_token}")]

    assert await api.get("/thirdparty/user/irc", params={"nickname": "bob"}, token=token) == (200, [BRIDGE_GHOST])
    assert bridge.asked(f"{PREFIX}/user/irc")[0][1] == [("nickname", "bob")]
    assert second.asked(f"{PREFIX}/user/irc") and broken.asked(f"{PREFIX}/user/irc")
    # A protocol some service bridges but none finds anything in: an empty list.
    assert await api.get("/thirdparty/location/gitter", token=token) == (200, [])
    assert await api.get("/thirdparty/user/slack", token=token) == (200, [])
    for path in ("/thirdparty/location/matrix", "/thirdparty/user/matrix"):
        status, body = await api.get(path, token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path


async def test_reverse_lookups_ask_the_services_holding_the_name(api, services):
    bridge, second, broken = services
    token = await _user_token(api)
    alias = "#_bridge_libera_matrix:localhost"
    assert await api.get("/thirdparty/location", params={"alias": alias}, token=token) == (200, [BRIDGE_PORTAL])
    assert bridge.asked(f"{PREFIX}/location") == [(f"{PREFIX}/location", [("alias", alias)], f"Bearer {HS_TOKEN}")]
    user_id = "@_second_oftc_carol:localhost"
    assert await api.get("/thirdparty/user", params={"userid": user_id}, token=token) == (200, [SECOND_GHOST])
    assert second.asked(f"{PREFIX}/user") == [(f"{PREFIX}/user", [("userid", user_id)], "Bearer second-hs")]
    assert not second.asked(f"{PREFIX}/location") and not bridge.asked(f"{PREFIX}/user")
    assert not broken.asked(f"{PREFIX}/location") and not broken.asked(f"{PREFIX}/user")
    # A name no service holds: nobody is asked, nothing is found.
    assert await api.get("/thirdparty/location", params={"alias": "#elsewhere:localhost"}, token=token) == (200, [])
    assert await api.get("/thirdparty/user", params={"userid": "@alice:localhost"}, token=token) == (200, [])
    assert len(bridge.asked(f"{PREFIX}/location")) == 1 and not bridge.asked(f"{PREFIX}/user")
    for path in ("/thirdparty/location", "/thirdparty/user"):
        status, body = await api.get(path, token=token)
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM"), path


async def _names(api, token: str, body: dict | None = None, query: dict | None = None) -> list[str]:
    if query is None:
        status, page = await api.post("/publicRooms", body or {}, token=token)
    else:
        status, page = await api.get("/publicRooms", params=query)
    assert status == 200, page
    return sorted(entry["name"] for entry in page["chunk"])


async def test_network_directories(api):
    token = await _user_token(api)
    lobby = await api.create_room(token, name="Lobby", visibility="public")
    portal = await api.create_room(token, name="Portal")
    await api.create_room(token, name="Private")

    async def publish(network: str, room_id: str, visibility="public", as_token=AS_TOKEN) -> None:
        status, body = await api.put(f"/directory/list/appservice/{quote(network, safe='')}/{room_id}",
                                     {"visibility": visibility}, token=as_token)
        assert (status, body) == (200, {})

    await publish("libera", portal)
    await publish("libera", portal)  # idempotent
    await publish("oftc", portal, as_token="second-as")
    await publish("a|b", lobby)
    # The server's own list leaves the networks' rooms out, both ways.
    assert await _names(api, token) == ["Lobby"]
    assert await _names(api, token, query={}) == ["Lobby"]
    assert await _names(api, token, {"include_all_networks": True}) == ["Lobby", "Portal"]
    assert await _names(api, token, query={"include_all_networks": "true"}) == ["Lobby", "Portal"]
    assert await _names(api, token, {"third_party_instance_id": "bridge|libera"}) == ["Portal"]
    assert await _names(api, token, query={"third_party_instance_id": "second|oftc"}) == ["Portal"]
    assert await _names(api, token, {"third_party_instance_id": "bridge|a|b"}) == ["Lobby"]
    status, page = await api.post("/publicRooms", {"third_party_instance_id": "bridge|libera"}, token=token)
    assert page["total_room_count_estimate"] == 1 and page["chunk"][0]["room_id"] == portal
    # Networks are per service: the same network ID of another service, or an unknown
    # service or network, is an empty list.
    for instance in ("second|libera", "bridge|oftc", "nobody|libera", "bridge|"):
        assert await _names(api, token, {"third_party_instance_id": instance}) == [], instance

    await publish("libera", portal, "private")
    assert await _names(api, token, {"third_party_instance_id": "bridge|libera"}) == []
    assert await _names(api, token, {"include_all_networks": True}) == ["Lobby", "Portal"]  # still on oftc
    status, body = await api.delete(f"/directory/list/appservice/oftc/{portal}", token="second-as")
    assert (status, body) == (200, {})
    assert await _names(api, token, {"include_all_networks": True}) == ["Lobby"]
    assert await _names(api, token, {"third_party_instance_id": "second|oftc"}) == []
    # A network room unpublished from the server's own list stays in its network's.
    status, _ = await api.put(f"/directory/list/room/{lobby}", {"visibility": "private"}, token=token)
    assert status == 200
    assert await _names(api, token) == []
    assert await _names(api, token, {"third_party_instance_id": "bridge|a|b"}) == ["Lobby"]


async def test_network_directory_refusals(api):
    token = await _user_token(api)
    room_id = await api.create_room(token, name="Portal")
    path = f"/directory/list/appservice/libera/{room_id}"
    status, body = await api.put(path, {"visibility": "public"}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.delete(path, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.put(path, {"visibility": "public"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.put("/directory/list/appservice/libera/!nowhere:localhost", {"visibility": "public"},
                                 token=AS_TOKEN)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    for payload, errcode in (({"visibility": 5}, "M_BAD_JSON"), ({"visibility": ["public"]}, "M_BAD_JSON"),
                             ({"visibility": "hidden"}, "M_INVALID_PARAM"),
                             ({"visibility": "public\u0000"}, "M_INVALID_PARAM")):
        status, body = await api.put(path, payload, token=AS_TOKEN)
        assert (status, body["errcode"]) == (400, errcode), payload
    status, body = await api.put(path, data=b"{not json", token=AS_TOKEN, headers={"Content-Type": "application/json"})
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    for bad_path in ("/directory/list/appservice/lib%00era/" + room_id,
                     "/directory/list/appservice/libera/" + quote(room_id + "\u0000", safe="!:")):
        status, body = await api.put(bad_path, {"visibility": "public"}, token=AS_TOKEN)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad_path
    # An empty body publishes, as Synapse reads it.
    status, _ = await api.put(path, data=b"", token=AS_TOKEN)
    assert status == 200
    assert await _names(api, token, {"third_party_instance_id": "bridge|libera"}) == ["Portal"]

    for payload, errcode in (({"third_party_instance_id": "libera"}, "M_INVALID_PARAM"),
                             ({"third_party_instance_id": "bridge|libera", "include_all_networks": True},
                              "M_INVALID_PARAM"),
                             ({"third_party_instance_id": 7}, "M_BAD_JSON"),
                             ({"include_all_networks": "yes"}, "M_BAD_JSON"),
                             ({"third_party_instance_id": "bridge|lib\u0000era"}, "M_INVALID_PARAM")):
        status, body = await api.post("/publicRooms", payload, token=token)
        assert (status, body["errcode"]) == (400, errcode), payload
    for query in ({"include_all_networks": "maybe"}, {"third_party_instance_id": "libera"},
                  {"third_party_instance_id": "bridge|lib\u0000era"}):
        status, body = await api.get("/publicRooms", params=query)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query


def test_registration_protocols_are_checked():
    good = registration("http://127.0.0.1:9", protocols=["irc", "gitter", "irc"])
    assert parse_registration(good, "localhost", "bridge.yaml").protocols == ("irc", "gitter")
    assert parse_registration({**good, "protocols": None}, "localhost", "bridge.yaml").protocols == ()
    for protocols in ("irc", [""], [1], {"irc": True}):
        with pytest.raises(ConfigError, match="protocols"):
            parse_registration({**good, "protocols": protocols}, "localhost", "bridge.yaml")
