"""GET /im/sync: the draft's initial sync, a RoomStateInfo for every room the user is
joined to or invited to."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.legacy_api.ids import room_to_draft
from ranvier.legacy_api.messages import message_pages
from ranvier.legacy_api.pagination import page_request, query_flag
from ranvier.legacy_api.routing import DraftRoutes
from ranvier.rooms.service import RoomHead
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response

routes = DraftRoutes()


def _room_keys(head: RoomHead) -> dict[str, Any]:
    """The optional keys of a RoomStateInfo an invitee may see too: topic and room image."""
    keys: dict[str, Any] = {}
    topic = head.state.get(("m.room.topic", ""))
    if topic is not None and isinstance(topic.content.get("topic"), str):
        keys["topic"] = topic.content["topic"]
    avatar = head.state.get(("m.room.avatar", ""))
    if avatar is not None and isinstance(avatar.content.get("url"), str):
        keys["room_image_url"] = avatar.content["url"]
    return keys


@routes.get("/im/sync")
async def im_sync(request: web.Request) -> web.Response:
    """GET /im/sync: an array of RoomStateInfo {room_id, membership, messages, topic,
    room_image_url, num_members}, one per joined or invited room. from/to/limit page each
    joined room's messages (limit=1 is one message per room; no limit, all of them up to the
    page size); feedback=true bundles feedback; invited rooms carry no messages. Bad
    pagination values: M_BAD_PAGINATION."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    page, feedback = page_request(request), query_flag(request, "feedback")
    memberships = await hs.rooms.user_memberships(who.user_id)
    joined = sorted(room_id for room_id, (membership, _) in memberships.items() if membership == "join")
    invited = sorted(room_id for room_id, (membership, _) in memberships.items() if membership == "invite")
    pages = await message_pages(request, who.user_id, joined, page, feedback=feedback)
    rooms = []
    for room_id in joined:
        head = await hs.rooms.head(room_id)
        rooms.append({"room_id": room_to_draft(head, hs.config.server_name), "membership": "join",
                      "messages": pages[room_id], **_room_keys(head), "num_members": len(head.joined)})
    for room_id in invited:
        head = await hs.rooms.head(room_id)
        rooms.append({"room_id": room_to_draft(head, hs.config.server_name), "membership": "invite",
                      **_room_keys(head)})
    return json_response(rooms)
