"""The space hierarchy (spec: client-server API, "Spaces", GET /hierarchy), and the
summary of a single room (GET /room_summary), which shows the same entry under the
same access rule.

The tree is walked depth-first from the requested space over its `m.space.child` state
events (those whose `via` is a non-empty list of server names), children in the spec's
order, each room at most once (loops end there). A room is listed when the user may see
or join it; the others, and rooms this server is not in (the hierarchy of other
servers is not asked for over federation), are left out. Everything is read from the rooms' heads kept in memory.

Pagination tokens are stateless: they carry the request's parameters and how many rooms
were already returned, and the next page walks the tree again up to there, so any
process serving the same database can continue a walk.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.rooms.directory import room_summary, room_type_of
from ranvier.rooms.service import BAN, INVITE, JOIN, RoomHead, RoomServer

SPACE_CHILD = "m.space.child"
SPACE = "m.space"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_DEPTH = 32
#: How many rooms one request may look at before it stops walking.
MAX_VISITED = 5000


def valid_via(content: dict[str, Any]) -> bool:
    via = content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(server, str) and server for server in via)


def _valid_order(content: dict[str, Any]) -> str | None:
    order = content.get("order")
    if isinstance(order, str) and len(order) <= 50 and all("\x20" <= c <= "\x7e" for c in order):
        return order
    return None


def children(head: RoomHead) -> list[Any]:
    """The space's valid m.space.child events in the spec's order: a valid `order` first
    (by code points), then by the event's timestamp, then by room ID."""
    if room_type_of(head) != SPACE:
        return []
    events = [event for (event_type, _), event in head.state.items()
              if event_type == SPACE_CHILD and valid_via(event.content)]

    def key(event) -> tuple:
        order = _valid_order(event.content)
        return (order is None, order or "", event.origin_server_ts, event.state_key)

    return sorted(events, key=key)


def _is_suggested(event) -> bool:
    return event.content.get("suggested") is True


def _stripped(event) -> dict[str, Any]:
    return {"type": event.type, "state_key": event.state_key, "content": event.content, "sender": event.sender,
            "origin_server_ts": event.origin_server_ts}


def _allowed_rooms(head: RoomHead) -> list[str]:
    join_rules = head.state.get(("m.room.join_rules", ""))
    allow = join_rules.content.get("allow") if join_rules is not None else None
    if not isinstance(allow, list):
        return []
    return [entry["room_id"] for entry in allow if isinstance(entry, dict)
            and entry.get("type") == "m.room_membership" and isinstance(entry.get("room_id"), str)]


def _restricted(head: RoomHead, join_rule: str) -> bool:
    version = head.version
    return (join_rule == "restricted" and version.restricted_join_rule) or (
        join_rule == "knock_restricted" and version.knock_restricted_join_rule)


def _token(root: str, suggested_only: bool, max_depth: int | None, offset: int) -> str:
    raw = orjson.dumps([root, suggested_only, max_depth, offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_token(token: str) -> tuple[str, bool, int | None, int]:
    try:
        root, suggested_only, max_depth, offset = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if (not isinstance(root, str) or type(suggested_only) is not bool or type(offset) is not int or offset < 0
                or not (max_depth is None or type(max_depth) is int)):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise MatrixError("M_INVALID_PARAM", "from is not a pagination token of this server") from None
    return root, suggested_only, max_depth, offset


class _Access:
    """Whether a room's summary may be shown (the hierarchy's rule and the room summary's):
    to anyone when its history is world-readable or its join rule is public or knock;
    to a user also when they are joined or invited, or when a restricted join rule names
    a room they are joined to, unless they are banned."""

    def __init__(self, rooms: RoomServer, user_id: str | None) -> None:
        self.rooms = rooms
        self.user_id = user_id
        self._joined_rooms: set[str] | None = None

    async def __call__(self, head: RoomHead) -> bool:
        state = head.state
        visibility = state.get(("m.room.history_visibility", ""))
        if visibility is not None and visibility.content.get("history_visibility") == "world_readable":
            return True
        membership = auth_rules.membership_of(state, self.user_id) if self.user_id is not None else None
        if membership == BAN:
            return False
        if membership in (JOIN, INVITE):
            return True
        join_rule = auth_rules.join_rule_of(state)
        if join_rule == "public":
            return True
        if (join_rule == "knock" and head.version.knock_join_rule) or (
                join_rule == "knock_restricted" and head.version.knock_restricted_join_rule):
            return True
        if self.user_id is not None and _restricted(head, join_rule):
            if self._joined_rooms is None:
                memberships = await self.rooms.user_memberships(self.user_id)
                self._joined_rooms = {r for r, (m, _) in memberships.items() if m == JOIN}
            return any(allowed in self._joined_rooms for allowed in _allowed_rooms(head))
        return False


class SpaceHierarchy:
    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms

    async def _head(self, room_id: str) -> RoomHead | None:
        try:
            return await self.rooms.head(room_id)
        except MatrixError:
            return None

    async def hierarchy(self, user_id: str, room_id: str, *, suggested_only: bool = False,
                        max_depth: int | None = None, limit: int | None = None,
                        from_token: str | None = None) -> dict[str, Any]:
        if limit is not None and limit < 1:
            raise MatrixError("M_INVALID_PARAM", "limit must be greater than zero")
        if max_depth is not None and max_depth < 0:
            raise MatrixError("M_INVALID_PARAM", "max_depth must not be negative")
        offset = 0
        if from_token is not None:
            root, token_suggested, token_depth, offset = _parse_token(from_token)
            if root != room_id:
                raise MatrixError("M_INVALID_PARAM", "from is a token of another room's hierarchy")
            if (token_suggested, token_depth) != (suggested_only, max_depth):
                raise MatrixError("M_INVALID_PARAM", "suggested_only and max_depth cannot change on paginated requests")
        page_size = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        depth_limit = MAX_DEPTH if max_depth is None else min(max_depth, MAX_DEPTH)

        accessible = _Access(self.rooms, user_id)
        root_head = await self._head(room_id)
        if root_head is None or not await accessible(root_head):
            raise MatrixError("M_FORBIDDEN", "You are not allowed to view this room")

        stack: list[tuple[str, int]] = [(room_id, 0)]
        processed: set[str] = set()
        found = 0
        rooms: list[dict[str, Any]] = []
        more = False
        while stack and len(processed) < MAX_VISITED:
            current, depth = stack.pop()
            if current in processed:
                continue
            processed.add(current)
            head = root_head if current == room_id else await self._head(current)
            if head is None or not await accessible(head):
                continue
            if found >= offset + page_size:
                more = True
                break
            child_events = children(head)
            if suggested_only:
                child_events = [event for event in child_events if _is_suggested(event)]
            if found >= offset:
                rooms.append(self._entry(head, child_events))
            found += 1
            if depth < depth_limit:
                stack.extend((event.state_key, depth + 1) for event in reversed(child_events))
        response: dict[str, Any] = {"rooms": rooms}
        if more:
            response["next_batch"] = _token(room_id, suggested_only, max_depth, offset + page_size)
        return response

    async def summary(self, user_id: str | None, room_id: str) -> dict[str, Any]:
        """One room's summary (MSC3266, GET /room_summary) for a user, or for anyone
        (`user_id` None) when the room is public, knock or world-readable; M_NOT_FOUND
        otherwise, which does not tell a hidden room from a missing one."""
        head = await self._head(room_id)
        if head is None or not await _Access(self.rooms, user_id)(head):
            raise MatrixError("M_NOT_FOUND", "Room not found, or you may not see it")
        summary = self._entry(head, None)
        if user_id is not None:
            summary["membership"] = auth_rules.membership_of(head.state, user_id) or "leave"
        return summary

    def _entry(self, head: RoomHead, child_events: list[Any] | None) -> dict[str, Any]:
        """A room's summary with its version, encryption and allowed rooms; and, in the
        hierarchy, its children."""
        entry = room_summary(head)
        entry["room_version"] = head.version.identifier
        encryption = head.state.get(("m.room.encryption", ""))
        algorithm = encryption.content.get("algorithm") if encryption is not None else None
        if isinstance(algorithm, str):
            entry["encryption"] = algorithm
        join_rule = entry["join_rule"]
        if _restricted(head, join_rule):
            entry["allowed_room_ids"] = _allowed_rooms(head)
        if child_events is not None:
            entry["children_state"] = [_stripped(event) for event in child_events]
        return entry
