"""The space hierarchy over federation (server-server API, "Spaces"), both directions.

Served: `answer` gives another server a room's entry and its children's, from the rooms'
heads and the entries the client API's walk shows (`rooms.hierarchy.space_entry`). A room
is shown to a server when its history is world-readable or its join rule public or knock,
when one of that server's users is joined to it or invited, or when its restricted join
rule names a room one of them is joined to; and never against the room's server ACL. The
requested room must be one this server is in and that the server may see (else 404
M_NOT_FOUND); a child this server is not in is left out, one the server may not see is
listed in `inaccessible_children`.

Asked: `RemoteSpaces.lookup` is what `SpaceHierarchy.remote` calls for a room this server
is not in: the given servers in turn (at most `MAX_SERVERS`, each with a short timeout),
the first answer that checks (`space_answers`) is used, and answers are kept for
`ANSWER_TTL_S` (no answer at all for `FAILURE_TTL_S`), so the pages of a walk see the
same tree and an unreachable server is not waited for on each page.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.identifiers import domain_of
from ranvier.federation.acl import server_allowed
from ranvier.federation.client import FederationClient, FederationError, Unreachable, path_segment
from ranvier.federation.expiring import ExpiringCache
from ranvier.federation.space_answers import checked_answer
from ranvier.rooms.hierarchy import RemoteSpace, allowed_rooms, open_to_anyone, restricted, space_entry, \
    suggested_children
from ranvier.rooms.service import INVITE, RoomHead, RoomServer

log = logging.getLogger(__name__)

#: How many of a room's servers are asked before giving up on it.
MAX_SERVERS = 3
#: How long one server may take to answer.
LOOKUP_TIMEOUT_S = 5.0
#: The largest answer read.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
ANSWER_TTL_S = 300.0
FAILURE_TTL_S = 60.0
#: How many answers are kept.
MAX_CACHED = 1000


class HierarchyServing:
    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms

    async def _visible_to(self, origin: str, head: RoomHead) -> bool:
        if not server_allowed(head.state, origin):
            return False
        if open_to_anyone(head) or any(domain_of(user_id) == origin for user_id in head.joined):
            return True
        if any(domain_of(user_id) == origin and auth_rules.membership_of(head.state, user_id) == INVITE
               for event_type, user_id in head.state if event_type == "m.room.member"):
            return True
        if restricted(head):
            for room_id in allowed_rooms(head):
                allowed = await self.rooms.head_if_known(room_id)
                if allowed is not None and allowed.resident and any(domain_of(u) == origin for u in allowed.joined):
                    return True
        return False

    async def answer(self, origin: str, room_id: str, suggested_only: bool) -> dict[str, Any]:
        head = await self.rooms.head_if_known(room_id)
        if head is None or not head.resident or not await self._visible_to(origin, head):
            raise MatrixError("M_NOT_FOUND", "This server is not in the room, or yours may not see it")
        events = suggested_children(head, suggested_only)
        children, inaccessible = [], []
        for event in events:
            child = await self.rooms.head_if_known(event.state_key)
            if child is None or not child.resident:
                continue
            if await self._visible_to(origin, child):
                children.append(space_entry(child, suggested_children(child, suggested_only)))
            else:
                inaccessible.append(event.state_key)
        return {"room": space_entry(head, events), "children": children, "inaccessible_children": inaccessible}


class RemoteSpaces:
    def __init__(self, client: FederationClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        #: (room ID, suggested_only) -> the answer, or None when no server gave one.
        self._cache: ExpiringCache[tuple[str, bool], RemoteSpace | None] = ExpiringCache(MAX_CACHED, clock)

    async def lookup(self, room_id: str, servers: list[str], suggested_only: bool) -> RemoteSpace | None:
        key = (room_id, suggested_only)
        cached = self._cache.get(key)
        if cached is not None:
            return cached[0]
        space = None
        for server in servers[:MAX_SERVERS]:
            space = await self._ask(server, room_id, suggested_only)
            if space is not None:
                break
        self._cache.put(key, space, ANSWER_TTL_S if space is not None else FAILURE_TTL_S)
        return space

    async def _ask(self, server: str, room_id: str, suggested_only: bool) -> RemoteSpace | None:
        try:
            answer = await self.client.get(server, f"/_matrix/federation/v1/hierarchy/{path_segment(room_id)}",
                                           query={"suggested_only": "true" if suggested_only else "false"},
                                           timeout_s=LOOKUP_TIMEOUT_S, limit=MAX_ANSWER_BYTES)
        except (FederationError, Unreachable) as exc:
            log.info("the hierarchy of %s was not had from %s: %s", room_id, server, exc)
            return None
        space = checked_answer(room_id, answer)
        if space is None:
            log.info("%s answered about %s what is not a hierarchy", server, room_id)
        return space
