"""Retrieving events and state (server-server API, "Retrieving events")."""

from __future__ import annotations

import time

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.web.http import json_response
from ranvier.web.params import query_int, query_str
from ranvier.web.routing import Routes

routes = Routes()


def transaction_of(request: web.Request, pdus: list) -> dict:
    """The transaction shape of /event and /backfill answers."""
    return {"origin": federation(request).server_name, "origin_server_ts": int(time.time() * 1000), "pdus": pdus}


@routes.get(f"{FEDERATION}/v1/event/{{event_id}}", versions=None)
async def get_event(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/event/{eventId}: one event, redacted if it was redacted; 404
    when unknown, rejected, or not visible to the origin's users (history visibility), 403
    when the room's ACL denies the origin."""
    origin, _ = await signed_request(request)
    pdu = await federation(request).serving.event(origin, request.match_info["event_id"])
    return json_response(transaction_of(request, [pdu]))


@routes.get(f"{FEDERATION}/v1/state/{{room_id}}", versions=None)
async def get_state(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/state/{roomId}?event_id=: the state before an event and its
    auth chain, as events (404 for a room this server is not in or an event whose state it
    does not know; 403 when the origin may not see the room then, or the ACL denies it)."""
    origin, _ = await signed_request(request)
    event_id = query_str(request, "event_id", required=True)
    return json_response(await federation(request).serving.state(origin, request.match_info["room_id"], event_id))


@routes.get(f"{FEDERATION}/v1/state_ids/{{room_id}}", versions=None)
async def get_state_ids(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/state_ids/{roomId}?event_id=: the same as /state, as event IDs."""
    origin, _ = await signed_request(request)
    event_id = query_str(request, "event_id", required=True)
    return json_response(await federation(request).serving.state_ids(origin, request.match_info["room_id"], event_id))


@routes.get(f"{FEDERATION}/v1/timestamp_to_event/{{room_id}}", versions=None)
async def timestamp_to_event(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=: the room's timeline
    event closest to `ts` in the direction `dir` (`f` or `b`, else 400); 404 when none."""
    origin, _ = await signed_request(request)
    ts = query_int(request, "ts", -1, minimum=0, maximum=2**53)
    direction = query_str(request, "dir", required=True)
    if ts < 0 or direction not in ("f", "b"):
        raise MatrixError("M_INVALID_PARAM", "ts must be a timestamp and dir f or b")
    service = federation(request)
    room_id = request.match_info["room_id"]
    await service.serving.room_for(origin, room_id)
    found = await service.rooms.store.event_closest_to_ts(room_id, ts, forwards=direction == "f")
    if found is None:
        raise MatrixError("M_NOT_FOUND", "No event found")
    return json_response({"event_id": found[0], "origin_server_ts": found[1]})


@routes.get(f"{FEDERATION}/v1/event_auth/{{room_id}}/{{event_id}}", versions=None)
async def event_auth(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}: the event's whole auth chain
    (404 when unknown, 403 when not visible to the origin or the ACL denies it)."""
    origin, _ = await signed_request(request)
    return json_response(await federation(request).serving.event_auth(
        origin, request.match_info["room_id"], request.match_info["event_id"]))
