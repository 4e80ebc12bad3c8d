"""Invites of this server's users by other servers (server-server API, "Inviting to a room")."""

from __future__ import annotations

from aiohttp import web

from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.web.app import large_body
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.put(f"{FEDERATION}/v2/invite/{{room_id}}/{{event_id}}", versions=None)
@large_body
async def invite(request: web.Request) -> web.Response:
    """PUT /_matrix/federation/v2/invite/{roomId}/{eventId}: countersign an invite of a local
    user sent by one of the origin's users (400 M_BAD_JSON for anything else, 400
    M_INCOMPATIBLE_ROOM_VERSION for a version this server lacks, 404 for an unknown user,
    403 for a blocked room or a server the room's ACL denies); the invitee sees it in
    their next /sync, with the `invite_room_state` given."""
    origin, body = await signed_request(request)
    return json_response(await federation(request).memberships.receive_invite(
        origin, request.match_info["room_id"], request.match_info["event_id"], body))
