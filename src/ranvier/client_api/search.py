"""Server-side search: POST /search."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.search.index import RANK, RECENT
from ranvier.search.paging import GROUP_KEYS
from ranvier.search.service import MAX_CONTEXT, EventContext, RoomEventsSearch
from ranvier.search.text import TYPE_OF_KEY
from ranvier.sync.filters import EventFilter
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_str
from ranvier.web.routing import Routes

routes = Routes()


def _context(body: dict[str, Any]) -> EventContext | None:
    context = field(body, "event_context", dict)
    if context is None:
        return None
    limits = {}
    for name in ("before_limit", "after_limit"):
        value = field(context, name, int, default=5)
        if not 0 <= value <= MAX_CONTEXT:
            raise MatrixError("M_INVALID_PARAM", f"event_context.{name} must be between 0 and {MAX_CONTEXT}")
        limits[name] = value
    return EventContext(**limits, include_profile=field(context, "include_profile", bool, default=False))


def _group_by(body: dict[str, Any]) -> tuple[str, ...]:
    groupings = field(body, "groupings", dict, default={})
    keys = []
    for group in field(groupings, "group_by", list, default=[]):
        if not isinstance(group, dict) or not isinstance(group.get("key"), str):
            raise MatrixError("M_BAD_JSON", "groupings.group_by holds objects with a key")
        if group["key"] not in GROUP_KEYS:
            raise MatrixError("M_INVALID_PARAM", f"Results can be grouped by {' or '.join(GROUP_KEYS)} only")
        keys.append(group["key"])
    return tuple(dict.fromkeys(keys))


def parse_room_events(body: dict[str, Any]) -> RoomEventsSearch:
    """The `room_events` criteria: M_BAD_JSON for wrong JSON types, M_INVALID_PARAM for
    values outside the spec's lists."""
    keys = field(body, "keys", list, default=list(TYPE_OF_KEY))
    if not all(isinstance(key, str) for key in keys):
        raise MatrixError("M_BAD_JSON", "keys must be a list of strings")
    unknown = [key for key in keys if key not in TYPE_OF_KEY]
    if unknown:
        raise MatrixError("M_INVALID_PARAM", f"Cannot search {unknown[0]!r}: keys are {', '.join(TYPE_OF_KEY)}")
    order_by = field(body, "order_by", str, default=RANK)
    if order_by not in (RANK, RECENT):
        raise MatrixError("M_INVALID_PARAM", "order_by must be rank or recent")
    return RoomEventsSearch(
        search_term=field(body, "search_term", str, required=True),
        keys=tuple(keys),
        event_filter=EventFilter.parse(body.get("filter")),
        order_by=order_by,
        context=_context(body),
        include_state=field(body, "include_state", bool, default=False),
        group_by=_group_by(body),
    )


@routes.post("/search")
async def search(request: web.Request) -> web.Response:
    """POST /search: full-text search of the `room_events` category (the only one the spec
    defines; others are ignored and absent from the answer).

    Searches message bodies, room names and topics in every room the user has a membership
    in and has not forgotten, finding only events they could read through /messages. All
    words must match; `"quoted words"` are a phrase, `word*` a prefix. `next_batch` (query)
    continues a search with the same body: a token from another order is M_INVALID_PARAM,
    one that does not parse too. Guests are refused. Read only, so repeating is harmless.
    """
    who = await requester(request)
    body = await read_json(request)
    categories = field(body, "search_categories", dict, required=True)
    room_events = field(categories, "room_events", dict)
    answer: dict[str, Any] = {}
    if room_events is not None:
        criteria = parse_room_events(room_events)
        answer["room_events"] = await request.app[HOMESERVER].search.search_room_events(
            who, criteria, query_str(request, "next_batch"))
    return json_response({"search_categories": answer})
