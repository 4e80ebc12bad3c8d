"""Relations between events (spec: "Forming relationships between events"): the child
events of an event, the thread list of a room and the bundled aggregations served in
`unsigned.m.relations` (edits, threads, references).

Relations are read from the `relates_to`/`rel_type` columns the room server fills for
every event. The one thing kept here is the thread list (`threads`, `thread_participants`),
written by this service as a persist hook inside each event's own transaction, so listing
a room's threads newest first costs a page, not a scan of the room.

Edits are validated when read, never at send time: whether an edit is valid is a property
of the room's history (federated events are not sent through this server's checks), so the
aggregation must ignore invalid ones anyway, and the spec asks to ignore, not refuse, them.
Starting a thread from an event that is itself a relation is refused at send time, as the
threading module asks (400 M_UNKNOWN).
"""

from __future__ import annotations

from collections import deque
from functools import partial
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ranvier.errors import MatrixError
from ranvier.events.model import REDACTION, Event
from ranvier.requester import Requester
from ranvier.rooms.service import RoomHead
from ranvier.rooms.relations_store import RelationQueries
from ranvier.rooms.store import EventRow, PersistedEvent, RoomStore
from ranvier.rooms.visibility import MembershipHistory, is_visible
from ranvier.storage.engine import Transaction
from ranvier.rooms.tokens import position_after, room_position, room_token

REPLACE, THREAD, REFERENCE = "m.replace", "m.thread", "m.reference"
#: The relation types the server aggregates into `unsigned.m.relations`.
AGGREGATED = (REPLACE, THREAD, REFERENCE)
#: A prepared value for events that write nothing to the thread list.
_NEW = "new"
#: Events known to have no relations, newest kept: enough for the pages clients read (the
#: recent timelines, at most 1,024 events in all), about 0.6 MiB; older events are asked
#: about in one batched query. Not 4,096: a set that ever holds 4,096 entries gets a table
#: of 32,768 slots (512 KiB), one of at most 4,095 a table of 16,384.
_CHILDLESS_CACHED = 4_000
ENCRYPTED = "m.room.encrypted"
#: How many links `recurse=true` follows (the spec asks for at least 3).
MAX_RECURSION = 3
MAX_LIMIT = 1000
_THREAD_TOKEN = "th"

Serializer = Callable[[list[EventRow], Requester], Awaitable[list[dict[str, Any]]]]


def relation_of(content: dict[str, Any]) -> tuple[str, str] | None:
    """(rel_type, parent event ID) of an event's `m.relates_to`, or None without a rel_type."""
    relation = content.get("m.relates_to")
    if isinstance(relation, dict) and isinstance(relation.get("rel_type"), str) \
            and isinstance(relation.get("event_id"), str):
        return relation["rel_type"], relation["event_id"]
    return None


def is_valid_replacement(original: Event, edit: Event) -> bool:
    """The spec's validity rules of an m.replace edit: same room, sender and type, no state
    events, no edit of an edit, and `m.new_content` (inside the ciphertext when encrypted)."""
    if original.room_id != edit.room_id or original.sender != edit.sender or original.type != edit.type:
        return False
    if original.is_state or edit.is_state:
        return False
    original_relation = relation_of(original.content)
    if original_relation is not None and original_relation[0] == REPLACE:
        return False
    return edit.type == ENCRYPTED or isinstance(edit.content.get("m.new_content"), dict)


def _edit_order(row: EventRow) -> tuple[int, str]:
    """The most recent edit has the largest origin_server_ts, then the largest event ID."""
    return row.event.origin_server_ts, row.event.event_id


@dataclass
class RelationsPage:
    rows: list[EventRow]
    next_batch: str | None
    prev_batch: str | None
    recursion_depth: int | None


class RelationsService:
    """Reads relations for clients; also the persist hook that keeps the thread list."""

    def __init__(self, store: RoomStore, *, ignored_users: Callable[[str], Awaitable[set[str]]] | None = None) -> None:
        self.store = store
        self.queries = RelationQueries(store)
        #: user_id -> the users they ignore, whose relations their aggregations leave out.
        self.ignored_users = ignored_users
        #: Events known to have no relations at all, so most pages need no relations query:
        #: a set, and the order they were added in for dropping the oldest (an event that
        #: gained a relation leaves the set and may stay in the order; a plain set and deque
        #: cost a third of an ordered dict's bytes per entry).
        self._childless: set[str] = set()
        self._childless_order: deque[str] = deque()
        #: Bumped whenever a relation commits, so a query that raced with one is not trusted.
        self._version = 0

    # -- writing: the thread list (a PersistHook) ----------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> tuple[str, str | None]:
        """A thread reply moves its thread to the top; a redaction may remove a thread's latest
        reply; any other event only needs `committed` (it is born without relations)."""
        if item.rel_type == THREAD and item.relates_to is not None and not event.is_state:
            return THREAD, item.relates_to
        if event.type == REDACTION and event.redacts is not None:
            return REDACTION, event.redacts
        return _NEW, None

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, tuple[str, str | None]]]) -> None:
        for item, (kind, target_id) in prepared:
            if kind == THREAD:
                await self._add_reply(txn, item, target_id)
            elif kind == REDACTION:
                await self._remove_reply(txn, target_id)

    def committed(self, prepared: list[tuple[PersistedEvent, tuple[str, str | None]]]) -> None:
        """New events have no relations yet; the targets of new relations now do."""
        for item, _ in prepared:
            if not item.event.is_state:
                self._note_childless(item.event.event_id)
            if item.relates_to is not None:
                self._version += 1
                self._childless.discard(item.relates_to)

    def _note_childless(self, event_id: str) -> None:
        if event_id not in self._childless:
            self._childless.add(event_id)
            self._childless_order.append(event_id)
            if len(self._childless_order) > _CHILDLESS_CACHED:
                self._childless.discard(self._childless_order.popleft())

    async def _add_reply(self, txn: Transaction, item: PersistedEvent, root_id: str) -> None:
        root = await self.queries.relation_target(txn, root_id)
        if root is None or root[0] != item.event.room_id or root[2] is not None:
            return  # not a thread: the root is unknown, elsewhere, or a relation itself
        await txn.execute(
            "INSERT INTO threads (root_event_id, room_id, latest_event_id, latest_stream) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (root_event_id) DO UPDATE SET latest_event_id = excluded.latest_event_id, "
            "latest_stream = excluded.latest_stream",
            root_id, item.event.room_id, item.event.event_id, item.stream_ordering,
        )
        await txn.executemany(
            "INSERT INTO thread_participants (root_event_id, user_id) VALUES (?, ?) "
            "ON CONFLICT (root_event_id, user_id) DO NOTHING",
            [(root_id, user_id) for user_id in dict.fromkeys((root[1], item.event.sender))],
        )

    async def _remove_reply(self, txn: Transaction, redacted_id: str) -> None:
        root_id = await self.queries.relation_parent(txn, redacted_id, THREAD)
        if root_id is None:
            return
        latest = await self.queries.latest_relation(txn, root_id, THREAD, excluding=redacted_id)
        if latest is None:
            await txn.execute("DELETE FROM threads WHERE root_event_id = ?", root_id)
        else:
            await txn.execute(
                "UPDATE threads SET latest_event_id = ?, latest_stream = ? WHERE root_event_id = ?",
                latest[0], latest[1], root_id,
            )

    # -- purging (a rooms.admin.PurgeHook) --------------------------------------------------

    async def purge_room(self, txn: Transaction, room_id: str) -> None:
        await txn.execute("DELETE FROM thread_participants WHERE root_event_id IN "
                          "(SELECT root_event_id FROM threads WHERE room_id = ?)", room_id)
        await txn.execute("DELETE FROM threads WHERE room_id = ?", room_id)

    async def purge_events(self, txn: Transaction, room_id: str, event_ids: list[str]) -> None:
        """A thread whose root or latest reply is purged leaves the thread list (a reply is
        newer than its root, so a purged latest reply means a purged thread)."""
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            doomed = f"SELECT root_event_id FROM threads WHERE room_id = ? AND (root_event_id IN ({marks}) " \
                     f"OR latest_event_id IN ({marks}))"
            await txn.execute(f"DELETE FROM thread_participants WHERE root_event_id IN ({doomed})",
                              room_id, *chunk, *chunk)
            await txn.execute(f"DELETE FROM threads WHERE root_event_id IN ({doomed})", room_id, *chunk, *chunk)

    # -- sending ---------------------------------------------------------------------------

    async def check_new_event(self, head: RoomHead, sender: str, event_type: str, content: dict[str, Any],
                              state_key: str | None) -> None:
        """Refuse a thread started from an event that is itself a relation (threading module)."""
        relation = relation_of(content)
        if relation is None or relation[0] != THREAD:
            return
        parent = (await self.store.get_event_rows([relation[1]])).get(relation[1])
        if parent is not None and parent.event.room_id == head.room_id and relation_of(parent.event.content):
            raise MatrixError("M_UNKNOWN", "Cannot start a thread from an event that has a relation")

    # -- reading -----------------------------------------------------------------------------

    async def children(
        self, room_id: str, event_id: str, user_id: str, history: MembershipHistory, *, rel_type: str | None,
        event_type: str | None, recurse: bool | None, direction: str, from_token: str | None,
        to_token: str | None, limit: int,
    ) -> RelationsPage:
        """A page of the events relating to an event the reader can see, newest first by default.

        A page holds at most `limit` events; those the reader may not see are skipped, so a
        page can be shorter while `next_batch` still leads on."""
        parent = (await self.store.get_event_rows([event_id])).get(event_id)
        if parent is None or parent.event.room_id != room_id or not is_visible(parent, user_id, history):
            raise MatrixError("M_NOT_FOUND", "Event not found")
        backwards = direction == "b"
        at_stream = partial(self.store.last_event_position, room_id)
        start = await room_position(from_token, at_stream) if from_token else None
        bound = await room_position(to_token, at_stream) if to_token else None
        limit = min(limit, MAX_LIMIT)
        rows = await self.queries.relation_page(
            room_id, event_id, rel_type=rel_type, event_type=event_type, max_depth=MAX_RECURSION if recurse else 1,
            lower=bound if backwards else start, upper=start if backwards else bound, backwards=backwards,
            limit=limit + 1,
        )
        next_batch = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1].key
            next_batch = room_token(last if backwards else position_after(last))
        return RelationsPage(
            rows=[row for row in rows if is_visible(row, user_id, history)],
            next_batch=next_batch,
            prev_batch=from_token,
            recursion_depth=None if recurse is None else (MAX_RECURSION if recurse else 1),
        )

    async def threads(self, room_id: str, user_id: str, history: MembershipHistory, *, participated: bool,
                      from_token: str | None, limit: int) -> tuple[list[EventRow], str | None]:
        """Thread roots the reader can see, the thread with the latest reply first, and the next token."""
        conditions = ["t.room_id = ?"]
        params: list[Any] = [room_id]
        if from_token is not None:
            conditions.append("t.latest_stream < ?")
            params.append(_parse_thread_token(from_token))
        if participated:
            conditions.append("EXISTS (SELECT 1 FROM thread_participants p "
                              "WHERE p.root_event_id = t.root_event_id AND p.user_id = ?)")
            params.append(user_id)
        limit = min(limit, MAX_LIMIT)
        found = await self.store.db.fetchall(
            f"SELECT t.root_event_id, t.latest_stream FROM threads t WHERE {' AND '.join(conditions)} "
            "ORDER BY t.latest_stream DESC LIMIT ?",
            *params, limit + 1,
        )
        next_batch = f"{_THREAD_TOKEN}{found[limit - 1][1]}" if len(found) > limit else None
        root_ids = [root_id for root_id, _ in found[:limit]]
        rows = await self.store.get_event_rows(root_ids)
        visible = [rows[root_id] for root_id in root_ids
                   if root_id in rows and is_visible(rows[root_id], user_id, history)]
        return visible, next_batch

    async def _children(self, rows: list[EventRow]) -> tuple[dict[str, EventRow], list[tuple[str, str, EventRow]]]:
        """The events of `rows` that may have aggregated children (by ID), and those children
        as (parent ID, rel_type, child): from memory for events known to have none."""
        parents = {row.event.event_id: row for row in rows
                   if not row.event.is_state and row.event.event_id not in self._childless}
        if not parents:
            return parents, []
        version = self._version
        children = await self.queries.relation_children(list(parents), AGGREGATED)
        if version == self._version:
            for parent_id in parents.keys() - {parent_id for parent_id, _, _ in children}:
                self._note_childless(parent_id)
        return parents, children

    async def has_children(self, rows: list[EventRow]) -> bool:
        """Whether any of these events has an aggregated child (an edit, a thread reply, a
        reference), seen by some reader or not: their bundles then depend on the reader."""
        return bool((await self._children(rows))[1])

    async def bundle(self, rows: list[EventRow], requester: Requester,
                     serialize: Serializer) -> dict[str, dict[str, Any]]:
        """The bundled aggregations of the events being served: event ID -> `m.relations`.

        Only children the reader may see, from users they do not ignore, count. `serialize`
        formats the latest edit and the latest thread reply as the events themselves are
        formatted (with their own aggregations; edits and thread replies are relations, so
        this stops after one level).
        """
        parents, children = await self._children(rows)
        if not children:
            return {}
        histories = {room_id: await self.store.membership_history(room_id, requester.user_id)
                     for room_id in {child.event.room_id for _, _, child in children}}
        ignored = await self.ignored_users(requester.user_id) if self.ignored_users else set()
        edits: dict[str, EventRow] = {}
        threads: dict[str, list[EventRow]] = {}
        references: dict[str, list[str]] = {}
        for parent_id, rel_type, child in children:
            parent = parents[parent_id]
            if child.event.room_id != parent.event.room_id or child.event.sender in ignored \
                    or not is_visible(child, requester.user_id, histories[child.event.room_id]):
                continue
            if rel_type == REPLACE:
                if parent.redacted_by is None and is_valid_replacement(parent.event, child.event) and (
                        parent_id not in edits or _edit_order(child) > _edit_order(edits[parent_id])):
                    edits[parent_id] = child
            elif rel_type == THREAD:
                if relation_of(parent.event.content) is None:
                    threads.setdefault(parent_id, []).append(child)
            else:
                references.setdefault(parent_id, []).append(child.event.event_id)
        latest_threads = {parent_id: replies[-1] for parent_id, replies in threads.items()}
        to_serialize = list({row.event.event_id: row for row in [*edits.values(), *latest_threads.values()]}.values())
        serialized = {event["event_id"]: event for event in await serialize(to_serialize, requester)} \
            if to_serialize else {}
        bundles: dict[str, dict[str, Any]] = {}
        for parent_id, edit in edits.items():
            bundles.setdefault(parent_id, {})[REPLACE] = serialized[edit.event.event_id]
        for parent_id, replies in threads.items():
            bundles.setdefault(parent_id, {})[THREAD] = {
                "latest_event": serialized[replies[-1].event.event_id],
                "count": len(replies),
                "current_user_participated": parents[parent_id].event.sender == requester.user_id
                or any(reply.event.sender == requester.user_id for reply in replies),
            }
        for parent_id, event_ids in references.items():
            bundles.setdefault(parent_id, {})[REFERENCE] = {"chunk": [{"event_id": eid} for eid in event_ids]}
        return bundles


def _parse_thread_token(token: str) -> int:
    number = token[len(_THREAD_TOKEN):]
    if not token.startswith(_THREAD_TOKEN) or not number.isdigit():
        raise MatrixError("M_INVALID_PARAM", "Invalid pagination token")
    return int(number)
