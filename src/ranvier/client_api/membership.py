"""Membership: join (by ID or alias), invite, leave, forget, kick, ban, unban, knock."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError, no_identity_server
from ranvier.events.identifiers import InvalidIdentifier, is_valid_server_name, parse_user_id
from ranvier.rooms.upgrade_settings import carry_over_on_join
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import refuse_if_suspended, requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


async def resolve_room(request: web.Request, room_id_or_alias: str) -> tuple[str, list[str]]:
    """(room ID, servers to join it through): an alias is resolved (another server's
    through it), a room ID comes with the `via` (or older `server_name`) servers given."""
    if room_id_or_alias.startswith("#"):
        resolved = await request.app[HOMESERVER].directory.resolve(room_id_or_alias)
        return resolved["room_id"], resolved["servers"]
    if not room_id_or_alias.startswith("!"):
        raise MatrixError("M_INVALID_PARAM", "Expected a room ID or a room alias")
    servers = request.query.getall("via", []) or request.query.getall("server_name", [])
    return room_id_or_alias, [server for server in servers if is_valid_server_name(server)]


async def _target(body: dict) -> str:
    user_id = field(body, "user_id", str, required=True)
    try:
        parse_user_id(user_id)
    except InvalidIdentifier:
        raise MatrixError("M_INVALID_PARAM", "user_id is not a valid user ID") from None
    return user_id


@routes.post("/join/{room_id_or_alias}")
@routes.post("/rooms/{room_id_or_alias}/join")
async def join(request: web.Request) -> web.Response:
    """POST /join/{roomIdOrAlias}, POST /rooms/{roomId}/join: join a room as the join rules
    allow (restricted rooms through a member of an allowed room); a room this server does
    not hold through the servers `via` names (or the alias's, the inviter's, the room ID's).
    Guests only where `m.room.guest_access` is `can_join` (else 403 M_GUEST_ACCESS_FORBIDDEN),
    and only here; suspended accounts 403 M_USER_SUSPENDED. Joining a room one is in changes
    nothing. Joining the replacement of an upgraded room carries the user's tags, direct
    chats and push rules of the old room over (rooms/upgrade_settings.py)."""
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    refuse_if_suspended(who, "join rooms")
    body = await read_json(request, allow_empty=True)
    room_id, servers = await resolve_room(request, request.match_info["room_id_or_alias"])
    hs.limits.join.check(who.user_id)
    head = await hs.rooms.head_if_known(room_id)
    was_joined = head is not None and who.user_id in head.joined
    await hs.rooms.join(who.user_id, room_id, reason=field(body, "reason", str), guest=who.is_guest, servers=servers)
    if not was_joined:
        await carry_over_on_join(hs.rooms, hs.account_data, hs.push, who.user_id, room_id)
    return json_response({"room_id": room_id})


@routes.post("/knock/{room_id_or_alias}")
async def knock(request: web.Request) -> web.Response:
    """POST /knock/{roomIdOrAlias}: ask to join a room whose join rule allows knocking (one of
    another server through the servers `via` names); suspended accounts 403 M_USER_SUSPENDED."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    refuse_if_suspended(who, "knock on rooms")
    body = await read_json(request, allow_empty=True)
    room_id, servers = await resolve_room(request, request.match_info["room_id_or_alias"])
    hs.limits.join.check(who.user_id)
    await hs.rooms.knock(who.user_id, room_id, reason=field(body, "reason", str), servers=servers)
    return json_response({"room_id": room_id})


@routes.post("/rooms/{room_id}/leave")
async def leave(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/leave: leave a room, or reject an invite or withdraw a knock;
    leaving again changes nothing; 403 if never in it. Guests and suspended accounts too."""
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    body = await read_json(request, allow_empty=True)
    room_id = request.match_info["room_id"]
    membership = await hs.rooms.store.membership_of(room_id, who.user_id)
    if membership is None or membership[0] in ("leave", "ban"):
        if membership is None and not await hs.rooms.room_exists(room_id):
            raise MatrixError("M_NOT_FOUND", "Unknown room")
        if membership is None:
            raise MatrixError("M_FORBIDDEN", "You are not in this room")
        return json_response({})
    await hs.rooms.update_membership(who.user_id, room_id, who.user_id, "leave", reason=field(body, "reason", str))
    return json_response({})


@routes.post("/rooms/{room_id}/forget")
async def forget(request: web.Request) -> web.Response:
    """POST /rooms/{roomId}/forget: forget a room one has left (400 M_UNKNOWN while in it)."""
    who = await requester(request)
    await request.app[HOMESERVER].rooms.forget(who.user_id, request.match_info["room_id"])
    return json_response({})


def _membership_change(membership: str):
    async def handler(request: web.Request) -> web.Response:
        hs = request.app[HOMESERVER]
        who = await requester(request)
        body = await read_json(request)
        if membership == "invite":
            refuse_if_suspended(who, "invite users")
            if "user_id" not in body and any(key in body for key in ("id_server", "medium", "address")):
                raise no_identity_server("A third-party invite")
        target = await _target(body)
        room_id = request.match_info["room_id"]
        if membership == "unban":
            current = await hs.rooms.store.membership_of(room_id, target)
            if current is None or current[0] != "ban":
                raise MatrixError("M_FORBIDDEN", "That user is not banned")
        if membership == "kick":
            current = await hs.rooms.store.membership_of(room_id, target)
            if current is None or current[0] not in ("join", "invite", "knock"):
                raise MatrixError("M_FORBIDDEN", "That user is not in the room")
        new_membership = {"kick": "leave", "unban": "leave"}.get(membership, membership)
        await hs.rooms.update_membership(who.user_id, room_id, target, new_membership,
                                         reason=field(body, "reason", str))
        return json_response({})

    handler.__name__ = membership
    handler.__doc__ = _MEMBERSHIP_RULES[membership]
    return handler


_MEMBERSHIP_RULES = {
    "invite": "POST /rooms/{roomId}/invite: invite a user (`user_id`; another server's user with federation on, "
              "their server countersigning) as the auth rules allow; a "
              "third-party invite (`id_server`, `medium`, `address`) 403 M_SERVER_NOT_TRUSTED, no identity "
              "server is configured; suspended accounts 403 M_USER_SUSPENDED.",
    "kick": "POST /rooms/{roomId}/kick: make a joined, invited or knocking user leave (403 otherwise).",
    "ban": "POST /rooms/{roomId}/ban: ban a user, in the room or not.",
    "unban": "POST /rooms/{roomId}/unban: lift a ban (403 if the user is not banned).",
}


for _action in ("invite", "kick", "ban", "unban"):
    routes.post(f"/rooms/{{room_id}}/{_action}")(_membership_change(_action))
