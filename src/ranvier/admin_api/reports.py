"""Admin API: the reports users made (rooms/reports.py), as Synapse's event and room report
APIs shape them: list, details (with the reported event), delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.admin_api.common import SYNAPSE_ADMIN, AdminRoutes, paging
from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.rooms.reports import EVENT, ROOM, Report
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import query_str

routes = AdminRoutes()

V1 = f"{SYNAPSE_ADMIN}/v1"


def _backwards(request: web.Request) -> bool:
    """Newest first (`dir=b`) unless `dir=f`."""
    value = query_str(request, "dir", default="b")
    if value not in ("f", "b"):
        raise MatrixError("M_INVALID_PARAM", "dir must be f or b")
    return value == "b"


async def _room_names(hs, room_ids: set[str]) -> dict[str, dict[str, Any]]:
    states = await hs.room_admin.store.summary_state(sorted(room_ids))
    return {room_id: {"name": state.get("m.room.name", {}).get("name"),
                      "canonical_alias": state.get("m.room.canonical_alias", {}).get("alias")}
            for room_id, state in states.items()}


def _report_json(report: Report, names: dict[str, dict[str, Any]]) -> dict[str, Any]:
    room = names.get(report.room_id or "", {})
    result = {"id": report.report_id, "received_ts": report.received_ts, "room_id": report.room_id,
              "name": room.get("name"), "canonical_alias": room.get("canonical_alias"), "user_id": report.reporter,
              "reason": report.reason}
    if report.kind == EVENT:
        result.update({"event_id": report.event_id, "score": report.score, "sender": report.user_id})
    return result


async def _page(request: web.Request, kind: str, key: str) -> web.Response:
    hs = request.app[HOMESERVER]
    start, limit = paging(request)
    reports, total = await hs.reports.page(
        kind, start=start, limit=limit, backwards=_backwards(request), room_id=query_str(request, "room_id"),
        reporter=query_str(request, "user_id"), user_id=query_str(request, "event_sender_user_id"),
    )
    names = await _room_names(hs, {r.room_id for r in reports if r.room_id})
    result: dict[str, Any] = {key: [_report_json(r, names) for r in reports], "total": total}
    if start + len(reports) < total:
        result["next_token"] = start + len(reports)
    return json_response(result)


@routes.get(f"{V1}/event_reports")
async def event_reports(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/event_reports: reported events, newest first (`dir=f` oldest
    first), `from`/`limit` offset paging with an integer `next_token`, filtered by
    `room_id`, `user_id` (the reporter) and `event_sender_user_id`."""
    return await _page(request, EVENT, "event_reports")


@routes.get(f"{V1}/room_reports")
async def room_reports(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/room_reports: reported rooms, with the same paging, order and
    `room_id`/`user_id` filters as event reports."""
    return await _page(request, ROOM, "room_reports")


async def _event_report(request: web.Request) -> Report:
    report = await request.app[HOMESERVER].reports.get_report(request.match_info["report_id"])
    if report is None or report.kind != EVENT:
        raise MatrixError("M_NOT_FOUND", "Event report not found")
    return report


@routes.get(f"{V1}/event_reports/{{report_id}}")
async def event_report(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/event_reports/{reportId}: one event report with the reported
    event as stored (`event_json`, the PDU; null once the event is purged); 404 if unknown."""
    hs = request.app[HOMESERVER]
    report = await _event_report(request)
    names = await _room_names(hs, {report.room_id} if report.room_id else set())
    row = (await hs.rooms.store.get_event_rows([report.event_id])).get(report.event_id)
    return json_response({**_report_json(report, names), "event_json": row.event.pdu if row is not None else None})


@routes.delete(f"{V1}/event_reports/{{report_id}}")
async def delete_event_report(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/event_reports/{reportId}: delete it (404 if unknown)."""
    report = await _event_report(request)
    await request.app[HOMESERVER].reports.delete_report(report.report_id)
    return json_response({})
