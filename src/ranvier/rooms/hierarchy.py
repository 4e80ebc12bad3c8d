"""The space hierarchy (spec: client-server API, "Spaces", GET /hierarchy), and the
summary of a single room (GET /room_summary), which shows the same entry under the
same access rule.

The tree is walked depth-first from the requested space over its `m.space.child` state
events (those whose `via` is a non-empty list of server names), children in the spec's
order, each room at most once (loops end there). A room is listed when the user may see
or join it; the others are left out. Rooms this server is in are read from their heads
kept in memory. A room it is not in is asked of other servers (`remote`, set by the
server when federation is on): their answer for a space holds the space's entry and its
children's, so a remote space costs one request, and its children that are not spaces
none; the children it calls inaccessible are left out. Without `remote`, or when no
server answers, such rooms are left out too.

Pagination tokens are stateless: they carry the request's parameters and how many rooms
were already returned, and the next page walks the tree again up to there (other
servers' answers are cached by the caller of `remote`, so a page walks what the one
before it did), so any process serving the same database can continue a walk.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.identifiers import domain_of, is_valid_room_id, is_valid_server_name
from ranvier.rooms.directory import room_summary, room_type_of
from ranvier.rooms.service import BAN, INVITE, JOIN, RoomHead, RoomServer

SPACE_CHILD = "m.space.child"
SPACE = "m.space"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_DEPTH = 32
#: How many rooms one request may look at before it stops walking.
MAX_VISITED = 5000
#: How many rooms one request may ask other servers about.
MAX_REMOTE_LOOKUPS = 100
#: Join rules that let anyone see a room's summary (knock ones: where the version has them).
OPEN_JOIN_RULES = ("public", "knock", "knock_restricted")


def valid_via(content: dict[str, Any]) -> bool:
    via = content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(server, str) and server for server in via)


def _valid_order(content: dict[str, Any]) -> str | None:
    order = content.get("order")
    if isinstance(order, str) and len(order) <= 50 and all("\x20" <= c <= "\x7e" for c in order):
        return order
    return None


def child_order(content: dict[str, Any], origin_server_ts: int, room_id: str) -> tuple:
    """The sort key of an m.space.child event in the spec's order: a valid `order` first
    (by code points), then by the event's timestamp, then by room ID."""
    order = _valid_order(content)
    return order is None, order or "", origin_server_ts, room_id


def children(head: RoomHead) -> list[Any]:
    """The space's valid m.space.child events in the spec's order."""
    if room_type_of(head) != SPACE:
        return []
    events = [event for (event_type, _), event in head.state.items()
              if event_type == SPACE_CHILD and valid_via(event.content)]
    return sorted(events, key=lambda event: child_order(event.content, event.origin_server_ts, event.state_key))


def suggested_children(head: RoomHead, suggested_only: bool) -> list[Any]:
    """`children(head)`, only the suggested ones when `suggested_only`."""
    return [event for event in children(head) if not suggested_only or event.content.get("suggested") is True]


def _stripped(event) -> dict[str, Any]:
    return {"type": event.type, "state_key": event.state_key, "content": event.content, "sender": event.sender,
            "origin_server_ts": event.origin_server_ts}


def allowed_rooms(head: RoomHead) -> list[str]:
    """The rooms whose members a restricted join rule admits."""
    join_rules = head.state.get(("m.room.join_rules", ""))
    allow = join_rules.content.get("allow") if join_rules is not None else None
    if not isinstance(allow, list):
        return []
    return [entry["room_id"] for entry in allow if isinstance(entry, dict)
            and entry.get("type") == "m.room_membership" and isinstance(entry.get("room_id"), str)]


def restricted(head: RoomHead) -> bool:
    """Whether the room's join rule is restricted (or knock_restricted) in a version that has it."""
    join_rule, version = auth_rules.join_rule_of(head.state), head.version
    return (join_rule == "restricted" and version.restricted_join_rule) or (
        join_rule == "knock_restricted" and version.knock_restricted_join_rule)


def open_to_anyone(head: RoomHead) -> bool:
    """A room whose summary anyone may see: world-readable, or public or knock to join."""
    visibility = head.state.get(("m.room.history_visibility", ""))
    if visibility is not None and visibility.content.get("history_visibility") == "world_readable":
        return True
    join_rule = auth_rules.join_rule_of(head.state)
    return join_rule == "public" or (join_rule == "knock" and head.version.knock_join_rule) or (
        join_rule == "knock_restricted" and head.version.knock_restricted_join_rule)


def space_entry(head: RoomHead, child_events: list[Any] | None) -> dict[str, Any]:
    """A room's summary with its version, encryption and allowed rooms; and, in the
    hierarchy, its children (`child_events`, as stripped events)."""
    entry = room_summary(head)
    entry["room_version"] = head.version.identifier
    encryption = head.state.get(("m.room.encryption", ""))
    algorithm = encryption.content.get("algorithm") if encryption is not None else None
    if isinstance(algorithm, str):
        entry["encryption"] = algorithm
    if restricted(head):
        entry["allowed_room_ids"] = allowed_rooms(head)
    if child_events is not None:
        entry["children_state"] = [_stripped(event) for event in child_events]
    return entry


@dataclass(frozen=True)
class RemoteSpace:
    """Another server's answer about a room (checked): its entry with `children_state`,
    the entries of the children it could give (room ID -> entry), and the children it
    says cannot be seen from this server."""

    room: dict[str, Any]
    children: dict[str, dict[str, Any]]
    inaccessible: frozenset[str]


#: remote(room_id, servers, suggested_only): another server's answer about a room, None
#: when none of the servers gave one.
RemoteLookup = Callable[[str, list[str], bool], Awaitable[RemoteSpace | None]]


@dataclass(frozen=True)
class _Child:
    room_id: str
    via: list[str]
    #: The child's entry as the parent's server gave it, when the parent is remote.
    entry: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Node:
    """A room of the walk: its entry (with `children_state`), and local head or remote answer."""

    entry: dict[str, Any]
    children: list[_Child]
    head: RoomHead | None = None


def remote_children(entry: dict[str, Any], space: RemoteSpace | None, suggested_only: bool) -> list[_Child]:
    """The children of a room another server described (`entry`'s checked `children_state`),
    in the spec's order, without those the answer calls inaccessible, each with the entry
    the answer gave of it."""
    events = [event for event in entry.get("children_state", ())
              if event["type"] == SPACE_CHILD and valid_via(event["content"])
              and (not suggested_only or event["content"].get("suggested") is True)
              and (space is None or event["state_key"] not in space.inaccessible)]
    events.sort(key=lambda event: child_order(event["content"], event["origin_server_ts"], event["state_key"]))
    known = space.children if space is not None else {}
    return [_Child(event["state_key"], list(event["content"]["via"]), known.get(event["state_key"]))
            for event in events]


def _local_node(head: RoomHead, suggested_only: bool) -> _Node:
    events = suggested_children(head, suggested_only)
    return _Node(space_entry(head, events), [_Child(event.state_key, event.content["via"]) for event in events], head)


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
    a room they are joined to, unless they are banned. A room of another server is judged
    by the entry its server gave, and by the user's membership as this server knows it."""

    def __init__(self, rooms: RoomServer, user_id: str | None) -> None:
        self.rooms = rooms
        self.user_id = user_id
        self._memberships: dict[str, str] | None = None

    async def _membership_in(self, room_ids: list[str]) -> set[str]:
        if self._memberships is None:
            memberships = await self.rooms.user_memberships(self.user_id)
            self._memberships = {room_id: membership for room_id, (membership, _) in memberships.items()}
        return {self._memberships[room_id] for room_id in room_ids if room_id in self._memberships}

    async def __call__(self, head: RoomHead) -> bool:
        visibility = head.state.get(("m.room.history_visibility", ""))
        if visibility is not None and visibility.content.get("history_visibility") == "world_readable":
            return True
        membership = auth_rules.membership_of(head.state, self.user_id) if self.user_id is not None else None
        if membership == BAN:
            return False
        if membership in (JOIN, INVITE) or open_to_anyone(head):
            return True
        if self.user_id is not None and restricted(head):
            return JOIN in await self._membership_in(allowed_rooms(head))
        return False

    async def remote(self, entry: dict[str, Any]) -> bool:
        if entry.get("world_readable") is True or entry.get("join_rule", "public") in OPEN_JOIN_RULES:
            return True
        if self.user_id is None:
            return False
        if await self._membership_in([entry["room_id"]]) & {JOIN, INVITE}:
            return True
        return JOIN in await self._membership_in(entry.get("allowed_room_ids", []))


class SpaceHierarchy:
    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms
        self.server_name = rooms.server_name
        #: Set by the server when federation is on: other servers' answers about rooms.
        self.remote: RemoteLookup | None = None

    async def _head(self, room_id: str) -> RoomHead | None:
        try:
            return await self.rooms.head(room_id)
        except MatrixError:
            return None

    async def _node(self, child: _Child, suggested_only: bool, expand: bool, lookups: list[int]) -> _Node | None:
        """The room as the walk sees it: from this server's state when it is in the room;
        else from the entry its parent's server gave, when that is all the walk needs (not
        a space, or no children wanted: `expand` false); else from other servers (the
        child's `via`, then its room ID's server), at most MAX_REMOTE_LOOKUPS a walk.
        A room known here only through an invite is the last resort, as without federation."""
        head = await self._head(child.room_id)
        if head is not None and (head.resident or self.remote is None):
            return _local_node(head, suggested_only)
        entry, space = child.entry, None
        if self.remote is not None and (entry is None or (expand and entry.get("room_type") == SPACE)) \
                and lookups[0] < MAX_REMOTE_LOOKUPS and is_valid_room_id(child.room_id):
            lookups[0] += 1
            servers = [server for server in dict.fromkeys([*child.via, domain_of(child.room_id)])
                       if server and server != self.server_name and is_valid_server_name(server)]
            space = await self.remote(child.room_id, servers, suggested_only) if servers else None
            entry = space.room if space is not None else entry
        if entry is not None:
            return _Node(entry, remote_children(entry, space, suggested_only))
        return _local_node(head, suggested_only) if head is not None else None

    async def _inviting_servers(self, user_id: str, room_id: str) -> list[str]:
        """For a room of another server that the user is only invited to: the inviter's
        server, which is in the room. A room ID of version 12 names no server, so without
        it such a space could not be browsed before joining."""
        if self.remote is None:
            return []
        head = await self._head(room_id)
        if head is None or head.resident:
            return []
        invite = await self.rooms.membership_event(room_id, user_id)
        if invite is None or invite.membership != INVITE:
            return []
        server = domain_of(invite.sender)
        return [server] if server else []

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
        lookups = [0]

        async def visible(node: _Node | None) -> bool:
            if node is None:
                return False
            return await accessible(node.head) if node.head is not None else await accessible.remote(node.entry)

        root_child = _Child(room_id, await self._inviting_servers(user_id, room_id))
        root = await self._node(root_child, suggested_only, depth_limit > 0, lookups)
        if not await visible(root):
            raise MatrixError("M_FORBIDDEN", "You are not allowed to view this room")

        stack: list[tuple[_Child, int]] = [(root_child, 0)]
        processed: set[str] = set()
        found = 0
        rooms: list[dict[str, Any]] = []
        more = False
        while stack and len(processed) < MAX_VISITED:
            child, depth = stack.pop()
            if child.room_id in processed:
                continue
            processed.add(child.room_id)
            node = root if child.room_id == room_id else \
                await self._node(child, suggested_only, depth < depth_limit, lookups)
            if not await visible(node):
                continue
            if found >= offset + page_size:
                more = True
                break
            if found >= offset:
                rooms.append(node.entry)
            found += 1
            if depth < depth_limit:
                stack.extend((grandchild, depth + 1) for grandchild in reversed(node.children))
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
        summary = space_entry(head, None)
        if user_id is not None:
            summary["membership"] = auth_rules.membership_of(head.state, user_id) or "leave"
        return summary
