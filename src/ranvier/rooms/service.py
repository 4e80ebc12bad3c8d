"""The room server: the only writer of room events.

One writer per room at a time (a lock per room), rooms in parallel. Each new event is
built from the room's head kept in memory (current state, forward extremity, depth),
checked against the auth rules of the room's version, hashed, signed, stored with its
derived rows in one transaction, and only then made visible in memory and announced.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.auth import AuthError
from ranvier.events.canonical_json import CanonicalJSONError, check_canonical
from ranvier.events.identifiers import InvalidIdentifier, domain_of, parse_user_id
from ranvier.events.model import CREATE, MEMBER, POWER_LEVELS, REDACTION, Event, build_event
from ranvier.events.room_versions import ROOM_VERSIONS, RoomVersion
from ranvier.events.signing import SigningKey
from ranvier.metrics import EVENTS_PERSISTED
from ranvier.rooms.store import NewRoom, NewStateGroup, PersistedEvent, PersistHook, RoomStore, StateKey, SyncQueries
from ranvier.storage.engine import UniqueViolation
from ranvier.sync.notifier import Notifier
from ranvier.sync.streams import StreamPositions
from ranvier.users.store import UserStore

log = logging.getLogger(__name__)

#: Longest chain of state deltas before a full snapshot is written.
MAX_STATE_CHAIN = 32
#: Spec limit on the size of an event.
MAX_EVENT_BYTES = 65536
_HEADS_CACHED = 5_000
_STATE_GROUPS_CACHED = 2_000
_USERS_CACHED = 50_000
_TXN_CACHE = 10_000

JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"
#: Memberships a user can give up by leaving.
HELD_MEMBERSHIPS = (JOIN, INVITE, KNOCK)
HISTORY_VISIBILITY = "m.room.history_visibility"
GUEST_ACCESS = "m.room.guest_access"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RoomHead:
    """What the writer needs of a room: its version, current state and forward extremity."""

    room_id: str
    version: RoomVersion
    state: dict[StateKey, Event]
    state_group: int
    chain_length: int
    last_event_id: str
    last_depth: int
    #: user_id -> their join event, kept in step with `state` (push rules and fan-out need it).
    joined: dict[str, Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.joined:
            self.joined = {key[1]: ev for key, ev in self.state.items() if key[0] == MEMBER and ev.membership == JOIN}


@dataclass
class Draft:
    """Events being built in one batch; each sees the state the ones before it left."""

    head: RoomHead
    items: list[PersistedEvent] = field(default_factory=list)
    state: dict[StateKey, Event] = field(default_factory=dict)
    state_group: int = 0
    chain_length: int = 0
    last_event_id: str = ""
    last_depth: int = 0

    def __post_init__(self) -> None:
        self.state_group = self.head.state_group
        self.chain_length = self.head.chain_length
        self.last_event_id = self.head.last_event_id
        self.last_depth = self.head.last_depth

    def get(self, key: StateKey) -> Event | None:
        return self.state[key] if key in self.state else self.head.state.get(key)

    def joined_members(self) -> dict[str, Event]:
        """Who is joined at this point of the draft: user_id -> their join event."""
        changed = {key[1]: ev for key, ev in self.state.items() if key[0] == MEMBER}
        if not changed:
            return self.head.joined
        joined = dict(self.head.joined)
        for user_id, event in changed.items():
            if event.membership == JOIN:
                joined[user_id] = event
            else:
                joined.pop(user_id, None)
        return joined

    def full_state_ids(self) -> dict[StateKey, str]:
        merged = {**self.head.state, **self.state}
        return {key: event.event_id for key, event in merged.items()}

    def apply(self) -> None:
        """Make the committed batch the room's head."""
        self.head.joined = self.joined_members()
        self.head.state.update(self.state)
        self.head.state_group = self.state_group
        self.head.chain_length = self.chain_length
        self.head.last_event_id = self.last_event_id
        self.head.last_depth = self.last_depth


class RoomServer:
    def __init__(self, store: RoomStore, users: UserStore, *, server_name: str, signing_key: SigningKey,
                 notifier: Notifier) -> None:
        self.store = store
        self.users = users
        self.server_name = server_name
        self.signing_key = signing_key
        self.notifier = notifier
        self.positions = StreamPositions(0)
        self._next_state_group = 1
        self._locks: dict[str, asyncio.Lock] = {}
        self._heads: OrderedDict[str, RoomHead] = OrderedDict()
        self._txns: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
        self._state_groups: OrderedDict[int, dict[StateKey, str]] = OrderedDict()
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
        last_stream, last_group = await self.store.max_positions()
        self.positions = StreamPositions(last_stream)
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
        chain_length = await self.store.db.fetchval(
            "SELECT chain_length FROM state_groups WHERE state_group = ?", row[1]
        )
        return self._keep_head(room_id, row, state_ids, events, chain_length)

    async def load_heads(self, room_ids: list[str]) -> None:
        """Bring the heads of these rooms into memory, four queries for all those missing
        (a cold /sync of many rooms would otherwise cost four per room); unknown rooms are
        left out."""
        missing = [room_id for room_id in dict.fromkeys(room_ids) if room_id not in self._heads]
        if not missing:
            return
        rooms = await self.store.get_rooms(missing)
        states = await self.store.current_states(list(rooms))
        events = await self.store.get_events(event_id for state in states.values() for event_id in state.values())
        lengths = await self.store.chain_lengths(list({row[1] for row in rooms.values()}))
        for room_id, row in rooms.items():
            self._keep_head(room_id, row, states[room_id], events, lengths.get(row[1]))

    def _keep_head(self, room_id: str, row: tuple[Any, ...], state_ids: dict[StateKey, str],
                   events: dict[str, Event], chain_length: int | None) -> RoomHead:
        """Cache a head loaded from the database, unless the writer made one meanwhile."""
        if room_id not in self._heads:
            version_id, state_group, last_event_id, last_depth = row[0], row[1], row[2], row[3]
            self._heads[room_id] = RoomHead(room_id, ROOM_VERSIONS[version_id],
                                            {key: events[event_id] for key, event_id in state_ids.items()},
                                            state_group, chain_length or 0, last_event_id, last_depth)
            if len(self._heads) > _HEADS_CACHED:
                self._heads.popitem(last=False)
        return self._heads[room_id]

    async def heads(self, room_ids: list[str]) -> dict[str, RoomHead]:
        """The heads of many rooms: the cached ones, and the others loaded together (a few
        queries in all, not three per room). Unknown rooms are left out."""
        found = {}
        missing = []
        for room_id in room_ids:
            head = self._heads.get(room_id)
            if head is None:
                missing.append(room_id)
            else:
                self._heads.move_to_end(room_id)
                found[room_id] = head
        if not missing:
            return found
        rows = await self.store.heads_of_rooms(missing)
        events = await self.store.get_events(eid for row in rows.values() for eid in row[5].values())
        for room_id, (version_id, state_group, last_event_id, last_depth, chain_length, state_ids) in rows.items():
            if room_id not in self._heads:  # else written or loaded meanwhile: that one is current
                self._heads[room_id] = RoomHead(room_id, ROOM_VERSIONS[version_id],
                                                {key: events[eid] for key, eid in state_ids.items()},
                                                state_group, chain_length, last_event_id, last_depth)
            found[room_id] = self._heads[room_id]
        while len(self._heads) > _HEADS_CACHED:
            self._heads.popitem(last=False)
        return found

    async def state_group_ids(self, state_group: int) -> dict[StateKey, str]:
        """The state of a group (the state before some event), with the hot ones cached."""
        state = self._state_groups.get(state_group)
        if state is None:
            state = await self.store.load_state_group(state_group) if state_group else {}
            self._state_groups[state_group] = state
            if len(self._state_groups) > _STATE_GROUPS_CACHED:
                self._state_groups.popitem(last=False)
        else:
            self._state_groups.move_to_end(state_group)
        return state

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
            prev_event_ids=[draft.last_event_id] if draft.last_event_id else [],
            auth_event_ids=[ev.event_id for key, ev in auth_state.items()
                            if key != (CREATE, "") or version.create_event_in_auth_events],
            depth=draft.last_depth + 1,
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

        visibility_event = draft.get((HISTORY_VISIBILITY, ""))
        visibility = visibility_event.content.get("history_visibility") if visibility_event else None
        relation = content.get("m.relates_to")
        item = PersistedEvent(
            event=event,
            stream_ordering=0,
            state_group_before=draft.state_group,
            history_visibility=visibility if isinstance(visibility, str) else "shared",
            txn_device=txn[0] if txn else None,
            txn_id=txn[1] if txn else None,
            contains_url=isinstance(content.get("url"), str),
        )
        if isinstance(relation, dict) and isinstance(relation.get("event_id"), str) and isinstance(relation.get("rel_type"), str):
            item.relates_to, item.rel_type = relation["event_id"], relation["rel_type"]
        for hook in self.persist_hooks:
            item.hook_data.append((hook, hook.prepare(draft, event, item)))
        if event.is_state:
            key = (event_type, state_key)
            replaced = draft.get(key)
            item.replaces_state = replaced.event_id if replaced else None
            group = self._next_group()
            if draft.chain_length >= MAX_STATE_CHAIN or draft.state_group == 0:
                entries = draft.full_state_ids()
                entries[key] = event.event_id
                item.new_state_group = NewStateGroup(group, None, 0, entries)
                draft.chain_length = 0
            else:
                item.new_state_group = NewStateGroup(group, draft.state_group, draft.chain_length + 1,
                                                     {key: event.event_id})
                draft.chain_length += 1
            draft.state[key] = event
            draft.state_group = group
        draft.items.append(item)
        draft.last_event_id = event.event_id
        draft.last_depth = event.depth
        return event

    async def _write(self, draft: Draft, *, new_room: NewRoom | None = None) -> "_PendingCommit":
        """Store the draft's events and make them the room's head; call with the room locked.

        The head moves on before the group commit lands, so the room's next event can join
        the same commit; `_announce` (called after unlocking) waits for durability and
        only then lets readers see the events.
        """
        positions = [self.positions.allocate() for _ in draft.items]
        for item, position in zip(draft.items, positions):
            item.stream_ordering = position
        try:
            durable = await self.store.persist(draft.items, new_room=new_room)
        except BaseException:
            for position in positions:
                self.positions.finish(position)
            raise
        draft.apply()
        self.store.remember_persisted(draft.items)
        if new_room is not None:
            self._heads[draft.head.room_id] = draft.head
        return _PendingCommit(draft, positions, durable)

    async def _announce(self, pending: "_PendingCommit", wake_users: tuple[str, ...] = ()) -> None:
        room_id = pending.draft.head.room_id
        try:
            await pending.durable
        except BaseException:
            self._heads.pop(room_id, None)  # reloaded from the database on next use
            self.store.forget_events(item.event.event_id for item in pending.draft.items)
            raise
        finally:
            for position in pending.positions:
                self.positions.finish(position)
        self.store.after_commit(pending.draft.items)
        EVENTS_PERSISTED.inc(len(pending.draft.items))
        for item in pending.draft.items:
            if item.event.membership is not None:
                self._note_membership(item.event.state_key, room_id, item.event.membership, item.stream_ordering)
        self.room_streams[room_id] = max(self.room_streams.get(room_id, 0), pending.positions[-1])
        self.notifier.notify([f"room:{room_id}", *(f"user:{u}" for u in wake_users)])

    # -- sending -----------------------------------------------------------------------------

    async def send_event(
        self,
        sender: str,
        device_id: str | None,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send a message or state event; a repeated (device, txn_id) returns the first event."""
        check_event_content(event_type, content, state_key)
        async with self._lock(room_id):
            if txn_id is not None and device_id is not None:
                earlier = self._txns.get((room_id, sender, device_id, txn_id))
                if earlier is not None:
                    return earlier
            head = await self.head(room_id)
            if event_type == MEMBER and state_key is not None:
                if room_id in self.blocked_rooms and content.get("membership") in (JOIN, INVITE, KNOCK):
                    raise MatrixError("M_FORBIDDEN", "This room has been blocked on this server")
                await self._check_membership_target(head, state_key, content)
            if event_type == REDACTION:
                await self._check_redaction(head, sender, content)
            for check in self.send_checks:
                await check(head, sender, event_type, content, state_key)
            draft = Draft(head)
            event = self._add_event(draft, sender, event_type, content, state_key=state_key,
                                    txn=(device_id, txn_id) if txn_id is not None and device_id else None, now=now_ms())
            if sender in self.shadow_banned and (event_type != MEMBER or (
                    state_key != sender and content.get("membership") == INVITE)):
                # The sender hears success (the same ID for a repeated txnId); nobody sees it.
                if txn_id is not None and device_id is not None:
                    self._txns[(room_id, sender, device_id, txn_id)] = event.event_id
                return event.event_id
            try:
                pending = await self._write(draft)
            except UniqueViolation:
                # Only the transaction ID can clash: a retry of a request from before a restart.
                earlier = await self.store.event_by_txn(room_id, sender, device_id or "", txn_id or "")
                if earlier is None:
                    raise
                return earlier
            if txn_id is not None and device_id is not None:
                self._txns[(room_id, sender, device_id, txn_id)] = event.event_id
                if len(self._txns) > _TXN_CACHE:
                    self._txns.popitem(last=False)
        try:
            await self._announce(pending, (state_key,) if event_type == MEMBER and state_key else ())
        except BaseException:
            self._txns.pop((room_id, sender, device_id or "", txn_id or ""), None)
            raise
        if event_type == GUEST_ACCESS and state_key == "" and content.get("guest_access") != "can_join":
            await self._remove_guests(room_id)
        return event.event_id

    async def sent_before(self, room_id: str, sender: str, device_id: str | None, txn_id: str, *,
                          ask_database: bool) -> str | None:
        """The event a (device, txn_id) already sent to the room: from memory, or from the
        database (a send from before a restart) when `ask_database`."""
        if device_id is None:
            return None
        earlier = self._txns.get((room_id, sender, device_id, txn_id))
        if earlier is None and ask_database:
            earlier = await self.store.event_by_txn(room_id, sender, device_id, txn_id)
        return earlier

    async def _remove_guests(self, room_id: str) -> None:
        """The guest access module: a room that stops admitting guests makes its guests leave."""
        head = await self.head(room_id)
        local_members = [user_id for user_id in head.joined if domain_of(user_id) == self.server_name]
        for guest in await self.users.guests_among(local_members):
            try:
                await self.update_membership(guest, room_id, guest, LEAVE)
            except MatrixError as exc:
                log.warning("could not remove guest %s from %s: %s", guest, room_id, exc.message)

    async def _check_redaction(self, head: RoomHead, sender: str, content: dict[str, Any]) -> None:
        """Redacting someone else's event needs the redact power level (the spec's server check)."""
        target_id = content.get("redacts")
        if not isinstance(target_id, str):
            raise MatrixError("M_BAD_JSON", "A redaction must name the event it redacts")
        target = (await self.store.get_event_rows([target_id])).get(target_id)
        if target is None or target.event.room_id != head.room_id:
            raise MatrixError("M_NOT_FOUND", "Unknown event")
        if target.event.sender != sender and (
                auth_rules.get_power_level(head.state, sender) < auth_rules.power_level_setting(head.state, "redact")):
            raise MatrixError("M_FORBIDDEN", "You may not redact other users' events")

    async def _check_membership_target(self, head: RoomHead, target: str, content: dict[str, Any]) -> None:
        try:
            parse_user_id(target)
        except InvalidIdentifier:
            raise MatrixError("M_INVALID_PARAM", "The state key of a membership event must be a user ID") from None
        if domain_of(target) == self.server_name and await self.users.get_profile(target) is None:
            raise MatrixError("M_NOT_FOUND", f"Unknown user {target}")
        if domain_of(target) != self.server_name and content.get("membership") in (INVITE, JOIN, KNOCK):
            raise MatrixError("M_FORBIDDEN", "This server does not federate yet; only local users can take part")

    # -- membership --------------------------------------------------------------------------

    async def member_content(self, user_id: str, membership: str, reason: str | None = None,
                             extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A membership event's content, with the user's profile copied into joins and invites."""
        content: dict[str, Any] = {"membership": membership}
        if membership in (JOIN, INVITE, KNOCK):
            profile = await self.users.get_profile(user_id)
            if profile is not None:
                if profile[0] is not None:
                    content["displayname"] = profile[0]
                if profile[1] is not None:
                    content["avatar_url"] = profile[1]
        if reason:
            content["reason"] = reason
        content.update(extra or {})
        return content

    async def update_membership(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Invite, join, leave, kick, ban, unban or knock: the auth rules decide who may."""
        content = await self.member_content(target, membership, reason, extra)
        return await self.send_event(sender, None, room_id, MEMBER, content, state_key=target, txn_id=txn_id)

    async def join(self, user_id: str, room_id: str, *, reason: str | None = None, guest: bool = False) -> str:
        """Join a local room; a restricted room admits members of its allowed rooms, and a
        guest only a room whose `m.room.guest_access` is `can_join`."""
        head = await self.head(room_id)
        current = head.state.get((MEMBER, user_id))
        if current is not None and current.membership == JOIN:
            return room_id
        if guest and not guests_may_join(head):
            raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guests may not join this room")
        extra: dict[str, Any] = {}
        join_rule = auth_rules.join_rule_of(head.state)
        if join_rule in ("restricted", "knock_restricted") and (current is None or current.membership != INVITE):
            authoriser = await self._restricted_join_authoriser(head, user_id)
            if authoriser is None:
                raise MatrixError("M_FORBIDDEN", "You are not allowed to join this room")
            extra["join_authorised_via_users_server"] = authoriser
        await self.update_membership(user_id, room_id, user_id, JOIN, reason=reason, extra=extra)
        return room_id

    async def _restricted_join_authoriser(self, head: RoomHead, user_id: str) -> str | None:
        """A local member who may invite, if the user is in one of the rooms the join rule allows."""
        join_rules = head.state.get(("m.room.join_rules", ""))
        allow = join_rules.content.get("allow") if join_rules else None
        if not isinstance(allow, list):
            return None
        allowed_rooms = [entry["room_id"] for entry in allow if isinstance(entry, dict)
                         and entry.get("type") == "m.room_membership" and isinstance(entry.get("room_id"), str)]
        memberships = [await self.store.membership_of(allowed_room, user_id) for allowed_room in allowed_rooms]
        if not any(m is not None and m[0] == JOIN for m in memberships):
            return None
        invite_level = auth_rules.power_level_setting(head.state, "invite")
        for (event_type, state_key), event in head.state.items():
            if (event_type == MEMBER and event.membership == JOIN and domain_of(state_key) == self.server_name
                    and auth_rules.get_power_level(head.state, state_key) >= invite_level):
                return state_key
        return None

    async def leave_all_rooms(self, user_id: str) -> None:
        """Leave every room (invites and knocks withdrawn too): for deactivated accounts."""
        for room_id, (membership, _) in list((await self.user_memberships(user_id)).items()):
            if membership in HELD_MEMBERSHIPS:
                try:
                    await self.update_membership(user_id, room_id, user_id, LEAVE)
                except MatrixError as exc:  # e.g. the room forbids leaving; the account is gone anyway
                    log.warning("could not remove %s from %s: %s", user_id, room_id, exc.message)

    async def remove_deactivated_members(self) -> None:
        """Make accounts deactivated from the command line leave their rooms: the command
        cannot write room events beside a running server, so the server does it here."""
        for user_id in await self.store.deactivated_members(HELD_MEMBERSHIPS):
            await self.leave_all_rooms(user_id)

    async def forget(self, user_id: str, room_id: str) -> None:
        membership = await self.store.membership_of(room_id, user_id)
        if membership is None:
            raise MatrixError("M_NOT_FOUND", "You have never been in this room")
        if membership[0] in HELD_MEMBERSHIPS:
            raise MatrixError("M_UNKNOWN", "Leave the room before forgetting it")
        await self.store.forget(room_id, user_id)
        entry = self._user_rooms.get(user_id)
        if isinstance(entry, dict):
            entry.pop(room_id, None)

    # -- creating rooms ----------------------------------------------------------------------

    async def create_room(
        self,
        creator: str,
        *,
        room_version: str,
        preset: str,
        is_public: bool,
        alias: str | None,
        name: str | None,
        topic: str | None,
        invite: list[str],
        is_direct: bool,
        initial_state: list[tuple[str, str, dict[str, Any]]],
        power_level_content_override: dict[str, Any] | None,
        creation_content: dict[str, Any],
    ) -> str:
        """Create a room with its events in the order the spec gives, all in one transaction."""
        version = ROOM_VERSIONS.get(room_version)
        if version is None:
            raise MatrixError("M_UNSUPPORTED_ROOM_VERSION", f"Room version {room_version!r} is not supported")
        if alias is not None and await self.store.room_of_alias(alias) is not None:
            raise MatrixError("M_ROOM_IN_USE", "That room alias is already taken")
        for invitee in invite:
            if domain_of(invitee) != self.server_name or await self.users.get_profile(invitee) is None:
                raise MatrixError("M_NOT_FOUND", f"Unknown user {invitee}")
        now = now_ms()
        create_content = {**creation_content, "room_version": room_version}
        if not version.implicit_room_creator:
            create_content["creator"] = creator
        room_id = None if version.room_id_is_create_event_id else f"!{_random_id()}:{self.server_name}"
        head = RoomHead(room_id or "", version, {}, 0, 0, "", 0)
        draft = Draft(head)
        create = self._add_event(draft, creator, CREATE, create_content, state_key="", now=now)
        if room_id is None:
            head.room_id = create.room_id
        self._add_event(draft, creator, MEMBER, await self.member_content(creator, JOIN), state_key=creator, now=now)

        trusted = preset == "trusted_private_chat"
        power_levels = default_power_levels(creator, version, preset)
        if trusted:
            for invitee in invite:
                if not version.privileged_creators:
                    power_levels["users"][invitee] = 100
        if power_level_content_override:
            power_levels.update(power_level_content_override)
        self._add_event(draft, creator, POWER_LEVELS, power_levels, state_key="", now=now)
        if alias is not None:
            self._add_event(draft, creator, "m.room.canonical_alias", {"alias": alias}, state_key="", now=now)
        join_rule = "public" if preset == "public_chat" else "invite"
        preset_state = [
            ("m.room.join_rules", {"join_rule": join_rule}),
            (HISTORY_VISIBILITY, {"history_visibility": "shared"}),
            (GUEST_ACCESS, {"guest_access": "forbidden" if preset == "public_chat" else "can_join"}),
        ]
        explicit = {(t, sk) for t, sk, _ in initial_state}
        for event_type, content in preset_state:
            if (event_type, "") not in explicit:
                self._add_event(draft, creator, event_type, content, state_key="", now=now)
        for event_type, state_key, content in initial_state:
            self._add_event(draft, creator, event_type, content, state_key=state_key, now=now)
        if name is not None:
            self._add_event(draft, creator, "m.room.name", {"name": name}, state_key="", now=now)
        if topic is not None:
            self._add_event(draft, creator, "m.room.topic", {"topic": topic}, state_key="", now=now)
        for invitee in invite:
            extra = {"is_direct": True} if is_direct else None
            self._add_event(draft, creator, MEMBER, await self.member_content(invitee, INVITE, extra=extra),
                            state_key=invitee, now=now)
        room_type = creation_content.get("type")
        new_room = NewRoom(head.room_id, room_version, creator, now, is_public,
                           room_type if isinstance(room_type, str) else None, [alias] if alias else [])
        async with self._lock(head.room_id):
            try:
                pending = await self._write(draft, new_room=new_room)
            except UniqueViolation:
                if alias is None:
                    raise
                # Only the alias can clash (room and event IDs are random or hashes): a
                # concurrent createRoom took it after the check above.
                raise MatrixError("M_ROOM_IN_USE", "That room alias is already taken") from None
        await self._announce(pending, tuple(invite))
        return head.room_id


@dataclass
class _PendingCommit:
    draft: Draft
    positions: list[int]
    durable: "asyncio.Future[None]"


def guests_may_join(head: RoomHead) -> bool:
    """The guest access module: guests join only where `m.room.guest_access` is `can_join`."""
    guest_access = head.state.get((GUEST_ACCESS, ""))
    return guest_access is not None and guest_access.content.get("guest_access") == "can_join"


def default_power_levels(creator: str, version: RoomVersion, preset: str) -> dict[str, Any]:
    """Power levels of a new room: the creator at 100 (implicit for v12 creators)."""
    return {
        "users": {} if version.privileged_creators else {creator: 100},
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if version.privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0 if preset in ("private_chat", "trusted_private_chat") else 50,
        "historical": 100,
        "notifications": {"room": 50},
    }


def check_event_content(event_type: str, content: Any, state_key: str | None) -> None:
    """What every client-sent event must satisfy before it is built."""
    if not isinstance(content, dict):
        raise MatrixError("M_BAD_JSON", "Event content must be an object")
    if not event_type or len(event_type.encode()) > 255:
        raise MatrixError("M_INVALID_PARAM", "Event type must be 1 to 255 bytes")
    if state_key is not None and len(state_key.encode()) > 255:
        raise MatrixError("M_INVALID_PARAM", "State key must be at most 255 bytes")
    try:
        check_canonical(content)
    except CanonicalJSONError as exc:
        raise MatrixError("M_BAD_JSON", f"Event content is not valid canonical JSON: {exc}") from None


def _random_id() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(18))
