"""The content repository: upload and create under /_matrix/media, the authenticated
download, thumbnail, config and preview endpoints under /_matrix/client/v1/media, and
the deprecated unauthenticated /_matrix/media/v3 ones (only for media from before the
freeze date, see `media.unauthenticated_freeze_date`).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.media.service import Servable
from ranvier.media.sizes import METHODS
from ranvier.web.app import HOMESERVER, large_body
from ranvier.web.auth import requester
from ranvier.web.http import body_chunks, json_response
from ranvier.web.params import query_bool, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()

MEDIA_PREFIX = "/_matrix/media"
AUTHENTICATED = ("v1",)
DEFAULT_TIMEOUT_MS = 20_000
MAX_DIMENSION = 10_000

#: Served with every file: the content may never run as a page of this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}

#: The types the spec lists as safe to serve inline; everything else is an attachment.
INLINE_CONTENT_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave", "audio/wav",
    "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})

_THUMBNAIL_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


def media_route(method: str, path: str, versions: tuple[str, ...] = ("v3", "r0")):
    """Declare an endpoint under /_matrix/media/{version} (outside the client API prefix)."""

    def register(handler):
        for version in versions:
            routes.route(method, f"{MEDIA_PREFIX}/{version}{path}", versions=None)(handler)
        return handler

    return register


def safe_file_name(name: str) -> str:
    """The name without control or format characters, quotes or path separators."""
    kept = ("_" if char in '"\\/' else char for char in name if unicodedata.category(char)[0] != "C")
    return "".join(kept).strip()


def content_disposition(content_type: str, file_name: str | None, *, inline: bool | None = None) -> str:
    """inline for the spec's safe types, attachment otherwise; the name as RFC 6266 asks."""
    if inline is None:
        inline = content_type.split(";", 1)[0].strip().lower() in INLINE_CONTENT_TYPES
    kind = "inline" if inline else "attachment"
    name = safe_file_name(file_name) if file_name else ""
    if not name:
        return kind
    if all(" " <= char <= "~" for char in name):
        return f'{kind}; filename="{name}"'
    return f"{kind}; filename*=utf-8''{quote(name, safe='')}"


def _file_response(servable: Servable, disposition: str) -> web.FileResponse:
    headers = {**SECURITY_HEADERS, "Content-Type": servable.content_type, "Content-Disposition": disposition}
    return web.FileResponse(servable.path, headers=headers)


# -- uploads ---------------------------------------------------------------------------------


@media_route("POST", "/upload")
@large_body
async def upload(request: web.Request) -> web.Response:
    """POST /_matrix/media/v3/upload: store the body (streamed to disk; over
    `media.max_upload_bytes` 413 M_TOO_LARGE, before reading when Content-Length says so) and
    answer its `mxc://` URI; `filename` and Content-Type kept; per-user quota."""
    who = await requester(request)
    content_uri = await request.app[HOMESERVER].media.upload(
        who.user_id, body_chunks(request), content_length=request.content_length,
        content_type=request.headers.get("Content-Type"), upload_name=query_str(request, "filename"),
    )
    return json_response({"content_uri": content_uri})


@media_route("POST", "/create", versions=("v1",))
async def create(request: web.Request) -> web.Response:
    """POST /_matrix/media/v1/create: reserve an `mxc://` URI to upload to later
    (`unused_expires_at`); at most `media.max_pending_uploads` pending per user (429
    M_LIMIT_EXCEEDED)."""
    who = await requester(request)
    return json_response(await request.app[HOMESERVER].media.create(who.user_id))


@media_route("PUT", "/upload/{server_name}/{media_id}", versions=("v3",))
@large_body
async def upload_to(request: web.Request) -> web.Response:
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}: upload the content of a reserved URI;
    its creator only (403), once (409 M_CANNOT_OVERWRITE_MEDIA), before it expires (404). The
    answer names the URI again, as POST /upload's does: the spec's is an empty object, but
    mautrix-python's upload to a reserved URI reads `content_uri` from it and fails without."""
    who = await requester(request)
    server_name, media_id = request.match_info["server_name"], request.match_info["media_id"]
    await request.app[HOMESERVER].media.upload_to(
        who.user_id, server_name, media_id, body_chunks(request),
        content_length=request.content_length, content_type=request.headers.get("Content-Type"),
        upload_name=query_str(request, "filename"),
    )
    return json_response({"content_uri": f"mxc://{server_name}/{media_id}"})


# -- downloads and thumbnails ----------------------------------------------------------------------


async def _download(request: web.Request, *, legacy: bool) -> web.FileResponse:
    servable = await request.app[HOMESERVER].media.download(
        request.match_info["server_name"], request.match_info["media_id"],
        timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS), legacy=legacy,
    )
    file_name = request.match_info.get("file_name") or servable.upload_name
    return _file_response(servable, content_disposition(servable.content_type, file_name))


def _dimension(request: web.Request, name: str) -> int:
    query_str(request, name, required=True)
    return query_int(request, name, 0, minimum=1, maximum=MAX_DIMENSION)


async def _thumbnail(request: web.Request, *, legacy: bool) -> web.FileResponse:
    method = query_str(request, "method", default="scale")
    if method not in METHODS:
        raise MatrixError("M_INVALID_PARAM", "method must be crop or scale")
    servable = await request.app[HOMESERVER].media.thumbnail(
        request.match_info["server_name"], request.match_info["media_id"],
        _dimension(request, "width"), _dimension(request, "height"), method,
        animated=query_bool(request, "animated", False),
        timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS), legacy=legacy,
    )
    name = f"thumbnail.{_THUMBNAIL_EXTENSIONS.get(servable.content_type, 'png')}"
    return _file_response(servable, content_disposition(servable.content_type, name, inline=True))


@routes.get("/media/download/{server_name}/{media_id}", versions=AUTHENTICATED)
@routes.get("/media/download/{server_name}/{media_id}/{file_name}", versions=AUTHENTICATED)
async def download(request: web.Request) -> web.FileResponse:
    """GET /v1/media/download/{serverName}/{mediaId}[/{fileName}]: the content, with a safe
    Content-Disposition (inline only for the spec's safe types) and a sandboxing Content-
    Security-Policy; waits up to `timeout_ms` (at most 60 s) for a pending upload, then 504
    M_NOT_YET_UPLOADED; local media only. Guests too."""
    await requester(request, allow_guest=True)
    return await _download(request, legacy=False)


@routes.get("/media/thumbnail/{server_name}/{media_id}", versions=AUTHENTICATED)
async def thumbnail(request: web.Request) -> web.FileResponse:
    """GET /v1/media/thumbnail/{serverName}/{mediaId}: a thumbnail of at least `width` x `height`
    (`method` crop or scale, `animated`), made on demand from the spec's sizes and cached;
    images over `media.max_image_pixels` 413 M_TOO_LARGE. Guests too."""
    await requester(request, allow_guest=True)
    return await _thumbnail(request, legacy=False)


@media_route("GET", "/download/{server_name}/{media_id}")
@media_route("GET", "/download/{server_name}/{media_id}/{file_name}")
async def legacy_download(request: web.Request) -> web.FileResponse:
    """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (deprecated, no
    token): only media uploaded before `media.unauthenticated_freeze_date` (else 404);
    otherwise as the authenticated download."""
    return await _download(request, legacy=True)


@media_route("GET", "/thumbnail/{server_name}/{media_id}")
async def legacy_thumbnail(request: web.Request) -> web.FileResponse:
    """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (deprecated, no token): only
    media uploaded before `media.unauthenticated_freeze_date` (else 404); otherwise as the
    authenticated thumbnail."""
    return await _thumbnail(request, legacy=True)


# -- configuration and URL previews -----------------------------------------------------------


@routes.get("/media/config", versions=AUTHENTICATED)
@media_route("GET", "/config")
async def media_config(request: web.Request) -> web.Response:
    """GET /v1/media/config (and the deprecated /_matrix/media/v3/config): `m.upload.size`."""
    await requester(request)
    return json_response(request.app[HOMESERVER].media.public_config())


@routes.get("/media/preview_url", versions=AUTHENTICATED)
@media_route("GET", "/preview_url")
async def preview_url(request: web.Request) -> web.Response:
    """GET /v1/media/preview_url (and the deprecated /_matrix/media/v3/preview_url): OpenGraph data
    of a page when `media.url_preview.enabled` (else 404 M_UNRECOGNIZED); private and loopback
    addresses are never fetched (403)."""
    who = await requester(request)
    url = query_str(request, "url", required=True)
    return json_response(await request.app[HOMESERVER].media.preview_url(who.user_id, url))
