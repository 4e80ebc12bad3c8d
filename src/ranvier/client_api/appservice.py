"""The client-server endpoints reserved to application services (bridges and bots with an
`as_token`): the connectivity ping, and the room directories of third-party networks.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()

NOT_AN_APPLICATION_SERVICE = "Only application services may call this"


async def _set_network_visibility(request: web.Request, visibility: str | None) -> web.Response:
    hs = request.app[HOMESERVER]
    who = await requester(request)
    if who.app_service is None:
        raise MatrixError("M_FORBIDDEN", NOT_AN_APPLICATION_SERVICE)
    if visibility is None:
        body = await read_json(request, allow_empty=True)
        visibility = field(body, "visibility", str, default="public")
    await hs.directory.set_network_visibility(who.app_service, request.match_info["network_id"],
                                              request.match_info["room_id"], visibility)
    return json_response({})


@routes.put("/directory/list/appservice/{network_id}/{room_id}")
async def set_network_directory_visibility(request: web.Request) -> web.Response:
    """PUT /directory/list/appservice/{networkId}/{roomId}: an application service publishes
    (`visibility: public`, the default) or hides (`private`) a room in the directory of its
    network `networkId`, the list `/publicRooms` shows for the instance ID
    `{service ID}|{networkId}` (and with `include_all_networks`), not the server's own. 403
    M_FORBIDDEN for any token but an application service's; 400 M_BAD_JSON for a
    visibility that is not a string, M_INVALID_PARAM for another string; 404 M_NOT_FOUND
    for a room this server does not know. Idempotent."""
    return await _set_network_visibility(request, None)


@routes.delete("/directory/list/appservice/{network_id}/{room_id}")
async def remove_from_network_directory(request: web.Request) -> web.Response:
    """DELETE /directory/list/appservice/{networkId}/{roomId}: as PUT with `visibility:
    private` (Synapse serves it; the spec has only PUT)."""
    return await _set_network_visibility(request, "private")


@routes.post("/appservice/{appservice_id}/ping", versions=("v1",))
async def ping(request: web.Request) -> web.Response:
    """POST /v1/appservice/{appserviceId}/ping: an application service checks that the
    homeserver reaches it: the server posts `transaction_id` (if given) to the service's
    `/_matrix/app/v1/ping` and answers how long that took (`duration_ms`). 403 M_FORBIDDEN
    for any token that is not that service's; M_URL_NOT_SET for a service without a URL;
    502 M_BAD_STATUS (with the service's `status` and `body`) or M_CONNECTION_FAILED, 504
    M_CONNECTION_TIMEOUT when the service cannot be reached."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    service = hs.appservices.by_id(request.match_info["appservice_id"])
    if service is None or who.app_service != service.id:
        raise MatrixError("M_FORBIDDEN", "Only this application service may ping itself")
    body = await read_json(request, allow_empty=True)
    duration_ms = await hs.appservices.ping(service, field(body, "transaction_id", str))
    return json_response({"duration_ms": duration_ms})
