"""The client-server endpoints reserved to application services (bridges and bots with an
`as_token`): the connectivity ping, and the room directory of a third-party network
(not served: this server keeps no per-network directories).
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


@routes.put("/directory/list/appservice/{network_id}/{room_id}")
async def set_network_directory_visibility(request: web.Request) -> web.Response:
    """PUT /directory/list/appservice/{networkId}/{roomId}: publish a room in a bridged
    network's directory. 403 M_FORBIDDEN for any token but an application service's; a
    service gets 404 M_UNRECOGNIZED, since this server keeps no per-network directories
    (its rooms go in the server's own directory through /directory/list/room)."""
    who = await requester(request)
    if who.app_service is None:
        raise MatrixError("M_FORBIDDEN", NOT_AN_APPLICATION_SERVICE)
    raise MatrixError("M_UNRECOGNIZED", "This server keeps no per-network room directories")


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
