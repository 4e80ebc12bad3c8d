"""The push service: each user's push rules, evaluated for every local member as each
event is stored, and the unread notification and highlight counts per room and thread
that /sync reports.

It is one of the room server's persist hooks, so an event's notifications commit in the
event's own transaction and its counts appear in the same /sync as the event. A user's
rules live in their `m.push_rules` account data (the spec's place for them); every user
who changed anything is loaded at start, because rules are evaluated while an event is
built, where nothing can be read from the database.
"""

from __future__ import annotations

import asyncio
import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import orjson

from ranvier.events.auth import CREATE_KEY, POWER_LEVELS_KEY, get_power_level, notification_power_level
from ranvier.events.model import MEMBER, Event
from ranvier.push.audience import Audience
from ranvier.push.rules import DEFAULT_RULESET, Member, PushEvent, Rule, RuleSet, generic_rule, matching_rule
from ranvier.push.store import MAIN, UNTHREADED, PushStore
from ranvier.push.user_rules import UserRules, check_actions, check_kind, new_rule, render_rule
from ranvier.rooms.store import PersistedEvent, RoomStore
from ranvier.storage.engine import Transaction
from ranvier.users.account_data import AccountData

PUSH_RULES = "m.push_rules"
#: Events known to be in a thread (event_id -> thread root), so relations to them follow.
_THREADS_CACHED = 50_000
#: (user, room) unread counts kept in memory, updated as notifications commit.
_COUNTS_CACHED = 100_000
#: Rooms whose audience is kept (as many as the room server keeps heads of).
_AUDIENCES_CACHED = 5_000
#: Rooms and (user, room) pairs whose last change of counts is remembered.
_CHANGES_KEPT = 100_000

Counts = dict[str, int]
#: (notify, highlight, actions as JSON)
Outcome = tuple[bool, bool, str]
_NOTHING: Outcome = (False, False, "[]")


def _outcome(rule: Rule | None) -> Outcome:
    return (rule.notify, rule.highlight, rule.actions_json) if rule is not None else _NOTHING


@dataclass(slots=True)
class PreparedPush:
    """What `prepare` worked out for one event."""

    #: The thread root, or None for the main timeline.
    thread_id: str | None
    #: What every joined local member but the sender gets, unless `members` says otherwise.
    generic: Outcome = _NOTHING
    #: The members whose outcome differs (and the invitee of an invite), with theirs.
    members: dict[str, Outcome] = field(default_factory=dict)
    #: Who was joined when the event was stored (user_id -> join event).
    joined: Mapping[str, Any] = field(default_factory=dict)
    #: Whether the sender is local: sending an event reads everything before it in its thread.
    sender_reads: bool = False

    def outcome_for(self, user_id: str, sender: str) -> Outcome:
        if user_id in self.members:
            return self.members[user_id]
        return self.generic if user_id in self.joined and user_id != sender else _NOTHING


class PushService:
    def __init__(self, store: PushStore, rooms: RoomStore, account_data: AccountData, *, server_name: str) -> None:
        self.store = store
        self.rooms = rooms
        self.account_data = account_data
        self._suffix = ":" + server_name
        self._threads: OrderedDict[str, str] = OrderedDict()
        self._counts: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        #: room_id -> {user: their counts in `_counts`}, so a new event updates only those.
        self._counted: dict[str, dict[str, dict[str, Any]]] = {}
        #: Which counts a query that raced with a change must not cache (see `_CountChanges`).
        self._changes = _CountChanges()
        #: Users who changed their rules: what they chose, and it compiled.
        self._user_rules: dict[str, UserRules] = {}
        self._compiled: dict[str, RuleSet] = {}
        self._audiences: dict[str, Audience] = {}
        #: Each distinct list of actions stored (as JSON) -> its number in push_action_sets.
        self._action_ids: dict[str, int] = {}
        self._rule_locks: dict[str, asyncio.Lock] = {}
        #: Called after commit with (room_id, {user: notified}) for the users in `pusher_users`.
        self.on_notified: Callable[[str, dict[str, PreparedPush], str], None] | None = None
        self.pusher_users: set[str] = set()

    async def start(self) -> None:
        """Load every user's own rules (users who never changed theirs have no entry), and
        the lists of actions stored."""
        self._action_ids = {actions: actions_id for actions_id, actions in await self.store.action_sets()}
        for user_id, content in await self.account_data.entries_of_type(PUSH_RULES):
            rules = UserRules.from_content(content)
            if not rules.is_default:
                self._install(user_id, rules)
        self.account_data.computed[PUSH_RULES] = self.rules_content

    # -- the persist hook ----------------------------------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> PreparedPush:
        """Evaluate the rules for the local members, with the room as it is before the event
        (member count, display names, power levels): the generic outcome once, and each
        member's own only where it may differ (see `Audience`)."""
        sender = event.sender
        joined: Mapping[str, Event] = draft.joined_members()
        prepared = PreparedPush(self.thread_of(event.content), joined=joined, sender_reads=self._is_mine(sender))
        audience = self._audience(draft.head.room_id, joined)
        invitee = event.state_key if event.type == MEMBER and event.membership == "invite" else None
        if invitee is not None and (invitee == sender or invitee in joined or not self._is_mine(invitee)):
            invitee = None
        if len(audience.local) == (sender in audience.local) and invitee is None:
            return prepared
        state = {key: ev for key in (CREATE_KEY, POWER_LEVELS_KEY) if (ev := draft.get(key)) is not None}
        levels = state[POWER_LEVELS_KEY].content.get("notifications") if POWER_LEVELS_KEY in state else None
        push_event = PushEvent.from_event(
            event.pdu, len(joined), get_power_level(state, sender),
            {key: notification_power_level(state, key) for key in levels} if isinstance(levels, dict) else None,
        )
        narrowed = DEFAULT_RULESET.narrow(push_event)
        prepared.generic = _outcome(generic_rule(narrowed))
        candidates = audience.candidates(push_event, narrowed, event.type, sender)
        candidates.discard(sender)
        if invitee is not None:
            candidates.add(invitee)
        for user_id in candidates:
            member = joined.get(user_id) if user_id != invitee else event
            name = member.content.get("displayname") if member is not None else None
            rules = self._compiled.get(user_id, narrowed)
            outcome = _outcome(matching_rule(rules, push_event, Member(user_id, name if isinstance(name, str) else None)))
            if user_id == invitee:
                if outcome[0] or outcome[1]:
                    prepared.members[user_id] = outcome
            elif outcome != prepared.generic:
                prepared.members[user_id] = outcome
        return prepared

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, PreparedPush]]) -> None:
        self._changes.note({item.event.room_id for item, _ in prepared})  # before the commit, see `counts`
        room_rows, member_rows, reads = [], [], []
        action_sets: dict[int, str] = {}
        for item, push in prepared:
            event = item.event
            thread = push.thread_id or MAIN
            if push.generic[0] or push.generic[1]:
                actions_id = self._actions_id(push.generic[2], action_sets)
                room_rows.append((event.room_id, item.stream_ordering, thread, int(push.generic[0]),
                                  int(push.generic[1]), actions_id))
            member_rows += [(user_id, event.room_id, item.stream_ordering, thread, int(notify), int(highlight),
                             self._actions_id(actions, action_sets))
                            for user_id, (notify, highlight, actions) in push.members.items()]
            if push.sender_reads:
                reads.append((event.sender, event.room_id, thread, item.stream_ordering))
        await self.store.insert(txn, list(action_sets.items()), room_rows, member_rows)
        await self.store.advance_in(txn, reads)

    def _actions_id(self, actions: str, used: dict[int, str]) -> int:
        """The number of a list of actions (a new one for a list never seen), noted in `used`."""
        actions_id = self._action_ids.get(actions)
        if actions_id is None:
            actions_id = self._action_ids[actions] = max(self._action_ids.values(), default=0) + 1
        used[actions_id] = actions
        return actions_id

    def committed(self, prepared: list[tuple[PersistedEvent, PreparedPush]]) -> None:
        self._changes.note({item.event.room_id for item, _ in prepared})
        for item, push in prepared:
            event = item.event
            room_id = event.room_id
            if (counted := self._counted.get(room_id)) is not None:
                _count_event(counted, push, event.sender)
            if push.sender_reads and (cached := self._counts.get((event.sender, room_id))) is not None:
                _clear(cached, push.thread_id)
            if push.thread_id is not None:
                self._threads[event.event_id] = push.thread_id
                if len(self._threads) > _THREADS_CACHED:
                    self._threads.popitem(last=False)
            if self.on_notified is not None and self.pusher_users:
                self.on_notified(room_id, push, event.sender)

    def _audience(self, room_id: str, joined: Mapping[str, Event]) -> Audience:
        audience = self._audiences.get(room_id)
        if audience is None or audience.joined is not joined:
            audience = Audience.build(room_id, joined, self._is_mine, self._user_rules.get)
            self._audiences.pop(room_id, None)
            self._audiences[room_id] = audience
            if len(self._audiences) > _AUDIENCES_CACHED:
                del self._audiences[next(iter(self._audiences))]
        return audience

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

    # -- push rules ----------------------------------------------------------------------

    def rules_of(self, user_id: str) -> UserRules:
        return self._user_rules.get(user_id) or UserRules()

    def rules_content(self, user_id: str) -> dict[str, Any]:
        """The `m.push_rules` content (and the push rules API's answer): the whole rule set."""
        return {"global": self.rules_of(user_id).content(user_id)}

    def rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        return render_rule(self.rules_of(user_id).find(kind, rule_id), user_id)

    async def put_rule(self, user_id: str, kind: str, rule_id: str, body: dict[str, Any], *,
                       before: str | None, after: str | None) -> None:
        check_kind(kind)
        rule = new_rule(kind, rule_id, body)
        await self._edit(user_id, lambda rules: rules.put(kind, rule, before=before, after=after))

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        await self._edit(user_id, lambda rules: rules.delete(kind, rule_id))

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._edit(user_id, lambda rules: rules.set_attribute(kind, rule_id, "enabled", enabled))

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        checked = check_actions(actions)
        await self._edit(user_id, lambda rules: rules.set_attribute(kind, rule_id, "actions", checked))

    async def copy_room_rules(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """The user's rules about a room apply to its replacement too (a room upgrade);
        nothing is written when no rule names the old room."""
        await self._edit(user_id, lambda rules: rules.copy_room_rules(old_room_id, new_room_id))

    async def _edit(self, user_id: str, change: Callable[[UserRules], bool | None]) -> None:
        """Apply one edit to a copy of the user's rules, store it, then use it (one edit of a
        user's rules at a time, so none is lost); an edit that returns False changed nothing,
        and nothing is stored."""
        lock = self._rule_locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            rules = copy.deepcopy(self.rules_of(user_id))
            if change(rules) is not False:
                await self.account_data.put(user_id, PUSH_RULES, {"global": rules.content(user_id)})
                self._install(user_id, rules)
        if not lock.locked():
            self._rule_locks.pop(user_id, None)

    def _install(self, user_id: str, rules: UserRules) -> None:
        if rules.is_default:
            self._user_rules.pop(user_id, None)
            self._compiled.pop(user_id, None)
        else:
            self._user_rules[user_id] = rules
            self._compiled[user_id] = rules.compile()
        self._audiences.clear()  # rebuilt, with the new rules, at each room's next event

    # -- reading -------------------------------------------------------------------------

    async def mark_read(self, user_id: str, room_id: str, stream_ordering: int, thread_id: str | None = None) -> None:
        """The user has read up to `stream_ordering`: in the whole room (`thread_id` None, an
        unthreaded receipt), in the main timeline (`"main"`) or in one thread (its root's ID).
        Positions only move forward, so the most advanced of m.read and m.read.private wins."""
        self._changes.note([(user_id, room_id)])
        await self.store.advance((user_id, room_id, UNTHREADED if thread_id is None else thread_id, stream_ordering))
        self._changes.note([(user_id, room_id)])
        self._forget_counts(user_id, room_id)

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
        started = self._changes.generation
        fresh: dict[str, dict[str, Any]] = {
            room_id: {"notification_count": 0, "highlight_count": 0, "main": _zero(), "threads": {}}
            for room_id in missing
        }
        for room_id, thread_id, notifications, highlights in await self.store.unread(user_id, missing):
            _add(fresh[room_id], None if thread_id == MAIN else thread_id, notifications, highlights)
        # Only the counts of rooms that nothing changed while the query ran are kept: a
        # change elsewhere (another room's message, another user's receipt) does not matter.
        for room_id, counts in fresh.items():
            if self._changes.unchanged_since(started, room_id, (user_id, room_id)):
                self._counts[(user_id, room_id)] = counts
                self._counted.setdefault(room_id, {})[user_id] = counts
        while len(self._counts) > _COUNTS_CACHED:
            self._forget_counts(*next(iter(self._counts)))
        result.update(fresh)
        return _copies(result)

    def _forget_counts(self, user_id: str, room_id: str) -> None:
        self._counts.pop((user_id, room_id), None)
        users = self._counted.get(room_id)
        if users is not None:
            users.pop(user_id, None)
            if not users:
                del self._counted[room_id]

    async def notifications(self, user_id: str, *, before: int | None, limit: int,
                            highlight_only: bool) -> list[dict[str, Any]]:
        """The events that notified the user, newest first: {stream, room_id, event_id,
        actions, read, ts (None for notifications stored before actions were)}."""
        rows = await self.store.notifications(user_id, before=before, limit=limit, highlight_only=highlight_only)
        reads = await self.store.read_positions(user_id, sorted({row[1] for row in rows}))
        found = []
        for stream, room_id, event_id, thread_id, notify, highlight, actions, ts in rows:
            read_upto = max(reads.get((room_id, UNTHREADED), 0), reads.get((room_id, thread_id), 0))
            found.append({"stream": stream, "room_id": room_id, "event_id": event_id, "ts": ts,
                          "actions": _actions(actions, bool(highlight)), "read": stream <= read_upto})
        return found


def _actions(stored: str | None, highlight: bool) -> list[Any]:
    """Stored actions; rows written before actions were stored only know notify and highlight."""
    if stored is not None:
        return orjson.loads(stored)
    return ["notify", {"set_tweak": "highlight"}] if highlight else ["notify"]


class _CountChanges:
    """When each room's counts (a room ID: an event committed there) and each user's in a
    room (a (user, room) pair: a read receipt) last changed, in generations of one counter.

    A count query that started at generation G may be cached only if nothing it covers
    changed after G: the room is noted both before its events commit (`write`, so a query
    that read before the commit and returns after it is not kept) and after (`committed`,
    which updates the counts already kept). Past `_CHANGES_KEPT` entries all are forgotten
    and queries started before then are not cached.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._changed: dict[str | tuple[str, str], int] = {}
        self._forgotten_at = 0

    def note(self, keys: Iterable[str | tuple[str, str]]) -> None:
        self.generation += 1
        if len(self._changed) > _CHANGES_KEPT:
            self._changed.clear()
            self._forgotten_at = self.generation
        for key in keys:
            self._changed[key] = self.generation

    def unchanged_since(self, generation: int, *keys: str | tuple[str, str]) -> bool:
        return generation >= self._forgotten_at and all(self._changed.get(key, 0) <= generation for key in keys)


def _count_event(counted: dict[str, dict[str, Any]], push: PreparedPush, sender: str) -> None:
    """Add one committed event to the kept counts of the users it notified (`outcome_for`
    for each, worked out for the many at once: the joined members but the sender get the
    generic outcome, those in `members` their own)."""
    thread_id = push.thread_id
    notify, highlight = int(push.generic[0]), int(push.generic[1])
    if notify or highlight:
        generic_users = counted.keys() & push.joined.keys()
        generic_users.discard(sender)
        generic_users.difference_update(push.members)
        for user_id in generic_users:
            _add(counted[user_id], thread_id, notify, highlight)
    for user_id, (own_notify, own_highlight, _) in push.members.items():
        if (own_notify or own_highlight) and (counts := counted.get(user_id)) is not None:
            _add(counts, thread_id, int(own_notify), int(own_highlight))


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

