"""Admin API: the server itself. Its version, background jobs (Synapse's background
updates and scheduled tasks), and the web admin's live numbers (ranvier's own)."""

from __future__ import annotations

import platform
from typing import Any

from aiohttp import web

from ranvier import __version__, background
from ranvier.admin_api.common import SYNAPSE_ADMIN, AdminRoutes
from ranvier.errors import MatrixError
from ranvier.metrics import snapshot
from ranvier.requester import Requester
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import query_int, query_str

routes = AdminRoutes()

RANVIER_ADMIN_API = "/_ranvier/admin/api/v1"


@routes.get(f"{SYNAPSE_ADMIN}/v1/server_version")
async def server_version(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/server_version: ranvier's version (as `server_version`) and Python's."""
    return json_response({"server_version": f"ranvier {__version__}", "python_version": platform.python_version()})


@routes.get(f"{SYNAPSE_ADMIN}/v1/background_updates/status")
async def background_updates(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/background_updates/status: ranvier runs every schema
    migration at start, before it serves, so there are never database updates running in
    the background: `current_updates` is always empty and `enabled` always true."""
    return json_response({"enabled": True, "current_updates": {}})


def _task_json(task: background.Task) -> dict[str, Any]:
    return {"id": task.task_id, "action": task.action, "status": task.status, "timestamp_ms": task.started_ts,
            "resource_id": task.resource_id, "result": task.result, "error": task.error}


@routes.get(f"{SYNAPSE_ADMIN}/v1/scheduled_tasks")
async def scheduled_tasks(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/scheduled_tasks: the admin tasks of this process (room
    deletions, history purges), newest first, filtered by `action_name`, `resource_id`,
    `job_status` (scheduled, active, complete, failed) and `max_timestamp`. A restart
    forgets them."""
    status = query_str(request, "job_status")
    if status not in (None, background.SCHEDULED, background.ACTIVE, background.COMPLETE, background.FAILED):
        raise MatrixError("M_INVALID_PARAM", "job_status must be scheduled, active, complete or failed")
    max_ts = query_int(request, "max_timestamp", 2**62, maximum=2**62)
    tasks = request.app[HOMESERVER].tasks.find(action=query_str(request, "action_name"),
                                                resource_id=query_str(request, "resource_id"))
    chosen = [_task_json(task) for task in reversed(tasks)
              if (status is None or task.status == status) and task.started_ts <= max_ts]
    return json_response({"scheduled_tasks": chosen})


@routes.get(f"{RANVIER_ADMIN_API}/stats")
async def stats(request: web.Request, admin: Requester) -> web.Response:
    """GET /_ranvier/admin/api/v1/stats: what the web admin's dashboard shows: counts
    (active users, rooms, events, media bytes; four counting queries), a snapshot of
    ranvier's own metrics (requests, events persisted, /sync waiters, latency buckets
    without the long polls, memory), and the periodic background jobs."""
    hs = request.app[HOMESERVER]
    counts = {
        "users": await hs.user_admin.count_accounts(),
        "rooms": await hs.room_admin.store.count_rooms(),
        "events": await hs.room_admin.store.count_events(),
        "media_bytes": await hs.media.store.total_bytes(),
    }
    jobs = [{"name": job.name, "interval_s": job.interval_s, "runs": job.runs, "failures": job.failures,
             "running": job.running, "last_started_ts": job.last_started_ts, "last_duration_ms": job.last_duration_ms}
            for job in background.JOBS.values()]
    return json_response({"counts": counts, "metrics": snapshot(), "jobs": jobs})
