"""History for other servers (server-server API, "Backfilling and retrieving missing events")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.federation_api.events import transaction_of
from ranvier.web.app import large_body
from ranvier.web.http import json_response
from ranvier.web.params import field, query_int
from ranvier.web.routing import Routes

routes = Routes()


@routes.get(f"{FEDERATION}/v1/backfill/{{room_id}}", versions=None)
async def backfill(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/backfill/{roomId}?v=...&limit=: the events `v` and those
    before them, deepest first, at most `limit` (and 100), leaving out what the origin's
    users may not see; 400 without `v`."""
    origin, _ = await signed_request(request)
    from_ids = request.query.getall("v", [])
    if not from_ids:
        raise MatrixError("M_MISSING_PARAM", "Missing required query parameter: v")
    limit = query_int(request, "limit", 10, minimum=0)
    pdus = await federation(request).serving.backfill(origin, request.match_info["room_id"], from_ids, limit)
    return json_response(transaction_of(request, pdus))


@routes.post(f"{FEDERATION}/v1/get_missing_events/{{room_id}}", versions=None)
@large_body
async def get_missing_events(request: web.Request) -> web.Response:
    """POST /_matrix/federation/v1/get_missing_events/{roomId}: the events before
    `latest_events` back to `earliest_events`, at `min_depth` or deeper, at most `limit`
    (10 by default, 20 at most), oldest first, leaving out what the origin may not see."""
    origin, body = await signed_request(request)
    earliest = field(body, "earliest_events", list, required=True)
    latest = field(body, "latest_events", list, required=True)
    if not all(isinstance(i, str) for i in [*earliest, *latest]):
        raise MatrixError("M_BAD_JSON", "earliest_events and latest_events must be lists of event IDs")
    limit = field(body, "limit", int, default=10)
    min_depth = field(body, "min_depth", int, default=0)
    events = await federation(request).serving.missing_events(origin, request.match_info["room_id"], earliest,
                                                              latest, limit, min_depth)
    return json_response({"events": events})
