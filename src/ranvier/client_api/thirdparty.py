"""Third-party networks: the protocols the application services bridge, and lookups of
locations and users in them (GET /thirdparty/...), asked of the services (see
appservice/thirdparty.py). A service that fails or answers garbage is left out of the
answer, never an error; a protocol no registration names is 404 M_NOT_FOUND.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.appservice.thirdparty import LOCATION, USER
from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.params import query_str
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/thirdparty/protocols")
async def protocols(request: web.Request) -> web.Response:
    """GET /thirdparty/protocols: each protocol the registrations name (`protocols`), with
    the metadata its services answer: their `instances` merged, each given an `instance_id`
    unique on this server (for `/publicRooms`' `third_party_instance_id`). A protocol no
    service answered for is left out; `{}` when none is bridged."""
    await requester(request)
    return json_response(await request.app[HOMESERVER].thirdparty.protocols())


@routes.get("/thirdparty/protocol/{protocol}")
async def protocol(request: web.Request) -> web.Response:
    """GET /thirdparty/protocol/{protocol}: one protocol's metadata, as in /thirdparty/protocols;
    404 M_NOT_FOUND when no registration names it or none of its services answered."""
    await requester(request)
    name = request.match_info["protocol"]
    found = await request.app[HOMESERVER].thirdparty.protocols(only=name)
    if name not in found:
        raise MatrixError("M_NOT_FOUND", f"Unknown protocol {name!r}: no bridge answers for it")
    return json_response(found[name])


async def _lookup(request: web.Request, kind: str) -> web.Response:
    hs = request.app[HOMESERVER]
    await requester(request)
    name = request.match_info["protocol"]
    if not hs.thirdparty.bridging(name):
        raise MatrixError("M_NOT_FOUND", f"Unknown protocol {name!r}: no bridge is registered for it")
    query = [(key, value) for key, value in request.query.items() if key != "access_token"]
    return json_response(await hs.thirdparty.lookup(kind, name, query))


@routes.get("/thirdparty/location/{protocol}")
async def locations(request: web.Request) -> web.Response:
    """GET /thirdparty/location/{protocol}: the portal rooms of third-party locations matching
    the query's fields, asked of every service bridging the protocol with the same query
    (`access_token` left out); their valid entries together, `[]` when none matched. 404
    M_NOT_FOUND for a protocol no registration names."""
    return await _lookup(request, LOCATION)


@routes.get("/thirdparty/user/{protocol}")
async def users(request: web.Request) -> web.Response:
    """GET /thirdparty/user/{protocol}: the Matrix users of third-party users matching the
    query's fields, asked as /thirdparty/location/{protocol} asks. 404 M_NOT_FOUND for a
    protocol no registration names."""
    return await _lookup(request, USER)


@routes.get("/thirdparty/location")
async def locations_of_alias(request: web.Request) -> web.Response:
    """GET /thirdparty/location?alias=: the third-party locations a Matrix room alias is
    bridged to, asked of the services with protocols whose namespaces hold the alias; `[]`
    when none says. 400 M_MISSING_PARAM without `alias`."""
    await requester(request)
    alias = query_str(request, "alias", required=True)
    return json_response(await request.app[HOMESERVER].thirdparty.reverse_lookup(LOCATION, alias))


@routes.get("/thirdparty/user")
async def users_of_user_id(request: web.Request) -> web.Response:
    """GET /thirdparty/user?userid=: the third-party users a Matrix user ID is bridged to,
    asked of the services with protocols whose namespaces hold the user; `[]` when none
    says. 400 M_MISSING_PARAM without `userid`."""
    await requester(request)
    user_id = query_str(request, "userid", required=True)
    return json_response(await request.app[HOMESERVER].thirdparty.reverse_lookup(USER, user_id))
