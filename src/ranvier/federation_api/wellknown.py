"""Server name delegation (server-server API, "Resolving server names")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/.well-known/matrix/server", versions=None)
async def well_known_server(request: web.Request) -> web.Response:
    """GET /.well-known/matrix/server: `m.server`, where other servers reach this server
    name (`federation.well_known_server`); 404 M_NOT_FOUND when it is not configured."""
    delegated = request.app[HOMESERVER].config.federation.well_known_server
    if not delegated:
        raise MatrixError("M_NOT_FOUND", "No server delegation is configured")
    response = json_response({"m.server": delegated})
    response.headers["Cache-Control"] = "max-age=86400"
    return response
