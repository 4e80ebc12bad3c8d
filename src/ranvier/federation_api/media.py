"""This server's media for other servers (server-server API, "Content Repository"): the
answer is multipart, JSON metadata (none: `{}`) then the bytes."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ranvier.client_api.media import (DEFAULT_TIMEOUT_MS, MAX_DIMENSION, SECURITY_HEADERS, content_disposition)
from ranvier.errors import MatrixError
from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.media.service import Servable
from ranvier.media.sizes import METHODS
from ranvier.web.app import HOMESERVER
from ranvier.web.params import query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()


def _multipart(servable: Servable, disposition: str) -> web.Response:
    writer = aiohttp.MultipartWriter("mixed")
    writer.append_json({})
    writer.append(open(servable.path, "rb"), {"Content-Type": servable.content_type,  # noqa: SIM115 (closed once sent)
                                              "Content-Disposition": disposition})
    return web.Response(body=writer, headers=SECURITY_HEADERS)


@routes.get(f"{FEDERATION}/v1/media/download/{{media_id}}", versions=None)
async def download(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/media/download/{mediaId}: this server's media (waiting up to
    `timeout_ms` for a pending upload, then 504 M_NOT_YET_UPLOADED); 404 when unknown or
    quarantined."""
    await signed_request(request)
    hs = request.app[HOMESERVER]
    servable = await hs.media.download(federation(request).server_name, request.match_info["media_id"],
                                       timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS), legacy=False)
    return _multipart(servable, content_disposition(servable.content_type, servable.upload_name))


@routes.get(f"{FEDERATION}/v1/media/thumbnail/{{media_id}}", versions=None)
async def thumbnail(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/media/thumbnail/{mediaId}?width=&height=&method=: a
    thumbnail of this server's media, as the client API makes them (400 for a missing size
    or an unknown method)."""
    await signed_request(request)
    method = query_str(request, "method", default="scale")
    if method not in METHODS:
        raise MatrixError("M_INVALID_PARAM", "method must be crop or scale")
    sizes = []
    for name in ("width", "height"):
        query_str(request, name, required=True)
        sizes.append(query_int(request, name, 0, minimum=1, maximum=MAX_DIMENSION))
    servable = await request.app[HOMESERVER].media.thumbnail(
        federation(request).server_name, request.match_info["media_id"], sizes[0], sizes[1], method,
        animated=query_bool(request, "animated", False),
        timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS), legacy=False)
    return _multipart(servable, content_disposition(servable.content_type, "thumbnail", inline=True))
