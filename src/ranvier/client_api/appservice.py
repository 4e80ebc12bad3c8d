"""The client-server endpoints reserved to application services (bridges and bots with an
`as_token`): the room directory of a third-party network, and the connectivity ping.

No application service is registered on this server, so no access token can belong to
one: both answer 403 M_FORBIDDEN to every authenticated caller, as the spec says for a
token that is not an application service's.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.auth import requester
from ranvier.web.routing import Routes

routes = Routes()

NOT_AN_APPLICATION_SERVICE = "Only application services may call this, and none is registered on this server"


@routes.put("/directory/list/appservice/{network_id}/{room_id}")
async def set_network_directory_visibility(request: web.Request) -> web.Response:
    """PUT /directory/list/appservice/{networkId}/{roomId}: publish a room in a bridged
    network's directory. Application services only: 403 M_FORBIDDEN for any user token."""
    await requester(request)
    raise MatrixError("M_FORBIDDEN", NOT_AN_APPLICATION_SERVICE)


@routes.post("/appservice/{appservice_id}/ping", versions=("v1",))
async def ping(request: web.Request) -> web.Response:
    """POST /v1/appservice/{appserviceId}/ping: an application service checks that the
    homeserver reaches it. 403 M_FORBIDDEN for any token that is not that service's, which
    here is every token."""
    await requester(request)
    raise MatrixError("M_FORBIDDEN", NOT_AN_APPLICATION_SERVICE)
