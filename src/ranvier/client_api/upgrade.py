"""Room upgrades: POST /rooms/{roomId}/upgrade."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.rooms.upgrade import upgrade_room
from ranvier.rooms.upgrade_settings import carry_over_member_settings
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import refuse_if_suspended, requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/rooms/{room_id}/upgrade")
async def upgrade(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/upgrade: replace a room by a new one of `new_version`, for
    members who may send the tombstone; suspended accounts 403 M_USER_SUSPENDED (an
    upgrade creates and joins a room). The old room's local members keep their tags,
    direct chats and push rules in the new room."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    refuse_if_suspended(who, "upgrade rooms")
    body = await read_json(request)
    new_version = field(body, "new_version", str, required=True)
    additional_creators = field(body, "additional_creators", list)
    if additional_creators is not None and not all(isinstance(user, str) for user in additional_creators):
        raise MatrixError("M_BAD_JSON", "additional_creators must hold user IDs")
    hs.limits.join.check(who.user_id)
    room_id = request.match_info["room_id"]
    new_room_id = await upgrade_room(hs.rooms, who.user_id, room_id, new_version,
                                     additional_creators=additional_creators)
    await carry_over_member_settings(hs.rooms, hs.account_data, hs.push, room_id, new_room_id)
    return json_response({"replacement_room": new_room_id})
