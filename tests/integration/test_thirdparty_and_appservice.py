"""Third-party lookups and the application-service-only endpoints, on a server with no
application service registered; the OAuth 2.0 and policy server discovery answers."""

from __future__ import annotations

import pytest


async def test_no_protocol_is_known(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    assert await api.get("/thirdparty/protocols", token=token) == (200, {})
    for path in ("/thirdparty/protocol/irc", "/thirdparty/location/irc", "/thirdparty/user/irc"):
        status, body = await api.get(path, token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path
    # Reverse lookups: nothing is bridged, so nothing is found (Synapse's answer).
    assert await api.get("/thirdparty/location?alias=%23a:localhost", token=token) == (200, [])
    assert await api.get("/thirdparty/user?userid=@a:localhost", token=token) == (200, [])


async def test_thirdparty_needs_a_token(api):
    status, body = await api.get("/thirdparty/protocols")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_application_service_endpoints_refuse_user_tokens(api):
    (alice,) = await api.register_all("alice")
    room_id = await api.create_room(alice["access_token"])
    status, body = await api.put(f"/directory/list/appservice/irc/{room_id}", {"visibility": "public"},
                                 token=alice["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.post("/_matrix/client/v1/appservice/bridge/ping", {}, token=alice["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, _ = await api.get("/directory/list/room/" + room_id)
    assert status == 200


@pytest.mark.parametrize("path, errcode", [("/_matrix/client/v1/auth_metadata", "M_UNRECOGNIZED"),
                                           ("/.well-known/matrix/policy_server", "M_NOT_FOUND")])
async def test_discovery_of_what_is_not_offered(api, path, errcode):
    status, body = await api.get(path)
    assert (status, body["errcode"]) == (404, errcode)
