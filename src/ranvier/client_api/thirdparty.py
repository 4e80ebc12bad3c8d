"""Third-party networks: the lookups of bridged protocols (GET /thirdparty/...).

Protocols are provided by application services, and this server does not ask them for
theirs (it does not call the Application Service API's third-party lookups), so it knows
no protocol: the list is empty and every lookup answers as the spec says for an unknown
protocol or an unmatched query.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/thirdparty/protocols")
async def protocols(request: web.Request) -> web.Response:
    """GET /thirdparty/protocols: the protocols bridged by application services; always
    `{}` here, since the services are not asked for theirs."""
    await requester(request)
    return json_response({})


@routes.get("/thirdparty/protocol/{protocol}")
@routes.get("/thirdparty/location/{protocol}")
@routes.get("/thirdparty/user/{protocol}")
async def in_protocol(request: web.Request) -> web.Response:
    """GET /thirdparty/protocol/{protocol}, GET /thirdparty/location/{protocol}, GET
    /thirdparty/user/{protocol}: a protocol's metadata and lookups in it: 404 M_NOT_FOUND,
    no protocol is known."""
    await requester(request)
    raise MatrixError("M_NOT_FOUND", f"Unknown protocol {request.match_info['protocol']!r}: no bridge is registered")


@routes.get("/thirdparty/location")
@routes.get("/thirdparty/user")
async def reverse_lookup(request: web.Request) -> web.Response:
    """GET /thirdparty/location?alias=, GET /thirdparty/user?userid=: which third-party
    locations or users a Matrix alias or user ID is bridged to: 404 M_NOT_FOUND, nothing is
    bridged."""
    await requester(request)
    raise MatrixError("M_NOT_FOUND", "Nothing on this server is bridged to a third-party network")
