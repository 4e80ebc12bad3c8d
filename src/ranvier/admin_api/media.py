"""Admin API: local media, as Synapse's media admin API shapes it: details, deletion by ID
or by age and size, quarantine (media no longer served) and protection from it.

Remote media does not exist on this server yet: a remote server name is 400.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.admin_api.common import SYNAPSE_ADMIN, AdminRoutes, existing_user
from ranvier.errors import MatrixError
from ranvier.events.identifiers import MEDIA_ID_RE
from ranvier.media.store import Media
from ranvier.requester import Requester
from ranvier.users.tokens import now_ms
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import query_bool, query_int

routes = AdminRoutes()

V1 = f"{SYNAPSE_ADMIN}/v1"


def media_json(media: Media) -> dict[str, Any]:
    """One media item as Synapse's admin API lists it."""
    return {"media_id": media.media_id, "created_ts": media.created_ts, "last_access_ts": None,
            "media_length": media.size, "media_type": media.content_type, "upload_name": media.upload_name,
            "quarantined_by": media.quarantined_by, "safe_from_quarantine": media.safe_from_quarantine}


async def _local_media(request: web.Request) -> Media:
    hs = request.app[HOMESERVER]
    if request.match_info["server_name"] != hs.config.server_name:
        raise MatrixError("M_INVALID_PARAM", "Only local media can be administered here")
    media_id = request.match_info["media_id"]
    media = await hs.media.store.get_media(media_id) if MEDIA_ID_RE.fullmatch(media_id) else None
    if media is None:
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    return media


@routes.get(f"{V1}/media/{{server_name}}/{{media_id}}")
async def media_info(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/media/{serverName}/{mediaId}: one medium's details and uploader."""
    media = await _local_media(request)
    return json_response({"media_info": {**media_json(media), "user_id": media.user_id}})


@routes.delete(f"{V1}/media/{{server_name}}/{{media_id}}")
async def delete_media(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}: delete it, with its file and
    thumbnails unless other media share the same bytes (404 for unknown media)."""
    media = await _local_media(request)
    await request.app[HOMESERVER].media.delete([media.media_id])
    return json_response({"deleted_media": [media.media_id], "total": 1})


@routes.post(f"{V1}/media/delete")
async def delete_old_media(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/media/delete?before_ts=: delete local media created before
    `before_ts` (required, milliseconds, not in the future), larger than `size_gt` bytes
    (default 0), sparing media protected from quarantine and, unless `keep_profiles` is
    false, media used as an avatar."""
    hs = request.app[HOMESERVER]
    if "before_ts" not in request.query:
        raise MatrixError("M_MISSING_PARAM", "Missing required query parameter: before_ts")
    before_ts = query_int(request, "before_ts", 0, maximum=2**62)
    if before_ts > now_ms():
        raise MatrixError("M_INVALID_PARAM", "before_ts must not be in the future")
    size_gt = query_int(request, "size_gt", 0, maximum=2**62)
    keep = set()
    if query_bool(request, "keep_profiles", True):
        prefix = f"mxc://{hs.config.server_name}/"
        keep = {url[len(prefix):] for url in await hs.user_admin.avatar_media_urls() if url.startswith(prefix)}
    media_ids = [m.media_id for m in await hs.media.store.media_older_than(before_ts, size_gt)
                 if m.media_id not in keep]
    await hs.media.delete(media_ids)
    return json_response({"deleted_media": media_ids, "total": len(media_ids)})


@routes.post(f"{V1}/media/quarantine/{{server_name}}/{{media_id}}")
async def quarantine(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}: stop serving it
    (downloads and thumbnails answer 404); protected media are left alone. Idempotent."""
    media = await _local_media(request)
    await request.app[HOMESERVER].media.store.set_quarantined([media.media_id], admin.user_id)
    return json_response({})


@routes.post(f"{V1}/media/unquarantine/{{server_name}}/{{media_id}}")
async def unquarantine(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}: serve it again."""
    media = await _local_media(request)
    await request.app[HOMESERVER].media.store.set_quarantined([media.media_id], None)
    return json_response({})


@routes.post(f"{V1}/user/{{user_id}}/media/quarantine")
async def quarantine_user_media(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/user/{userId}/media/quarantine: quarantine every upload of
    the user (protected media excepted); answers how many."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    count = await hs.media.store.set_quarantined(await hs.media.store.media_ids_of_user(account.user_id),
                                                 admin.user_id)
    return json_response({"num_quarantined": count})


async def _protect(request: web.Request, protected: bool) -> web.Response:
    hs = request.app[HOMESERVER]
    media_id = request.match_info["media_id"]
    if not MEDIA_ID_RE.fullmatch(media_id) or not await hs.media.store.set_protected(media_id, protected):
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    return json_response({})


@routes.post(f"{V1}/media/protect/{{media_id}}")
async def protect(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/media/protect/{mediaId}: never quarantine (nor delete by age) it."""
    return await _protect(request, True)


@routes.post(f"{V1}/media/unprotect/{{media_id}}")
async def unprotect(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/media/unprotect/{mediaId}: lift the protection."""
    return await _protect(request, False)
