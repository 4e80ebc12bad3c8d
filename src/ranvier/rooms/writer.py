"""The room server's writing half: room heads in memory, building local events on them,
the entry of events of every origin (`input`), and the one transaction per batch.

One writer per room at a time (a lock per room), rooms in parallel. A new local event is
built from the room's head kept in memory (current state, forward extremities), checked
against the auth rules of the room's version, hashed, signed, stored with its derived
rows in one transaction, and only then made visible in memory and announced. Events of
other servers enter through `input` (rooms/input.py), which places them in the graph.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol

import orjson

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.auth import AuthError
from ranvier.events.model import CREATE, MEMBER, REDACTION, Event, build_event
from ranvier.events.room_versions import ROOM_VERSIONS, RoomVersion
from ranvier.events.signing import SigningKey
from ranvier.metrics import EVENTS_PERSISTED
from ranvier.notify.notifier import Notifier
from ranvier.notify.streams import StreamPositions
from ranvier.rooms.graph_store import GraphQueries
from ranvier.rooms.head import Draft, RoomHead
from ranvier.rooms.input import Batch, EventInput, EventKind, Outcome
from ranvier.rooms.state import StateGroups
from ranvier.rooms.store import NewRoom, PersistedEvent, PersistHook, RoomStore, StateKey, StateMap
from ranvier.rooms.sync_queries import SyncQueries

log = logging.getLogger(__name__)

#: Spec limit on the size of an event.
MAX_EVENT_BYTES = 65536
_HEADS_CACHED = 5_000
_USERS_CACHED = 50_000

JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"
#: Memberships a user can give up by leaving.
HELD_MEMBERSHIPS = (JOIN, INVITE, KNOCK)
HISTORY_VISIBILITY = "m.room.history_visibility"
GUEST_ACCESS = "m.room.guest_access"


def now_ms() -> int:
    return int(time.time() * 1000)


class Accounts(Protocol):
    """What the room server needs to know of local accounts (the users service's store)."""

    async def get_profile(self, user_id: str) -> tuple[str | None, str | None] | None: ...

    async def guests_among(self, user_ids: list[str]) -> list[str]: ...


class RoomWriter:
    def __init__(self, store: RoomStore, users: Accounts, *, server_name: str, signing_key: SigningKey,
                 notifier: Notifier) -> None:
        self.store = store
        self.users = users
        self.server_name = server_name
        self.signing_key = signing_key
        self.notifier = notifier
        self.positions = StreamPositions(0)
        #: The next position below zero: backfilled history, outliers, rejected events.
        self._history_position = -1
        self._next_state_group = 1
        self.graph = GraphQueries(store)
        self.states = StateGroups(store, self.graph, self._next_group)
        self._input = EventInput(self)
        self._locks: dict[str, asyncio.Lock] = {}
        self._heads: OrderedDict[str, RoomHead] = OrderedDict()
        self._txns: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
        #: room_id -> stream position of its newest event, so /sync finds changed rooms in memory.
        self.room_streams: dict[str, int] = {}
        #: user_id -> {room_id: (membership, stream)} for recently active users, kept up to
        #: date as membership events commit (a Future while it is being loaded).
        self._user_rooms: OrderedDict[str, dict[str, tuple[str, int]] | asyncio.Future] = OrderedDict()
        self._user_room_updates: dict[str, list[tuple[str, str, int]]] = {}
        #: Other services' rows derived from each event, stored in the event's transaction.
        self.persist_hooks: list[PersistHook] = []
        #: Checks of a client's new event against stored events (relations), under the room's lock:
        #: check(head, sender, event_type, content, state_key) raises MatrixError to refuse it.
        self.send_checks: list[Callable[[RoomHead, str, str, dict[str, Any], str | None], Awaitable[None]]] = []
        #: Shadow-banned senders (users.moderation, set by the server): their messages,
        #: state events and invites are built and answered but never stored.
        self.shadow_banned: set[str] = set()
        #: Rooms a server admin blocked (room_id -> admin; rooms.admin keeps it): nobody
        #: joins, is invited or knocks any more.
        self.blocked_rooms: dict[str, str] = {}

    async def start(self) -> None:
        """Continue numbering after what the database holds."""
        last_stream, first_stream, last_group = await self.store.max_positions()
        self.positions = StreamPositions(last_stream)
        self._history_position = min(first_stream, 0) - 1
        self._next_state_group = last_group + 1
        self.room_streams = await SyncQueries(self.store).last_stream_per_room()

    # -- the room head -------------------------------------------------------------------

    def _lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def head(self, room_id: str) -> RoomHead:
        """The room's head, loaded once and then kept up to date by the writer."""
        head = self._heads.get(room_id)
        if head is not None:
            self._heads.move_to_end(room_id)
            return head
        row = await self.store.get_room(room_id)
        if row is None:
            raise MatrixError("M_NOT_FOUND", "Unknown room")
        state_ids = await self.store.current_state_ids(room_id)
        events = await self.store.get_events(state_ids.values())
        _, chain_length = await self.states.load(row.current_state_group)
        extremities = await self.store.forward_extremities(room_id)
        head = RoomHead(room_id, ROOM_VERSIONS[row.room_version], {k: events[v] for k, v in state_ids.items()},
                        row.current_state_group, chain_length, extremities)
        if room_id not in self._heads:
            self._remember_head(head)
        return self._heads[room_id]

    async def heads(self, room_ids: list[str], known: Mapping[str, Event] | None = None) -> dict[str, RoomHead]:
        """The heads of many rooms: the cached ones, and the others loaded together (a few
        queries in all, not several per room: a cold /sync of many rooms). Unknown rooms are
        left out. A loaded head is kept only while the cache has room: a sync of more rooms
        than it holds would otherwise evict the heads it loaded first (and everyone else's)
        and load them again the next time; those beyond are the caller's alone. Their
        events go into the event cache only if they are a small part of it, for the same
        reason; those the caller has parsed already may come in `known`."""
        found = self.cached_heads(room_ids)
        missing = [room_id for room_id in dict.fromkeys(room_ids) if room_id not in found]
        if not missing:
            return found
        known = known or {}
        rows = await self.store.heads_of_rooms(missing)
        wanted = [event_id for row in rows.values() for event_id in (*row.extremities, *row.state.values())
                  if event_id not in known]
        events = await self.store.get_events(wanted, cache=self.store.worth_caching(len(wanted)))
        events.update(known)
        for room_id, row in rows.items():
            head = self._heads.get(room_id)  # if written or loaded meanwhile: that one is current
            if head is None:
                head = RoomHead(
                    room_id, ROOM_VERSIONS[row.room_version], {key: events[eid] for key, eid in row.state.items()},
                    row.state_group, row.chain_length,
                    {eid: events[eid].depth for eid in row.extremities if eid in events})
                if len(self._heads) < _HEADS_CACHED:
                    self._remember_head(head)
            found[room_id] = head
        return found

    def cached_heads(self, room_ids: list[str]) -> dict[str, RoomHead]:
        """The heads of these rooms that are in memory."""
        found = {}
        for room_id in room_ids:
            head = self._heads.get(room_id)
            if head is not None:
                self._heads.move_to_end(room_id)
                found[room_id] = head
        return found

    def _remember_head(self, head: RoomHead) -> None:
        self._heads[head.room_id] = head
        self._heads.move_to_end(head.room_id)
        if len(self._heads) > _HEADS_CACHED:
            self._heads.popitem(last=False)

    async def state_group_ids(self, state_group: int) -> dict[StateKey, str]:
        """The state of a group (the state before some event), with the hot ones cached."""
        return await self.states.ids(state_group)

    async def user_memberships(self, user_id: str) -> dict[str, tuple[str, int]]:
        """room_id -> (membership, stream) of the user's latest membership in every room
        they have not forgotten; from memory for active users."""
        entry = self._user_rooms.get(user_id)
        if isinstance(entry, dict):
            self._user_rooms.move_to_end(user_id)
            return entry
        if isinstance(entry, asyncio.Future):
            return await asyncio.shield(entry)
        loading = asyncio.get_running_loop().create_future()
        self._user_rooms[user_id] = loading
        self._user_room_updates[user_id] = []
        try:
            rooms = await SyncQueries(self.store).current_memberships(user_id)
        except BaseException as exc:
            del self._user_rooms[user_id]
            self._user_room_updates.pop(user_id, None)
            loading.set_exception(exc)
            loading.exception()
            raise
        for room_id, membership, stream in self._user_room_updates.pop(user_id):
            if stream > rooms.get(room_id, ("", -1))[1]:
                rooms[room_id] = (membership, stream)
        self._user_rooms[user_id] = rooms
        if len(self._user_rooms) > _USERS_CACHED:
            oldest = next(iter(self._user_rooms))
            if isinstance(self._user_rooms[oldest], dict):
                del self._user_rooms[oldest]
        loading.set_result(rooms)
        return rooms

    def _note_membership(self, user_id: str, room_id: str, membership: str, stream: int) -> None:
        entry = self._user_rooms.get(user_id)
        if isinstance(entry, dict):
            if stream > entry.get(room_id, ("", -1))[1]:
                entry[room_id] = (membership, stream)
        elif entry is not None:
            self._user_room_updates[user_id].append((room_id, membership, stream))

    async def room_exists(self, room_id: str) -> bool:
        return room_id in self._heads or await self.store.get_room(room_id) is not None

    # -- removing (server admins: rooms.admin) ------------------------------------------

    async def remove_room(self, room_id: str, delete_rows: Callable[[], Awaitable[None]]) -> None:
        """Run `delete_rows` (which deletes the room's rows) with the room locked, then
        forget everything this process keeps of the room."""
        async with self._lock(room_id):
            await delete_rows()
            self._heads.pop(room_id, None)
            self.room_streams.pop(room_id, None)
            self.store.forget_room(room_id)
            for entry in self._user_rooms.values():
                if isinstance(entry, dict):
                    entry.pop(room_id, None)
        self._locks.pop(room_id, None)

    async def remove_events(self, room_id: str, event_ids: list[str],
                            delete_rows: Callable[[], Awaitable[None]]) -> None:
        """Run `delete_rows` (which deletes these events' rows) with the room locked, then
        drop the events from the caches."""
        async with self._lock(room_id):
            await delete_rows()
            self.store.forget_room(room_id, only=set(event_ids))

    # -- building events -------------------------------------------------------------------

    def _next_group(self) -> int:
        group = self._next_state_group
        self._next_state_group += 1
        return group

    def allocate_history_position(self) -> int:
        """The next stream position below zero (events /sync never reports)."""
        position = self._history_position
        self._history_position -= 1
        return position

    async def _draft(self, head: RoomHead) -> Draft:
        """A draft on the room's head. When the room has more forward extremities than an
        event may name, the draft starts from the resolved state of those it names."""
        prev_ids = head.prev_event_ids()
        if len(prev_ids) == len(head.extremities):
            return Draft(head)
        rows = await self.store.get_event_rows(prev_ids)
        afters = [await self.states.load(rows[event_id].state_group_after) for event_id in prev_ids]
        resolved = await self.states.resolve(head.version, [ids for ids, _ in afters], {})
        base_group = rows[prev_ids[0]].state_group_after
        group, chain = self.states.derive(base_group, afters[0][0], afters[0][1], resolved)
        return Draft(head, base=await self.states.events(resolved), state_group=group.state_group,
                     chain_length=chain, prev_event_ids=prev_ids,
                     depth=max(head.extremities[event_id] for event_id in prev_ids), new_groups=[group])

    def _build(self, draft: Draft, sender: str, event_type: str, content: dict[str, Any], *,
               state_key: str | None = None, now: int) -> Event:
        """The next event of the draft, hashed, signed and authorised (M_FORBIDDEN when the
        auth rules refuse it, M_TOO_LARGE past the spec's size limit)."""
        version = draft.head.version
        auth_keys = auth_rules.auth_types_for_event(version, event_type, sender, state_key, content)
        auth_state = {key: ev for key in auth_keys if (ev := draft.get(key)) is not None}
        create = draft.get((CREATE, ""))
        if create is not None:
            auth_state[(CREATE, "")] = create
        redacts = content.get("redacts") if event_type == REDACTION else None
        event = build_event(
            version,
            room_id=None if version.room_id_is_create_event_id and event_type == CREATE else draft.head.room_id,
            sender=sender,
            type=event_type,
            content={k: v for k, v in content.items() if k != "redacts"} if redacts else content,
            state_key=state_key,
            prev_event_ids=draft.prev_event_ids,
            auth_event_ids=[ev.event_id for key, ev in auth_state.items()
                            if key != (CREATE, "") or version.create_event_in_auth_events],
            depth=draft.depth + 1,
            origin_server_ts=now,
            signing_key=self.signing_key,
            server_name=self.server_name,
            redacts=redacts if isinstance(redacts, str) else None,
        )
        if len(orjson.dumps(event.pdu)) > MAX_EVENT_BYTES:
            raise MatrixError("M_TOO_LARGE", f"Event is larger than {MAX_EVENT_BYTES} bytes")
        try:
            auth_rules.check_auth(version, event, auth_state)
        except AuthError as exc:
            raise MatrixError("M_FORBIDDEN", exc.reason) from None
        return event

    def _add_event(
        self,
        draft: Draft,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        txn: tuple[str, str] | None = None,
        now: int,
    ) -> Event:
        """Build the next event of the draft, authorise it and queue it for storage."""
        event = self._build(draft, sender, event_type, content, state_key=state_key, now=now)
        visibility_event = draft.get((HISTORY_VISIBILITY, ""))
        visibility = visibility_event.content.get("history_visibility") if visibility_event else None
        relation = content.get("m.relates_to")
        item = PersistedEvent(
            event=event,
            stream_ordering=0,
            state_group_before=draft.state_group,
            state_group_after=draft.state_group,
            history_visibility=visibility if isinstance(visibility, str) else "shared",
            txn_device=txn[0] if txn else None,
            txn_id=txn[1] if txn else None,
            contains_url=isinstance(content.get("url"), str),
            redacts=event.redacts,
        )
        if isinstance(relation, dict) and isinstance(relation.get("event_id"), str) and isinstance(relation.get("rel_type"), str):
            item.relates_to, item.rel_type = relation["event_id"], relation["rel_type"]
        for hook in self.persist_hooks:
            item.hook_data.append((hook, hook.prepare(draft, event, item)))
        if event.is_state:
            key = (event_type, state_key)
            replaced = draft.get(key)
            item.replaces_state = replaced.event_id if replaced else None
            group, chain = self.states.with_event(draft.state_group, draft.chain_length, key, event.event_id,
                                                  draft.full_state_ids)
            item.new_state_groups.append(group)
            item.state_group_after = draft.state_group = group.state_group
            draft.chain_length = chain
            draft.state[key] = event
        draft.items.append(item)
        draft.advance(event)
        return event

    async def _write(self, batch: Batch) -> "PendingCommit":
        """Store a batch and move the room's head; call with the room locked.

        The head moves on before the group commit lands, so the room's next event can join
        the same commit; `_announce` (called after unlocking) waits for durability and
        only then lets readers see the events.
        """
        try:
            durable = await self.store.persist(batch.items, batch.change, new_room=batch.new_room)
        except BaseException:
            for position in batch.positions:
                self.positions.finish(position)
            self.states.forget(batch.state_groups)
            raise
        self.store.forget_events(item.event.event_id for item in batch.items if item.replaces_outlier)
        self.store.remember_persisted(batch.items)
        if batch.new_head is not None:
            self._remember_head(batch.new_head)
        return PendingCommit(batch, durable)

    async def _announce(self, pending: "PendingCommit") -> None:
        batch = pending.batch
        room_id = batch.head.room_id
        try:
            await pending.durable
        except BaseException:
            self._heads.pop(room_id, None)  # reloaded from the database on next use
            self.store.forget_events(item.event.event_id for item in batch.items)
            self.states.forget(batch.state_groups)
            raise
        finally:
            for position in batch.positions:
                self.positions.finish(position)
        self.store.after_commit(batch.items)
        EVENTS_PERSISTED.inc(len(batch.items))
        for stream, key, event in batch.change.state_changes:
            if key[0] == MEMBER and event.membership is not None:
                self._note_membership(key[1], room_id, event.membership, stream)
        if batch.positions:
            self.room_streams[room_id] = max(self.room_streams.get(room_id, 0), max(batch.positions))
            self.notifier.notify([f"room:{room_id}", *(f"user:{u}" for u in batch.wake_users)])

    # -- events of every origin --------------------------------------------------------

    async def input(self, room_id: str, events: list[Event], kind: EventKind, *,
                    state_before: dict[str, StateMap] | None = None,
                    room_version: RoomVersion | None = None) -> dict[str, Outcome]:
        """Place events in the room's graph (see rooms/input.py): new events from other
        servers, outliers, backfilled history, and events built here that another server
        signed. `state_before` gives the state before events whose prev events are not
        known (a join through another server, a gap); `room_version` is needed for a room
        this server does not hold yet. Returns what became of each event."""
        async with self._lock(room_id):
            head = await self.head_if_known(room_id)
            version = head.version if head is not None else room_version
            if version is None:
                raise MatrixError("M_NOT_FOUND", "Unknown room")
            batch = await self._input.process(head, room_id, events, kind, state_before=state_before or {},
                                              version=version)
            if not batch.items:
                return batch.outcomes
            for item in batch.items:
                if item.in_timeline and item.stream_ordering > 0:
                    view = Draft(batch.head, base=await self._state_before_item(item, batch))
                    item.hook_data = [(hook, hook.prepare(view, item.event, item)) for hook in self.persist_hooks]
            pending = await self._write(batch)
        await self._announce(pending)
        return batch.outcomes

    async def head_if_known(self, room_id: str) -> RoomHead | None:
        try:
            return await self.head(room_id)
        except MatrixError:
            return None

    async def _state_before_item(self, item: PersistedEvent, batch: Batch):
        """The state before an event of a batch, as events (what persist hooks look at)."""
        if item.state_group_before == batch.head.state_group:
            return batch.head.state
        pending = {i.event.event_id: i.event for i in batch.items}
        return await self.states.events(await self.states.ids(item.state_group_before), pending)

    async def record_out_of_band_membership(self, event: Event, room_version: RoomVersion) -> int:
        """An invite of a local user (or its rejection, or a knock) in a room this server
        does not hold: the event, as an outlier, and the user's membership, which /sync
        reports. Returns its stream position."""
        room_id = event.room_id
        async with self._lock(room_id):
            position = self.positions.allocate()
            item = PersistedEvent(event, position, 0, "shared", outlier=True)
            new_room = NewRoom(room_id, room_version.identifier, "", 0, False, None)
            try:
                durable = await self.store.record_out_of_band_membership(item, new_room)
                await durable
            finally:
                self.positions.finish(position)
        self.store.forget_events([event.event_id])
        self._note_membership(event.state_key, room_id, event.membership or LEAVE, position)
        self.notifier.notify([f"user:{event.state_key}", f"room:{room_id}"])
        return position


@dataclass
class PendingCommit:
    batch: Batch
    durable: "asyncio.Future[None]"
