"""Mutual rooms (Matrix 1.19, MSC2666): the rooms the caller shares with another user."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_user_id
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.params import query_str
from ranvier.web.routing import Routes

routes = Routes()

#: Rooms per answer; `next_batch` continues after the last one.
BATCH = 100


def _token(room_id: str) -> str:
    return base64.urlsafe_b64encode(room_id.encode()).decode().rstrip("=")


def _after(token: str) -> str:
    try:
        room_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MatrixError("M_INVALID_PARAM", "from is not a batch token of this endpoint") from None
    if not room_id.startswith("!"):
        raise MatrixError("M_INVALID_PARAM", "from is not a batch token of this endpoint")
    return room_id


@routes.get("/mutual_rooms", versions=("v1",))
@routes.get("/user/mutual_rooms", versions=("v1",))
async def mutual_rooms(request: web.Request) -> web.Response:
    """GET /v1/mutual_rooms (the spec's path; also /v1/user/mutual_rooms, MSC2666's):
    the rooms both the caller and `user_id` are joined to, by room ID, in batches of
    100 (`next_batch`, given back as `from`, or `batch_token` as in MSC2666), with the
    total `count`. `user_id` missing is 400 `M_MISSING_PARAM`; not a user ID, or the
    caller's own, 400 `M_INVALID_PARAM`; a user that does not exist shares no room.
    Tokens name the last room returned, so they never expire."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    other = query_str(request, "user_id", required=True)
    if not is_valid_user_id(other):
        raise MatrixError("M_INVALID_PARAM", "user_id is not a user ID")
    if other == who.user_id:
        raise MatrixError("M_INVALID_PARAM", "user_id must be another user than yourself")
    batch_token = query_str(request, "from") or query_str(request, "batch_token")
    after = _after(batch_token) if batch_token else None
    mine = await hs.rooms.user_memberships(who.user_id)
    theirs = await hs.rooms.user_memberships(other)
    shared = sorted(room_id for room_id, (membership, _) in mine.items()
                    if membership == "join" and theirs.get(room_id, ("",))[0] == "join")
    remaining = [room_id for room_id in shared if after is None or room_id > after]
    response = {"joined": remaining[:BATCH], "count": len(shared)}
    if len(remaining) > BATCH:
        response["next_batch"] = _token(remaining[BATCH - 1])
    return json_response(response)
