"""Rooms of the draft: create with a chosen ID (PUT /rooms/$room_id) or an allocated one
(POST /rooms), the topic (GET/PUT /rooms/$room_id/topic), and the public room list
(GET /public/rooms, also at /rooms/list as the draft's examples call it)."""

from __future__ import annotations

import secrets
import string
from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import split_id
from ranvier.events.room_versions import DEFAULT_ROOM_VERSION
from ranvier.legacy_api.ids import new_room_alias, resolve_room, room_to_draft
from ranvier.legacy_api.pagination import index_page, page_request
from ranvier.legacy_api.routing import DraftRoutes, done
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field

routes = DraftRoutes()

TOPIC = "m.room.topic"


def _visibility(body: dict[str, Any]) -> str:
    visibility = field(body, "visibility", str, default="private")
    if visibility not in ("public", "private"):
        raise MatrixError("M_BAD_JSON", "visibility must be public or private")
    return visibility


async def _create(request: web.Request, creator: str, alias: str, visibility: str) -> str:
    """A room named by `alias`: public ones are listed and open to anyone, private ones take
    invited users only."""
    hs = request.app[HOMESERVER]
    hs.limits.join.check(creator)
    return await hs.rooms.create_room(
        creator, room_version=DEFAULT_ROOM_VERSION, preset="public_chat" if visibility == "public" else "private_chat",
        is_public=visibility == "public", alias=alias, name=None, topic=None, invite=[], is_direct=False,
        initial_state=[], power_level_content_override=None, creation_content={},
    )


async def _free_alias_like(request: web.Request, alias: str) -> str:
    """A free alias close to a taken one, to suggest instead."""
    rooms = request.app[HOMESERVER].rooms
    localpart, domain = split_id(alias, "#")
    while True:
        candidate = f"#{localpart}_{secrets.token_hex(3)}:{domain}"
        if await rooms.store.room_of_alias(candidate) is None:
            return candidate


def _as_draft_name(alias: str) -> str:
    localpart, domain = split_id(alias, "#")
    return f"{localpart}@{domain}"


@routes.put("/rooms/{room_id}")
async def create_named_room(request: web.Request) -> web.Response:
    """PUT /rooms/$room_id: create a room under a chosen ID (`name@server`, made the alias
    #name:server), with "visibility" public (listed, anyone may join) or private (the
    default: invited users only). A taken ID is M_ROOM_IN_USE with a suggested_room_id."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    alias = new_room_alias(request.match_info["room_id"], hs.config.server_name)
    visibility = _visibility(body)
    if await hs.rooms.store.room_of_alias(alias) is None:
        try:
            await _create(request, who.user_id, alias, visibility)
            return done()
        except MatrixError as error:
            if error.errcode != "M_ROOM_IN_USE":
                raise
    raise MatrixError("M_ROOM_IN_USE", "Room already in use.",
                      suggested_room_id=_as_draft_name(await _free_alias_like(request, alias)))


@routes.post("/rooms")
async def create_room(request: web.Request) -> web.Response:
    """POST /rooms: create a room under an ID the server allocates (a fresh alias), with
    "visibility" as for PUT. Answers {room_id, visibility}."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    visibility = _visibility(body)
    for _ in range(5):
        localpart = "r" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(11))
        alias = f"#{localpart}:{hs.config.server_name}"
        try:
            await _create(request, who.user_id, alias, visibility)
        except MatrixError as error:
            if error.errcode != "M_ROOM_IN_USE":
                raise
            continue
        return json_response({"room_id": _as_draft_name(alias), "visibility": visibility})
    raise MatrixError("M_UNKNOWN", "Could not allocate a room ID; try again", status=500)


@routes.get("/rooms/{room_id}/topic")
async def get_topic(request: web.Request) -> web.Response:
    """GET /rooms/$room_id/topic: {topic}, for members (anyone, in a world-readable room);
    M_NOT_FOUND when the room has no topic."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    event = await hs.timeline.state_event(who, room_id, TOPIC, "")
    topic = event["content"].get("topic")
    if not isinstance(topic, str):
        raise MatrixError("M_NOT_FOUND", "This room has no topic")
    return json_response({"topic": topic})


@routes.put("/rooms/{room_id}/topic")
async def set_topic(request: web.Request) -> web.Response:
    """PUT /rooms/$room_id/topic {topic}: members with the power to set it (the room's power
    levels decide)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    topic = field(body, "topic", str, required=True)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    hs.limits.message.check(who.user_id)
    await hs.rooms.send_event(who.user_id, who.device_id, room_id, TOPIC, {"topic": topic}, state_key="")
    return done()


@routes.get("/public/rooms")
@routes.get("/rooms/list")
async def public_rooms(request: web.Request) -> web.Response:
    """GET /public/rooms (and /rooms/list): the published rooms someone is joined to, oldest
    first, paged by index tokens ("0" is the first room); RoomInfo {room_id, topic,
    num_members} and the total. Bad from/to/limit: M_BAD_PAGINATION."""
    hs = request.app[HOMESERVER]
    await requester(request)
    listed = await hs.directory.published_oldest_first()
    page, tokens = index_page(listed, page_request(request))
    chunk = []
    for room_id, count in page:
        head = await hs.rooms.head(room_id)
        info: dict[str, Any] = {"room_id": room_to_draft(head, hs.config.server_name), "num_members": count}
        topic = head.state.get((TOPIC, ""))
        if topic is not None and isinstance(topic.content.get("topic"), str):
            info["topic"] = topic.content["topic"]
        chunk.append(info)
    return json_response({"chunk": chunk, **tokens, "total": len(listed)})
