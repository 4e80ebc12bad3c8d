"""The members a joined room's /sync section carries: with lazy-loading, the member events
of the timeline's senders (the spec's "Lazy-loading room members"), remembered per
connection so that one already sent is not repeated; and the room summary (heroes and
member counts).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Any

from ranvier.events.model import MEMBER
from ranvier.rooms.head import State
from ranvier.rooms.service import RoomHead
from ranvier.rooms.store import EventRow, StateKey
from ranvier.sync.stream_sections import _Window
from ranvier.sync.timeline import Timeline

#: The (user, device) connections whose lazily sent members are remembered.
LAZY_CONNECTIONS = 10_000
HEROES = 5


class RoomMembers:
    """The member parts of room sections, a base class of SyncService; `_lazy_sent` holds,
    per (user, device) connection and room, user_id -> the member event ID it was sent."""

    timeline: Timeline
    _lazy_sent: OrderedDict[tuple[str, str], dict[str, dict[str, str]]]

    async def _lazy_members(self, window: _Window, head: RoomHead, state_ids: dict[StateKey, str], rows: list[EventRow],
                            full: bool) -> dict[StateKey, str]:
        """With lazy_load_members: the member events of the timeline's senders as they were
        at its start (and the user's own in a full sync). The membership changes of a gap
        stay, since the client cannot know them otherwise. A member event this connection
        was already sent (in state or timeline) is not repeated, unless the filter asks for
        redundant members or the sync is full."""
        state_filter = window.sync_filter.room.state
        if not state_filter.lazy_load_members:
            return state_ids
        needed = {row.event.sender for row in rows}
        if full:
            needed.add(window.user_id)
            result = {key: eid for key, eid in state_ids.items() if key[0] != MEMBER or key[1] in needed} \
                if state_ids else {}
        else:
            result = dict(state_ids)
            missing = [user_id for user_id in needed if (MEMBER, user_id) not in result]
            if missing and rows:
                at_start = await self._member_ids_at_start(head, rows[0], missing)
                result.update(((MEMBER, user_id), event_id) for user_id, event_id in at_start.items())
        sent = self._lazy_sent_to(window, head.room_id)
        if result:
            in_timeline = {row.event.event_id for row in rows}
            redundant_ok = full or state_filter.include_redundant_members
            result = {key: eid for key, eid in result.items() if eid not in in_timeline
                      and (key[0] != MEMBER or redundant_ok or sent.get(key[1]) != eid)}
            sent.update((key[1], eid) for key, eid in result.items() if key[0] == MEMBER)
        for row in rows:
            if row.event.type == MEMBER:
                sent[row.event.state_key] = row.event.event_id
        return result

    async def _member_ids_at_start(self, head: RoomHead, first: EventRow, user_ids: list[str]) -> dict[str, str]:
        """user_id -> their member event just before `first`: from the room's head when no
        state has changed since (the usual case), else from the state group."""
        if first.state_group_before == head.state_group:
            events = {user_id: head.state.get((MEMBER, user_id)) for user_id in user_ids}
            return {user_id: event.event_id for user_id, event in events.items() if event is not None}
        state = await self.timeline.state_at_start(first)
        return {user_id: state[(MEMBER, user_id)] for user_id in user_ids if (MEMBER, user_id) in state}

    def _lazy_sent_to(self, window: _Window, room_id: str) -> dict[str, str]:
        """user_id -> member event ID sent on this (user, device) connection in this room."""
        connection = (window.user_id, window.requester.device_id)
        sent = self._lazy_sent.setdefault(connection, {})
        self._lazy_sent.move_to_end(connection)
        if len(self._lazy_sent) > LAZY_CONNECTIONS:
            self._lazy_sent.popitem(last=False)
        return sent.setdefault(room_id, {})

    def _summary(self, head: RoomHead, user_id: str) -> dict[str, Any]:
        """The spec's room summary: joined and invited counts, and as heroes the first five
        other joined or invited members in stream order (depth, which grows with the stream
        within a room), or, when there are none, those who left or were banned. The members
        are counted once per state of the room (kept with its head), not once per sync:
        every member of a big room syncs after a join."""
        joined, invited, present, gone = head.derived(_count_members)
        heroes = [member for member in present if member != user_id][:HEROES] or \
            [member for member in gone if member != user_id][:HEROES]
        return {"m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited}


def _count_members(state: State) -> tuple[int, int, list[str], list[str]]:
    """Joined and invited counts, and the first HEROES + 1 joined or invited members and
    those who left or were banned, in stream order: enough heroes whoever the reader is."""
    joined = invited = 0
    present: list[tuple[int, str]] = []
    gone: list[tuple[int, str]] = []
    for (event_type, state_key), event in state.items():
        if event_type != MEMBER:
            continue
        membership = event.membership
        if membership == "join":
            joined += 1
        elif membership == "invite":
            invited += 1
        (present if membership in ("join", "invite") else gone).append((event.depth, state_key))
    return (joined, invited, [member for _, member in heapq.nsmallest(HEROES + 1, present)],
            [member for _, member in heapq.nsmallest(HEROES + 1, gone)])
