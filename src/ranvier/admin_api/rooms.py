"""Admin API: rooms, as Synapse's room admin API shapes them: the list, a room's details,
members, state and messages, blocking, and deleting (at once, or as a task to follow).

Not served: `new_room_user_id` on deletion (moving the members to a new room is refused).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier import background
from ranvier.admin_api.common import SYNAPSE_ADMIN, AdminRoutes, direction, order_by, paging
from ranvier.client_api.rooms import parse_filter_param
from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.rooms.admin import ROOM_ORDER
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_int, query_str

routes = AdminRoutes()

V1, V2 = f"{SYNAPSE_ADMIN}/v1", f"{SYNAPSE_ADMIN}/v2"
DELETE_ROOM = "shutdown_and_purge_room"


async def _known_room(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not await request.app[HOMESERVER].rooms.room_exists(room_id):
        raise MatrixError("M_NOT_FOUND", "Room not found")
    return room_id


@routes.get(f"{V1}/rooms")
async def list_rooms(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/rooms: every room, `search_term` (in the name, canonical
    alias or room ID, case-folded), `order_by` (name by default; counts sort biggest
    first) and `dir`, `from`/`limit` offset paging (`next_batch`, `prev_batch`)."""
    start, limit = paging(request)
    listing = await request.app[HOMESERVER].room_admin.list_rooms(
        search_term=query_str(request, "search_term"), order_by=order_by(request, ROOM_ORDER, "name"),
        backwards=direction(request), start=start, limit=limit,
    )
    result: dict[str, Any] = {"rooms": listing.rooms, "offset": start, "total_rooms": listing.total}
    if start + len(listing.rooms) < listing.total:
        result["next_batch"] = start + len(listing.rooms)
    if start > 0:
        result["prev_batch"] = max(0, start - limit)
    return json_response(result)


@routes.get(f"{V1}/rooms/{{room_id}}")
async def room_details(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/rooms/{roomId}: the room's list entry with its avatar, topic,
    joined local devices (404 M_NOT_FOUND for an unknown room)."""
    room_id = request.match_info["room_id"]
    return json_response(await request.app[HOMESERVER].room_admin.room_details(room_id))


@routes.get(f"{V1}/rooms/{{room_id}}/members")
async def room_members(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/members: the joined members and their count."""
    room_id = await _known_room(request)
    head = await request.app[HOMESERVER].rooms.head(room_id)
    members = sorted(head.joined)
    return json_response({"members": members, "total": len(members)})


@routes.get(f"{V1}/rooms/{{room_id}}/state")
async def room_state(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/state: the room's current state events, in
    the client format, whoever may see them."""
    hs = request.app[HOMESERVER]
    room_id = await _known_room(request)
    head = await hs.rooms.head(room_id)
    rows = await hs.rooms.store.get_event_rows(event.event_id for event in head.state.values())
    return json_response({"state": await hs.timeline.serialize(list(rows.values()), admin)})


@routes.get(f"{V1}/rooms/{{room_id}}/messages")
async def room_messages(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/messages: the room's timeline like the client
    API's /messages (`from`, `to`, `dir` (b by default), `limit`, `filter`), every event
    whatever its history visibility."""
    room_id = await _known_room(request)
    backwards = query_str(request, "dir", default="b")
    if backwards not in ("b", "f"):
        raise MatrixError("M_INVALID_PARAM", "dir must be b or f")
    page = await request.app[HOMESERVER].timeline.messages(
        admin, room_id, from_token=query_str(request, "from"), to_token=query_str(request, "to"),
        direction=backwards, limit=query_int(request, "limit", 10, maximum=1000),
        event_filter=parse_filter_param(request), everything=True,
    )
    return json_response(page)


@routes.get(f"{V1}/rooms/{{room_id}}/block")
async def block_status(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/block: `block`, and the admin who blocked it."""
    room_id = request.match_info["room_id"]
    blocked_by = request.app[HOMESERVER].rooms.blocked_rooms.get(room_id)
    return json_response({"block": True, "user_id": blocked_by} if blocked_by else {"block": False})


@routes.put(f"{V1}/rooms/{{room_id}}/block")
async def set_block(request: web.Request, admin: Requester) -> web.Response:
    """PUT /_synapse/admin/v1/rooms/{roomId}/block: `block: true` refuses every join,
    invite and knock from now on (members already in stay); false lifts it. A room ID this
    server does not know can be blocked too. Idempotent."""
    room_id = request.match_info["room_id"]
    if not room_id.startswith("!"):
        raise MatrixError("M_INVALID_PARAM", f"{room_id!r} is not a room ID")
    block = field(await read_json(request), "block", bool, required=True)
    await request.app[HOMESERVER].room_admin.set_blocked(room_id, admin.user_id, block)
    return json_response({"block": block})


def _delete_options(body: dict[str, Any]) -> dict[str, bool]:
    if field(body, "new_room_user_id", str) is not None:
        raise MatrixError("M_INVALID_PARAM", "Moving members to a new room is not supported by this server")
    for name in ("room_name", "message"):
        field(body, name, str)
    return {"block": field(body, "block", bool, default=False), "purge": field(body, "purge", bool, default=True),
            "force_purge": field(body, "force_purge", bool, default=False)}


@routes.delete(f"{V1}/rooms/{{room_id}}")
async def delete_room(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/rooms/{roomId}: at once, make every local member leave
    (invites and knocks withdrawn), remove the local aliases and the directory entry,
    `block` it if asked, and purge every row of it unless `purge` is false (refused while
    a member could not be removed, unless `force_purge`). Answers the users removed and
    the aliases. A blocked unknown room answers empty lists."""
    room_id = request.match_info["room_id"]
    options = _delete_options(await read_json(request, allow_empty=True))
    return json_response(await request.app[HOMESERVER].room_admin.delete_room(room_id, admin.user_id, **options))


def _delete_status_json(task: background.Task) -> dict[str, Any]:
    status = {background.SCHEDULED: "scheduled", background.ACTIVE: "purging", background.COMPLETE: "complete",
              background.FAILED: "failed"}[task.status]
    result: dict[str, Any] = {"delete_id": task.task_id, "room_id": task.resource_id, "status": status,
                              "shutdown_room": task.result or {"kicked_users": [], "failed_to_kick_users": [],
                                                               "local_aliases": [], "new_room_id": None}}
    if task.error:
        result["error"] = task.error
    return result


@routes.delete(f"{V2}/rooms/{{room_id}}")
async def delete_room_later(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v2/rooms/{roomId}: the same deletion as v1, run as a task;
    answers its `delete_id` at once (follow it with the delete_status endpoints). The
    options are checked before the task starts; a room unknown and not blocked is 404."""
    hs = request.app[HOMESERVER]
    room_id = request.match_info["room_id"]
    options = _delete_options(await read_json(request, allow_empty=True))
    if not options["block"] and not await hs.rooms.room_exists(room_id):
        raise MatrixError("M_NOT_FOUND", "Room not found")

    async def work(task: background.Task) -> dict[str, Any]:
        return await hs.room_admin.delete_room(room_id, admin.user_id, **options)

    task = hs.tasks.start(DELETE_ROOM, room_id, work)
    return json_response({"delete_id": task.task_id})


@routes.get(f"{V2}/rooms/{{room_id}}/delete_status")
async def delete_status_of_room(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v2/rooms/{roomId}/delete_status: every deletion task of the room
    known to this process (404 when there is none)."""
    tasks = request.app[HOMESERVER].tasks.find(action=DELETE_ROOM, resource_id=request.match_info["room_id"])
    if not tasks:
        raise MatrixError("M_NOT_FOUND", "No deletion of this room is known")
    return json_response({"results": [_delete_status_json(task) for task in tasks]})


@routes.get(f"{V2}/rooms/delete_status/{{delete_id}}")
async def delete_status(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v2/rooms/delete_status/{deleteId}: one deletion task (404 if unknown)."""
    task = request.app[HOMESERVER].tasks.get(request.match_info["delete_id"])
    if task is None or task.action != DELETE_ROOM:
        raise MatrixError("M_NOT_FOUND", "Unknown delete_id")
    return json_response(_delete_status_json(task))
