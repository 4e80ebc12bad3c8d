"""Room members of the draft: PUT/GET/DELETE /rooms/$room_id/members/$user_id/state
(join, invite, leave) and GET /rooms/$room_id/members/list."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.model import MEMBER
from ranvier.legacy_api.forms import DRAFT_MEMBERSHIP, member, member_content
from ranvier.legacy_api.ids import resolve_room, room_to_draft, user_from_draft
from ranvier.legacy_api.pagination import index_page, page_request
from ranvier.legacy_api.routing import DraftRoutes, done
from ranvier.rooms.service import RoomHead
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field

routes = DraftRoutes()


async def _room_and_user(request: web.Request) -> tuple[str, str]:
    hs = request.app[HOMESERVER]
    user_id = user_from_draft(request.match_info["user_id"], hs.config.server_name)
    return await resolve_room(hs.rooms, request.match_info["room_id"]), user_id


def _check_reader(head: RoomHead, user_id: str) -> None:
    """Members see who is in a room; anyone may look into a world-readable room."""
    if user_id in head.joined:
        return
    visibility = head.state.get(("m.room.history_visibility", ""))
    if visibility is None or visibility.content.get("history_visibility") != "world_readable":
        raise MatrixError("M_FORBIDDEN", "You are not a member of this room")


@routes.put("/rooms/{room_id}/members/{user_id}/state")
async def set_membership(request: web.Request) -> web.Response:
    """PUT .../members/$user_id/state {membership}: "join" joins the caller (only oneself;
    the room's join rule decides), "invite" invites $user_id (the room's power levels
    decide). Joining twice is harmless."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    membership = field(body, "membership", str, required=True)
    room_id, user_id = await _room_and_user(request)
    if membership == "join":
        if user_id != who.user_id:
            raise MatrixError("M_FORBIDDEN", "You can only join a room yourself")
        hs.limits.join.check(who.user_id)
        await hs.rooms.join(who.user_id, room_id)
    elif membership == "invite":
        await hs.rooms.update_membership(who.user_id, room_id, user_id, "invite")
    else:
        raise MatrixError("M_BAD_JSON", "membership must be join or invite (DELETE the path to leave)")
    return done()


@routes.get("/rooms/{room_id}/members/{user_id}/state")
async def get_membership(request: web.Request) -> web.Response:
    """GET .../members/$user_id/state: {membership, ...} of $user_id, for members of the room
    (one's own membership, an invitation too, for oneself); M_NOT_FOUND if they have none."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id, user_id = await _room_and_user(request)
    head = await hs.rooms.head(room_id)
    if user_id != who.user_id:
        _check_reader(head, who.user_id)
    event = head.state.get((MEMBER, user_id))
    if event is None or event.membership not in DRAFT_MEMBERSHIP:
        raise MatrixError("M_NOT_FOUND", f"{request.match_info['user_id']} has no membership in this room")
    return json_response(member_content(event))


@routes.delete("/rooms/{room_id}/members/{user_id}/state")
async def leave(request: web.Request) -> web.Response:
    """DELETE .../members/$user_id/state: the caller leaves the room (or declines an
    invitation); only oneself. Leaving a room one has left is harmless; M_NOT_FOUND if one
    was never in it."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id, user_id = await _room_and_user(request)
    if user_id != who.user_id:
        raise MatrixError("M_FORBIDDEN", "You can only remove yourself from a room")
    membership = (await hs.rooms.head(room_id)).state.get((MEMBER, user_id))
    if membership is None:
        raise MatrixError("M_NOT_FOUND", "You are not in this room")
    if membership.membership in ("join", "invite", "knock"):
        await hs.rooms.update_membership(who.user_id, room_id, who.user_id, "leave")
    return done()


@routes.get("/rooms/{room_id}/members/list")
async def member_list(request: web.Request) -> web.Response:
    """GET /rooms/$room_id/members/list: the m.room.member events of the joined and invited
    users, in the order they joined or were invited, paged by index tokens; for members
    (anyone, in a world-readable room)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    head = await hs.rooms.head(room_id)
    _check_reader(head, who.user_id)
    members = sorted((event for (event_type, _), event in head.state.items()
                      if event_type == MEMBER and event.membership in ("join", "invite")),
                     key=lambda event: (event.origin_server_ts, event.state_key))
    page, tokens = index_page(members, page_request(request))
    name = room_to_draft(head, hs.config.server_name)
    return json_response({"chunk": [member(event, name) for event in page], **tokens})
