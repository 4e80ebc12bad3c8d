"""Rooms: /createRoom, sending, state, redaction, reading events, members, joined rooms."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError, no_identity_server
from ranvier.events.identifiers import InvalidIdentifier, is_valid_room_alias, parse_user_id
from ranvier.events.room_versions import DEFAULT_ROOM_VERSION
from ranvier.requester import Requester
from ranvier.sync.filters import EventFilter, filter_json
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import refuse_if_suspended, requester, service_timestamp
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()

PRESETS = ("private_chat", "public_chat", "trusted_private_chat")


def parse_filter_param(request: web.Request) -> EventFilter:
    """The `filter` query parameter: a RoomEventFilter as JSON."""
    raw = request.query.get("filter")
    return EventFilter() if raw is None else EventFilter.parse(filter_json(raw))


def _user_ids(values: list[Any], name: str) -> list[str]:
    for value in values:
        try:
            parse_user_id(value)
        except (InvalidIdentifier, TypeError):
            raise MatrixError("M_INVALID_PARAM", f"{name} must hold user IDs, not {value!r}") from None
    return values


@routes.post("/createRoom")
async def create_room(request: web.Request) -> web.Response:
    """POST /createRoom: a JSON object body is required (`{}` is a private room); every
    field is checked (preset, visibility, alias localpart, invitees, initial_state without
    create, member or power level events); the preset's state follows the spec's table
    (public_chat forbids guests, the private presets let them join); one transaction, so a
    refused room leaves nothing. `invite_3pid` 403 M_SERVER_NOT_TRUSTED, no identity server
    is configured; suspended accounts 403 M_USER_SUSPENDED (creating is joining); an alias
    another application service's exclusive namespace holds 400 M_EXCLUSIVE."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    refuse_if_suspended(who, "create rooms")
    body = await read_json(request)
    visibility = field(body, "visibility", str, default="private")
    if visibility not in ("public", "private"):
        raise MatrixError("M_INVALID_PARAM", "visibility must be public or private")
    preset = field(body, "preset", str, default="public_chat" if visibility == "public" else "private_chat")
    if preset not in PRESETS:
        raise MatrixError("M_INVALID_PARAM", f"preset must be one of {', '.join(PRESETS)}")
    alias = None
    alias_name = field(body, "room_alias_name", str)
    if alias_name is not None:
        alias = f"#{alias_name}:{hs.config.server_name}"
        if not alias_name or ":" in alias_name or any(c.isspace() for c in alias_name) or not is_valid_room_alias(alias):
            raise MatrixError("M_INVALID_PARAM", "room_alias_name is not a valid alias localpart")
        hs.appservices.check_alias_not_reserved(alias, who.app_service)
    if field(body, "invite_3pid", list):
        raise no_identity_server("A third-party invite")
    initial_state = []
    for entry in field(body, "initial_state", list, default=[]):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not isinstance(entry.get("content"), dict):
            raise MatrixError("M_BAD_JSON", "initial_state entries need a type and a content object")
        state_key = entry.get("state_key", "")
        if not isinstance(state_key, str):
            raise MatrixError("M_BAD_JSON", "initial_state state_key must be a string")
        if entry["type"] in ("m.room.create", "m.room.member", "m.room.power_levels"):
            raise MatrixError("M_INVALID_PARAM", f"{entry['type']} cannot be set in initial_state")
        initial_state.append((entry["type"], state_key, entry["content"]))
    creation_content = field(body, "creation_content", dict, default={})
    for reserved in ("room_version", "creator"):
        creation_content.pop(reserved, None)
    hs.limits.join.check(who.user_id)
    room_id = await hs.rooms.create_room(
        who.user_id,
        room_version=field(body, "room_version", str, default=DEFAULT_ROOM_VERSION),
        preset=preset,
        is_public=visibility == "public",
        alias=alias,
        name=field(body, "name", str),
        topic=field(body, "topic", str),
        invite=_user_ids(field(body, "invite", list, default=[]), "invite"),
        is_direct=field(body, "is_direct", bool, default=False),
        initial_state=initial_state,
        power_level_content_override=field(body, "power_level_content_override", dict),
        creation_content=creation_content,
    )
    response = {"room_id": room_id}
    if alias is not None:
        response["room_alias"] = alias
    return json_response(response)


@routes.put("/rooms/{room_id}/send/{event_type}/{txn_id}")
async def send_message(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/send/{eventType}/{txnId}: the content must be a JSON object
    (no body is 400 `M_NOT_JSON`); a repeated (device, txnId) answers the first event,
    and is never rate-limited. Guests too; suspended accounts only redactions of their
    own events (else 403 M_USER_SUSPENDED). Sending counts as activity for presence. An
    application service may set the event's origin_server_ts with `ts`; its transaction
    IDs are its own when it names no device."""
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    content = await read_json(request)
    if request.match_info["event_type"] == "m.room.redaction":
        await _refuse_suspended_redaction(request, who, content.get("redacts"))
    else:
        refuse_if_suspended(who, "send messages")
    event_id = await _send_once(hs, who, request.match_info["room_id"], request.match_info["event_type"], content,
                                request.match_info["txn_id"], service_timestamp(request, who))
    await hs.presence.active(who.user_id)
    return json_response({"event_id": event_id})


@routes.put("/rooms/{room_id}/state/{event_type}/{state_key:.*}")
@routes.put("/rooms/{room_id}/state/{event_type}")
async def send_state(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/state/{eventType}[/{stateKey}]: the auth rules decide who may;
    `m.room.canonical_alias` aliases must be valid (`M_INVALID_PARAM`) and point to the
    room (`M_BAD_ALIAS`). Guests too. Suspended accounts: 403 M_USER_SUSPENDED, except for
    the membership changes the membership endpoints leave them (leave, kick, ban, unban).
    Counts as activity for presence. An application service may set origin_server_ts with `ts`."""
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    content = await read_json(request, allow_empty=True)
    if request.match_info["event_type"] != "m.room.member":
        refuse_if_suspended(who, "send events")
    elif content.get("membership") in ("join", "invite", "knock"):
        refuse_if_suspended(who, f"{content['membership']} through the state API")
    hs.limits.message.check(who.user_id)
    event_id = await hs.rooms.send_event(
        who.user_id, who.transaction_scope, request.match_info["room_id"], request.match_info["event_type"], content,
        state_key=request.match_info.get("state_key", ""), timestamp=service_timestamp(request, who),
    )
    await hs.presence.active(who.user_id)
    return json_response({"event_id": event_id})


@routes.put("/rooms/{room_id}/redact/{event_id}/{txn_id}")
async def redact(request: web.Request) -> web.Response:
    """PUT /rooms/{roomId}/redact/{eventId}/{txnId}: a JSON object body (`reason`
    optional); an event of another room (or none) is 404 `M_NOT_FOUND`, another user's
    needs the redact power level; idempotent per (device, txnId), and a repeat is never
    rate-limited; suspended accounts only their own events (403 M_USER_SUSPENDED)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    await _refuse_suspended_redaction(request, who, request.match_info["event_id"])
    content: dict[str, Any] = {"redacts": request.match_info["event_id"]}
    reason = field(body, "reason", str)
    if reason is not None:
        content["reason"] = reason
    event_id = await _send_once(hs, who, request.match_info["room_id"], "m.room.redaction", content,
                                request.match_info["txn_id"])
    await hs.presence.active(who.user_id)
    return json_response({"event_id": event_id})


async def _send_once(hs, who: Requester, room_id: str, event_type: str, content: dict[str, Any], txn_id: str,
                     timestamp: int | None = None) -> str:
    """Send with a transaction ID: a retry of a send that succeeded answers its event before
    the rate limiter counts it (memory first; the database only when the limiter would
    refuse, for a retry from before a restart), so a retry is never rate-limited."""
    limited = not hs.limits.message.would_allow(who.user_id)
    earlier = await hs.rooms.sent_before(room_id, who.user_id, who.transaction_scope, txn_id, ask_database=limited)
    if earlier is not None:
        return earlier
    hs.limits.message.check(who.user_id)
    return await hs.rooms.send_event(who.user_id, who.transaction_scope, room_id, event_type, content, txn_id=txn_id,
                                     timestamp=timestamp)


async def _refuse_suspended_redaction(request: web.Request, who: Requester, event_id: Any) -> None:
    """A suspended account may redact its own events only (account suspension rules)."""
    if not who.suspended or not isinstance(event_id, str):
        return
    target = (await request.app[HOMESERVER].rooms.store.get_event_rows([event_id])).get(event_id)
    if target is not None and target.event.sender != who.user_id:
        refuse_if_suspended(who, "redact other users' events")


@routes.get("/rooms/{room_id}/event/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/event/{eventId}: 404 `M_NOT_FOUND` for an event the caller may
    not see as well as for one that does not exist."""
    who = await requester(request, allow_guest=True)
    event = await request.app[HOMESERVER].timeline.event(who, request.match_info["room_id"], request.match_info["event_id"])
    return json_response(event)


@routes.get("/rooms/{room_id}/state")
async def get_state(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/state: the current state to members, the state at the leave to former
    members, the current state of a world-readable room to anyone; else 403."""
    who = await requester(request, allow_guest=True)
    return json_response(await request.app[HOMESERVER].timeline.state(who, request.match_info["room_id"]))


@routes.get("/rooms/{room_id}/state/{event_type}/{state_key:.*}")
@routes.get("/rooms/{room_id}/state/{event_type}")
async def get_state_event(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/state/{eventType}/{stateKey}: one state event's content (the whole event
    with `format=event`), visible as for GET .../state; 404 M_NOT_FOUND when the room has no
    such state."""
    who = await requester(request, allow_guest=True)
    event = await request.app[HOMESERVER].timeline.state_event(
        who, request.match_info["room_id"], request.match_info["event_type"], request.match_info.get("state_key", "")
    )
    if request.query.get("format") == "event":
        return json_response(event)
    return json_response(event["content"])


@routes.get("/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/messages: `from` and `to` take any token the server hands out
    (room tokens, and the stream tokens of /sync, /initialSync and /events); history
    visibility, the `filter` (a RoomEventFilter, `M_BAD_JSON` if malformed) and ignored
    users apply before `limit` counts. 403 for a room the caller may not read, an unknown
    one too."""
    who = await requester(request, allow_guest=True)
    direction = query_str(request, "dir", default="b")
    if direction not in ("b", "f"):
        raise MatrixError("M_INVALID_PARAM", "dir must be b or f")
    page = await request.app[HOMESERVER].timeline.messages(
        who, request.match_info["room_id"], from_token=query_str(request, "from"), to_token=query_str(request, "to"),
        direction=direction, limit=query_int(request, "limit", 10, minimum=0, maximum=1000),
        event_filter=parse_filter_param(request),
    )
    return json_response(page)


@routes.get("/rooms/{room_id}/context/{event_id}")
async def context(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/context/{eventId}: events around one the caller may see
    (else 404, also for an event of a user they ignore), ignored users left out."""
    who = await requester(request, allow_guest=True)
    result = await request.app[HOMESERVER].timeline.context(
        who, request.match_info["room_id"], request.match_info["event_id"],
        limit=query_int(request, "limit", 10, minimum=0, maximum=1000), event_filter=parse_filter_param(request),
    )
    return json_response(result)


MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


@routes.get("/rooms/{room_id}/members")
async def members(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/members: `at` takes any pagination token (room or stream);
    `membership`/`not_membership` filter; former members see the room as they left it."""
    who = await requester(request, allow_guest=True)
    membership = query_str(request, "membership")
    not_membership = query_str(request, "not_membership")
    for value in (membership, not_membership):
        if value is not None and value not in MEMBERSHIPS:
            raise MatrixError("M_INVALID_PARAM", f"membership must be one of {', '.join(MEMBERSHIPS)}")
    chunk = await request.app[HOMESERVER].timeline.members(
        who, request.match_info["room_id"], at=query_str(request, "at"), membership=membership,
        not_membership=not_membership,
    )
    return json_response({"chunk": chunk})


@routes.get("/rooms/{room_id}/joined_members")
async def joined_members(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/joined_members: the joined members with display name and avatar; for
    members of the room only (403)."""
    who = await requester(request)
    return json_response(await request.app[HOMESERVER].timeline.joined_members(who, request.match_info["room_id"]))


@routes.get("/joined_rooms")
async def joined_rooms(request: web.Request) -> web.Response:
    """GET /joined_rooms: the rooms the caller is joined to."""
    who = await requester(request)
    rooms = await request.app[HOMESERVER].rooms.store.rooms_of_user(who.user_id, ("join",))
    return json_response({"joined_rooms": [room_id for room_id, _ in rooms]})


@routes.get("/rooms/{room_id}/timestamp_to_event", versions=("v1",))
async def timestamp_to_event(request: web.Request) -> web.Response:
    """GET /v1/rooms/{roomId}/timestamp_to_event: the event closest to `ts` (required) in direction
    `dir` (`f` or `b`, required) in a room whose history the caller may read; 404 M_NOT_FOUND
    when there is none."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = request.match_info["room_id"]
    ts = query_int(request, "ts", 0, minimum=0, maximum=2**62)
    if "ts" not in request.query:
        raise MatrixError("M_MISSING_PARAM", "Missing required query parameter: ts")
    direction = query_str(request, "dir", required=True)
    if direction not in ("b", "f"):
        raise MatrixError("M_INVALID_PARAM", "dir must be b or f")
    await hs.timeline.reader_history(room_id, who.user_id)
    found = await hs.rooms.store.event_closest_to_ts(room_id, ts, forwards=direction == "f")
    if found is None:
        raise MatrixError("M_NOT_FOUND", "No event found in that direction")
    return json_response({"event_id": found[0], "origin_server_ts": found[1]})
