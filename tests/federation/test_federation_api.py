"""The server-server API's refusals and rules: signatures, body limits, membership
handshakes that are not what they claim, server ACLs, queries, keys, well-known."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from federation_support import eventually, signed
from ranvier.events.signing import SigningKey
from ranvier.federation.client import Unreachable, path_segment
from ranvier.federation.request_auth import authorization_header

FED = "/_matrix/federation"


async def raw(a, method: str, path: str, *, headers: dict | None = None, body: bytes | None = None):
    """A request straight to a's TLS listener (no signature unless given)."""
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"https://127.0.0.1:{a.tls_port}{path}", headers=headers or {},
                                   data=body, ssl=False) as answer:
            text = await answer.read()
            return answer.status, (orjson.loads(text) if text else {})


async def test_requests_must_be_signed_by_their_origin_for_this_server(pair):
    a, b = pair
    path = f"{FED}/v1/event/$unknown"
    status, body = await raw(a, "GET", path)
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    forged = authorization_header(b.name, a.name, SigningKey.generate(b.hs.signing_key.version), "GET", path, None)
    status, body = await raw(a, "GET", path, headers={"Authorization": forged})
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    elsewhere = authorization_header(b.name, "elsewhere.test", b.hs.signing_key, "GET", path, None)
    status, body = await raw(a, "GET", path, headers={"Authorization": elsewhere})
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    genuine = authorization_header(b.name, a.name, b.hs.signing_key, "GET", path, None)
    status, body = await raw(a, "GET", path, headers={"Authorization": genuine})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_a_server_without_federation_answers_none_of_it(api):
    for path in ("/_matrix/federation/v1/version", "/_matrix/key/v2/server", "/.well-known/matrix/server"):
        status, body = await api.get(path)
        assert status == 404 and body["errcode"] in ("M_UNRECOGNIZED", "M_NOT_FOUND"), (path, body)


async def test_transactions_refuse_what_is_not_one(pair):
    a, b = pair
    path = f"{FED}/v1/send/t1"
    status, body = await signed(b, a, "PUT", path, {"origin": b.name, "pdus": [{}] * 51, "edus": []})
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    status, body = await signed(b, a, "PUT", path, {"origin": b.name, "pdus": "no", "edus": []})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await signed(b, a, "PUT", path, {"origin": "someone.else", "pdus": [], "edus": []})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    garbage = authorization_header(b.name, a.name, b.hs.signing_key, "PUT", path, None)
    status, body = await raw(a, "PUT", path, headers={"Authorization": garbage}, body=b"not json")
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    status, body = await signed(b, a, "PUT", f"{FED}/v1/send/t2",
                                {"origin": b.name, "pdus": [{"room_id": "!nowhere:x", "type": "m.room.message"}],
                                 "edus": [{"edu_type": "m.typing", "content": "bad"}]})
    assert status == 200 and all("error" in result for result in body["pdus"].values())


async def test_membership_handshakes_check_what_they_are_given(pair):
    a, b = pair
    alice = await a.user("alice")
    room_id = await a.api.create_room(alice["access_token"], preset="public_chat", room_version="11")
    room = path_segment(room_id)
    status, body = await signed(b, a, "GET", f"{FED}/v1/make_join/{room}/{path_segment(alice['user_id'])}")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # not one of b's users
    bob = f"@bob:{b.name}"
    status, body = await signed(b, a, "GET", f"{FED}/v1/make_join/{room}/{path_segment(bob)}", query={"ver": ["1"]})
    assert (status, body["errcode"]) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert body["room_version"] == "11"
    status, body = await signed(b, a, "GET", f"{FED}/v1/make_join/{path_segment('!no:where')}/{path_segment(bob)}")
    assert status == 404
    status, template = await signed(b, a, "GET", f"{FED}/v1/make_join/{room}/{path_segment(bob)}",
                                    query={"ver": ["10", "11"]})
    assert status == 200 and template["room_version"] == "11"
    assert template["event"]["type"] == "m.room.member" and template["event"]["content"]["membership"] == "join"
    message = dict(template["event"], type="m.room.message", content={"body": "not a join"})
    status, body = await signed(b, a, "PUT", f"{FED}/v2/send_join/{room}/{path_segment('$x')}", message)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await signed(b, a, "PUT", f"{FED}/v2/invite/{room}/{path_segment('$x')}",
                                {"room_version": "11", "event": {"type": "m.room.member"}, "invite_room_state": []})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await signed(b, a, "PUT", f"{FED}/v2/invite/{room}/{path_segment('$x')}",
                                {"room_version": "99", "event": {}, "invite_room_state": []})
    assert (status, body["errcode"]) == (400, "M_INCOMPATIBLE_ROOM_VERSION")


async def test_a_server_the_acl_denies_takes_no_part(pair):
    a, b = pair
    alice, bob = await a.user("alice"), await b.user("bob")
    room_id = await a.api.create_room(alice["access_token"], preset="public_chat")
    status, _ = await b.api.post(f"/join/{room_id}", {}, token=bob["access_token"], params={"via": a.name})
    assert status == 200
    acl = {"allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": True}
    status, _ = await a.api.put(f"/rooms/{room_id}/state/m.room.server_acl", acl, token=alice["access_token"])
    assert status == 200
    await eventually(lambda: _acl_arrived(b, room_id))
    status, body = await b.api.put(f"/rooms/{room_id}/send/m.room.message/t1", {"msgtype": "m.text", "body": "denied"},
                                   token=bob["access_token"])
    assert status == 200  # b takes it; a refuses it
    head = await a.hs.rooms.head(room_id)
    status, body = await signed(b, a, "GET", f"{FED}/v1/state_ids/{path_segment(room_id)}",
                                query={"event_id": head.latest_event_id})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    bodies = [e.content.get("body") for e in (await a.hs.rooms.store.get_events(
        [row[0] for row in await a.hs.db.fetchall("SELECT event_id FROM events WHERE room_id = ?", room_id)])).values()]
    assert "denied" not in bodies


async def _acl_arrived(server, room_id):
    head = await server.hs.rooms.head(room_id)
    return ("m.room.server_acl", "") in head.state


async def test_queries_of_profiles_aliases_and_keys(pair):
    a, b = pair
    alice = await a.user("alice")
    await a.api.put(f"/profile/{alice['user_id']}/displayname", {"displayname": "Alice A."},
                    token=alice["access_token"])
    status, body = await signed(b, a, "GET", f"{FED}/v1/query/profile", query={"user_id": alice["user_id"]})
    assert (status, body) == (200, {"displayname": "Alice A."})
    status, body = await signed(b, a, "GET", f"{FED}/v1/query/profile", query={"user_id": f"@nobody:{a.name}"})
    assert status == 404
    status, body = await signed(b, a, "GET", f"{FED}/v1/query/profile",
                                query={"user_id": alice["user_id"], "field": "password"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    bob = await b.user("bob")
    status, body = await b.api.get(f"/profile/{alice['user_id']}", token=bob["access_token"])
    assert (status, body.get("displayname")) == (200, "Alice A.")

    room_id = await a.api.create_room(alice["access_token"], preset="public_chat", room_alias_name="lobby")
    alias = f"#lobby:{a.name}"
    status, body = await signed(b, a, "GET", f"{FED}/v1/query/directory", query={"room_alias": alias})
    assert (status, body["room_id"], body["servers"][0]) == (200, room_id, a.name)
    status, body = await b.api.get(f"/directory/room/{path_segment(alias)}", token=bob["access_token"])
    assert (status, body["room_id"]) == (200, room_id)
    status, joined = await b.api.post(f"/join/{path_segment(alias)}", {}, token=bob["access_token"])
    assert (status, joined.get("room_id")) == (200, room_id)

    status, body = await signed(b, a, "POST", "/_matrix/key/v2/query", {"server_keys": {b.name: {}}})
    assert status == 200
    (answer,) = body["server_keys"]
    assert answer["server_name"] == b.name and set(answer["signatures"]) == {a.name, b.name}


async def test_well_known_delegation_is_served_when_configured(start_federated):
    server = await start_federated("w", federation={"enabled": True, "verify_certificates": False,
                                                    "well_known_server": "matrix.example.org:443"})
    status, body = await server.api.get("/.well-known/matrix/server")
    assert (status, body) == (200, {"m.server": "matrix.example.org:443"})


@pytest.mark.parametrize("path,query", [
    (f"{FED}/v1/backfill/!r:x", None),
    (f"{FED}/v1/timestamp_to_event/!r:x", {"ts": "1", "dir": "sideways"}),
    (f"{FED}/v1/state_ids/!r:x", None),
])
async def test_reads_with_missing_or_bad_parameters_are_400(pair, path, query):
    a, b = pair
    status, body = await signed(b, a, "GET", path, query=query)
    assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM")


async def test_keys_of_other_servers_users_are_not_served(pair):
    a, b = pair
    status, body = await signed(b, a, "POST", f"{FED}/v1/user/keys/query", {"device_keys": {f"@x:{b.name}": []}})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await signed(b, a, "GET", f"{FED}/v1/user/devices/{path_segment(f'@x:{b.name}')}")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize("path,query", [
    (f"{FED}/v1/event/{path_segment(chr(0))}", None),
    (f"{FED}/v1/state_ids/{path_segment('!r' + chr(0) + ':x')}", {"event_id": "$e"}),
    (f"{FED}/v1/query/profile", {"user_id": f"@a{chr(0)}:x"}),
    (f"{FED}/v1/query/directory", {"room_alias": f"#a{chr(0)}:x"}),
])
async def test_nul_characters_are_refused_not_500(pair, path, query):
    a, b = pair
    status, body = await signed(b, a, "GET", path, query=query)
    assert 400 <= status < 500, body


async def test_servers_on_private_addresses_are_not_reached_unless_allowed(pair, start_federated):
    a, _ = pair
    closed = await start_federated("closed", outbound={"allowed_networks": []})
    with pytest.raises(Unreachable):
        await closed.hs.federation.client.get(a.name, f"{FED}/v1/version")
    alice = await closed.user("alice")
    status, body = await closed.api.post("/join/!room:" + a.name, {}, token=alice["access_token"],
                                         params={"via": a.name})
    assert status in (403, 404) and body["errcode"] in ("M_FORBIDDEN", "M_NOT_FOUND")
