"""The push service: push rules evaluated for every member as each event is stored, and the
unread notification and highlight counts per room and thread that /sync reports.

It is one of the room server's persist hooks, so an event's push actions commit in the
event's own transaction and its counts appear in the same /sync as the event.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ranvier.events.auth import CREATE_KEY, POWER_LEVELS_KEY, get_power_level, notification_power_level
from ranvier.events.model import MEMBER, Event
from ranvier.push.rules import DEFAULT_RULESET, Member, PushEvent, RuleSet, evaluate, notifies
from ranvier.push.store import MAIN, UNTHREADED, PushStore
from ranvier.rooms.store import PersistedEvent, RoomStore
from ranvier.storage.engine import Transaction

#: Events known to be in a thread (event_id -> thread root), so relations to them follow.
_THREADS_CACHED = 50_000
#: (user, room) unread counts kept in memory, updated as actions commit.
_COUNTS_CACHED = 100_000

Counts = dict[str, int]


@dataclass(slots=True)
class PreparedPush:
    """What `prepare` worked out for one event."""

    #: The thread root, or None for the main timeline.
    thread_id: str | None
    #: (user_id, notify, highlight) of every member the event notifies or highlights.
    actions: list[tuple[str, bool, bool]] = field(default_factory=list)
    #: Whether the sender is local: sending an event reads everything before it in its thread.
    sender_reads: bool = False


class PushService:
    def __init__(self, store: PushStore, rooms: RoomStore, *, server_name: str,
                 rules: RuleSet = DEFAULT_RULESET) -> None:
        self.store = store
        self.rooms = rooms
        self.rules = rules
        self._suffix = ":" + server_name
        self._threads: OrderedDict[str, str] = OrderedDict()
        self._counts: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        #: Bumped by every change to counts, so a query that raced with one is not cached.
        self._counts_version = 0

    # -- the persist hook ----------------------------------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> PreparedPush:
        """Evaluate the rules for each local member but the sender, with the room as it is
        before the event (member count, display names, power levels)."""
        sender = event.sender
        prepared = PreparedPush(self.thread_of(event.content), sender_reads=self._is_mine(sender))
        joined: dict[str, Event] = draft.joined_members()
        recipients = [(user_id, join.content.get("displayname")) for user_id, join in joined.items()
                      if user_id != sender and self._is_mine(user_id)]
        invitee = event.state_key if event.type == MEMBER and event.membership == "invite" else None
        if invitee is not None and invitee != sender and invitee not in joined and self._is_mine(invitee):
            recipients.append((invitee, event.content.get("displayname")))
        if not recipients:
            return prepared
        state = {key: ev for key in (CREATE_KEY, POWER_LEVELS_KEY) if (ev := draft.get(key)) is not None}
        levels = state[POWER_LEVELS_KEY].content.get("notifications") if POWER_LEVELS_KEY in state else None
        push_event = PushEvent.from_event(
            event.pdu, len(joined), get_power_level(state, sender),
            {key: notification_power_level(state, key) for key in levels} if isinstance(levels, dict) else None,
        )
        rules = self.rules.narrow(push_event)
        if not rules.rules:
            return prepared
        if not rules.rules[0].conditions:
            notify, highlight = notifies(rules.rules[0].actions)
            if notify or highlight:
                prepared.actions = [(user_id, notify, highlight) for user_id, _ in recipients]
            return prepared
        for user_id, name in recipients:
            notify, highlight = notifies(evaluate(rules, push_event, Member(user_id, name if isinstance(name, str) else None)))
            if notify or highlight:
                prepared.actions.append((user_id, notify, highlight))
        return prepared

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, PreparedPush]]) -> None:
        actions = []
        reads = []
        for item, push in prepared:
            event = item.event
            thread = push.thread_id or MAIN
            actions += [(event.room_id, user_id, item.stream_ordering, event.event_id, int(notify), int(highlight), thread)
                        for user_id, notify, highlight in push.actions]
            if push.sender_reads:
                reads.append((event.sender, event.room_id, thread, item.stream_ordering))
        await self.store.insert_actions(txn, actions)
        await self.store.advance_in(txn, reads)

    def committed(self, prepared: list[tuple[PersistedEvent, PreparedPush]]) -> None:
        self._counts_version += 1
        for item, push in prepared:
            room_id = item.event.room_id
            for user_id, notify, highlight in push.actions:
                cached = self._counts.get((user_id, room_id))
                if cached is not None:
                    _add(cached, push.thread_id, int(notify), int(highlight))
            if push.sender_reads and (cached := self._counts.get((item.event.sender, room_id))) is not None:
                _clear(cached, push.thread_id)
            if push.thread_id is not None:
                self._threads[item.event.event_id] = push.thread_id
                if len(self._threads) > _THREADS_CACHED:
                    self._threads.popitem(last=False)

    # -- threads -------------------------------------------------------------------------

    def thread_of(self, content: dict[str, Any]) -> str | None:
        """The thread root of an event with this content, or None for the main timeline.

        An `m.thread` relation names the root; any other relation to an event known to be
        in a thread (a reaction, an edit) puts the event in that thread too. Each event's
        thread is resolved when it is stored, so chains of relations follow for free.
        """
        relation = content.get("m.relates_to")
        if not isinstance(relation, dict):
            return None
        parent = relation.get("event_id")
        if not isinstance(parent, str):
            return None
        if relation.get("rel_type") == "m.thread":
            return parent
        if isinstance(relation.get("rel_type"), str):
            return self._threads.get(parent)
        return None

    def _is_mine(self, user_id: str) -> bool:
        return user_id.endswith(self._suffix)

    # -- reading -------------------------------------------------------------------------

    async def mark_read(self, user_id: str, room_id: str, stream_ordering: int, thread_id: str | None = None) -> None:
        """The user has read up to `stream_ordering`: in the whole room (`thread_id` None, an
        unthreaded receipt), in the main timeline (`"main"`) or in one thread (its root's ID).
        Positions only move forward, so the most advanced of m.read and m.read.private wins."""
        await self.store.advance((user_id, room_id, UNTHREADED if thread_id is None else thread_id, stream_ordering))
        self._counts_version += 1
        self._counts.pop((user_id, room_id), None)

    async def stream_ordering_of(self, event_id: str) -> int | None:
        """The stream ordering of a stored event (what a receipt's event ID stands for)."""
        row = (await self.rooms.get_event_rows([event_id])).get(event_id)
        return row.stream_ordering if row is not None else None

    async def counts(self, user_id: str, room_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Unread counts of each room, from one query.

        room_id -> {"notification_count", "highlight_count"} over the whole room (what a
        client without threads sees), plus "main": the same for the main timeline only, and
        "threads": {thread root: counts} for each thread with unread notifications (what a
        client that asked for `unread_thread_notifications` sees).
        """
        result = {room_id: cached for room_id in room_ids if (cached := self._counts.get((user_id, room_id)))}
        missing = [room_id for room_id in room_ids if room_id not in result]
        if not missing:
            return _copies(result)
        version = self._counts_version
        fresh: dict[str, dict[str, Any]] = {
            room_id: {"notification_count": 0, "highlight_count": 0, "main": _zero(), "threads": {}}
            for room_id in missing
        }
        for room_id, thread_id, notifications, highlights in await self.store.unread(user_id, missing):
            _add(fresh[room_id], None if thread_id == MAIN else thread_id, notifications, highlights)
        if version == self._counts_version:
            for room_id, counts in fresh.items():
                self._counts[(user_id, room_id)] = counts
            while len(self._counts) > _COUNTS_CACHED:
                self._counts.popitem(last=False)
        result.update(fresh)
        return _copies(result)


def _add(room: dict[str, Any], thread_id: str | None, notifications: int, highlights: int) -> None:
    """Count unread notifications into a room's totals and its main timeline or thread."""
    room["notification_count"] += notifications
    room["highlight_count"] += highlights
    part = room["main"] if thread_id is None else room["threads"].setdefault(thread_id, _zero())
    part["notification_count"] += notifications
    part["highlight_count"] += highlights


def _clear(room: dict[str, Any], thread_id: str | None) -> None:
    """The user has read all of the main timeline or one thread (by sending into it)."""
    part = room["main"] if thread_id is None else room["threads"].pop(thread_id, None)
    if part is None:
        return
    room["notification_count"] -= part["notification_count"]
    room["highlight_count"] -= part["highlight_count"]
    if thread_id is None:
        room["main"] = _zero()


def _copies(counts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Copies for the caller, so the cached counters are never changed from outside."""
    return {room_id: {**room, "main": dict(room["main"]),
                      "threads": {thread: dict(c) for thread, c in room["threads"].items()}}
            for room_id, room in counts.items()}


def _zero() -> Counts:
    return {"notification_count": 0, "highlight_count": 0}
