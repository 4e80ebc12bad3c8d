"""Admin API: purging a room's history before a point, as a task to follow."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier import background
from ranvier.admin_api.common import SYNAPSE_ADMIN, AdminRoutes
from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field

routes = AdminRoutes()

V1 = f"{SYNAPSE_ADMIN}/v1"
PURGE_HISTORY = "purge_history"


async def _purge(request: web.Request, event_id: str | None) -> web.Response:
    hs = request.app[HOMESERVER]
    room_id = request.match_info["room_id"]
    if not await hs.rooms.room_exists(room_id):
        raise MatrixError("M_NOT_FOUND", "Room not found")
    body = await read_json(request, allow_empty=True)
    delete_local = field(body, "delete_local_events", bool, default=False)
    event_id = event_id or field(body, "purge_up_to_event_id", str)
    up_to_ts = field(body, "purge_up_to_ts", int)
    if event_id is not None:
        before_stream = await hs.room_admin.stream_of_event(room_id, event_id)
    elif up_to_ts is not None:
        before_stream = await hs.room_admin.stream_before_ts(room_id, up_to_ts)
    else:
        raise MatrixError("M_MISSING_PARAM", "purge_up_to_event_id or purge_up_to_ts is required")

    async def work(task: background.Task) -> dict[str, Any]:
        purged = await hs.room_admin.purge_history(room_id, before_stream=before_stream,
                                                   delete_local_events=delete_local)
        return {"purged_events": purged}

    task = hs.tasks.start(PURGE_HISTORY, room_id, work)
    return json_response({"purge_id": task.task_id})


@routes.post(f"{V1}/purge_history/{{room_id}}")
async def purge_history(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/purge_history/{roomId}: delete the room's events before
    `purge_up_to_event_id` or `purge_up_to_ts`, as a task (answers its `purge_id`). State
    events, redactions and the newest event stay; events of local users only with
    `delete_local_events: true`. The point is checked before the task starts."""
    return await _purge(request, None)


@routes.post(f"{V1}/purge_history/{{room_id}}/{{event_id}}")
async def purge_history_to_event(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/purge_history/{roomId}/{eventId}: the same, up to the event in the path."""
    return await _purge(request, request.match_info["event_id"])


@routes.get(f"{V1}/purge_history_status/{{purge_id}}")
async def purge_status(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/purge_history_status/{purgeId}: `status` (active, complete or
    failed) of a purge this process ran (404 if unknown)."""
    task = request.app[HOMESERVER].tasks.get(request.match_info["purge_id"])
    if task is None or task.action != PURGE_HISTORY:
        raise MatrixError("M_NOT_FOUND", "Unknown purge_id")
    status = background.ACTIVE if task.status == background.SCHEDULED else task.status
    result: dict[str, Any] = {"status": status}
    if task.error:
        result["error"] = task.error
    return json_response(result)
