"""Simplified sliding sync (MSC4186), under its unstable prefix."""

from __future__ import annotations

from aiohttp import web

from ranvier.sync.sliding_request import parse_request
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/sync", versions=("unstable/org.matrix.simplified_msc3575",))
async def sliding_sync(request: web.Request) -> web.Response:
    """POST /unstable/org.matrix.simplified_msc3575/sync: the rooms of the request's lists
    (filtered, ordered by activity, cut to their ranges) and subscriptions, each with only
    what this connection (user, device, `conn_id`) was not sent yet, and the extensions
    account_data, receipts and typing (for the lists and rooms they name), to_device (with
    `since` and `limit`) and e2ee (key counts, device-list changes). `pos`, `timeout` and `set_presence` are read from the
    body or the query; both request dialects are understood (`range` or `ranges`,
    `required_state` as an object or as [type, state_key] pairs, `is_invited` or
    `is_invite`). Repeating a `pos` starts from the same state again; a `pos` that is
    unknown, expired (connections live in memory: a restart forgets them) or issued to
    another device is 400 M_UNKNOWN_POS; over 100 lists, subscriptions or ranges in a list, a list name that
    is not an opaque identifier, a bad range, set_presence or to_device `since` is 400 M_INVALID_PARAM;
    subscriptions to rooms the user may not see are ignored. Guests are refused (403
    M_GUEST_ACCESS_FORBIDDEN): the guest access module lists /sync, not this."""
    who = await requester(request)
    body = await read_json(request)
    return json_response(await request.app[HOMESERVER].sliding_sync.sync_connection(who, parse_request(body, request.query)))
