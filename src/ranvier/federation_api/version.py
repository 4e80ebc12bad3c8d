"""The server's name and version for other servers (server-server API, "Server implementation")."""

from __future__ import annotations

from aiohttp import web

from ranvier import __version__
from ranvier.federation_api.common import FEDERATION, federation
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/version", versions=None)
async def version(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/version: `ranvier` and its version; no signature needed."""
    federation(request)
    return json_response({"server": {"name": "ranvier", "version": __version__}})
