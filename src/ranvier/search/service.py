"""Server-side search (spec: "Server Side Search"), the `room_events` category.

The index is written by this service as a persist hook of the room server: each
message, room name and topic with text is indexed in the transaction that stores it,
and a redaction takes its target out in its own transaction. Encrypted events have
no text to index.

A search looks in every room the searcher has a membership in and has not forgotten,
and finds only what they could read there through /messages: the database tests each
match against their membership history (`access.py`), so a page is the next `limit`
readable results and the count counts only those. Events from users they ignore are
left out, as /sync leaves them out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ranvier.errors import MatrixError
from ranvier.events.model import REDACTION, Event
from ranvier.requester import Requester
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import EventRow, PersistedEvent
from ranvier.rooms.sync_queries import SyncQueries
from ranvier.rooms.visibility import MembershipHistory, is_visible
from ranvier.search.access import room_access
from ranvier.search.index import RANK, Criteria, Document, Hit, IndexRow, SearchIndex, document_of
from ranvier.search.paging import Batch
from ranvier.search.store import AFTER, Around, ContextQueries
from ranvier.search.text import KEY_OF_TYPE, TYPE_OF_KEY, highlights, parse_query, searchable_text
from ranvier.storage.engine import Transaction
from ranvier.sync.filters import EventFilter
from ranvier.sync.timeline import Timeline
from ranvier.rooms.tokens import position_after, room_token

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_CONTEXT = 100


@dataclass(frozen=True)
class EventContext:
    before_limit: int = 5
    after_limit: int = 5
    include_profile: bool = False


@dataclass(frozen=True)
class RoomEventsSearch:
    """The `room_events` criteria of a search request, checked."""

    search_term: str
    keys: tuple[str, ...] = tuple(TYPE_OF_KEY)
    event_filter: EventFilter = EventFilter()
    order_by: str = RANK
    context: EventContext | None = None
    include_state: bool = False
    group_by: tuple[str, ...] = ()

    @property
    def limit(self) -> int:
        return min(DEFAULT_LIMIT if self.event_filter.limit is None else self.event_filter.limit, MAX_LIMIT)


class SearchService:
    def __init__(self, index: SearchIndex, rooms: RoomServer, timeline: Timeline, *,
                 ignored_users: Callable[[str], Awaitable[set[str]]] | None = None) -> None:
        self.index = index
        self.rooms = rooms
        self.timeline = timeline
        self.context = ContextQueries(index.db)
        #: user_id -> the users they ignore, whose events their searches leave out.
        self.ignored_users = ignored_users

    # -- the persist hook: the index is written with each event --------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> Document | str | None:
        """The event's index entry, or for a redaction the event it takes out."""
        if event.type == REDACTION:
            return event.redacts
        if event.type in KEY_OF_TYPE:
            return document_of(event.type, event.content, item.history_visibility)
        return None

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, Document | str]]) -> None:
        rows = [IndexRow(item.stream_ordering, item.event.event_id, item.event.room_id, item.event.sender,
                         item.event.type, entry) for item, entry in prepared if isinstance(entry, Document)]
        redacted = [(item.event.room_id, entry) for item, entry in prepared if isinstance(entry, str)]
        statements = self.index.insert_statements(rows) if rows else []
        if redacted:  # after the inserts: a batch may hold an event and its redaction
            statements += self.index.delete_statements(redacted)
        await txn.execute_batch(statements)

    def committed(self, prepared: list[tuple[PersistedEvent, Document | str]]) -> None:
        """Nothing to do: searches read the index."""

    # -- searching -------------------------------------------------------------------------

    async def search_room_events(self, requester: Requester, request: RoomEventsSearch,
                                 next_batch: str | None) -> dict[str, Any]:
        """One page of results with what was asked for them: the `room_events` answer."""
        batch = Batch.decode(next_batch) if next_batch is not None else None
        if batch is not None and batch.order != request.order_by:
            raise MatrixError("M_INVALID_PARAM", "next_batch belongs to a search in another order")
        criteria, histories = await self._criteria(requester.user_id, request, batch)
        limit = request.limit
        page = self.index.page(criteria, request.order_by, batch.after if batch else None, limit + 1)
        if batch is not None and batch.count is not None:
            hits, count = await page, batch.count
        else:
            hits, count = await asyncio.gather(page, self.index.count(criteria))
        more = len(hits) > limit
        hits = hits[:limit]
        rows_by_id = await self.rooms.store.get_event_rows(hit.event_id for hit in hits)
        found = [(hit, rows_by_id[hit.event_id]) for hit in hits if hit.event_id in rows_by_id]
        rows = [row for _, row in found]
        events = await self.timeline.serialize(rows, requester)
        results: list[dict[str, Any]] = [{"rank": hit.score, "result": event} for (hit, _), event in zip(found, events)]
        if request.context is not None:
            for result, context in zip(results, await self._contexts(requester, rows, histories, request.context)):
                result["context"] = context
        texts = [text for row in rows if (text := searchable_text(row.event.type, row.event.content))]
        response: dict[str, Any] = {"results": results, "count": count,
                                    "highlights": highlights(list(criteria.terms), texts)}
        following = None
        if more and hits:
            following = Batch(request.order_by, criteria.upto, (hits[-1].score, hits[-1].stream_ordering), count,
                              batch.scope if batch else ())
            response["next_batch"] = following.encode()
        if request.group_by:
            response["groups"] = _groups(request.group_by, [hit for hit, _ in found], following)
        if request.include_state:
            response["state"] = await self._state(requester, list(dict.fromkeys(row.event.room_id for row in rows)))
        return response

    async def _criteria(self, user_id: str, request: RoomEventsSearch,
                        batch: Batch | None) -> tuple[Criteria, dict[str, MembershipHistory]]:
        """What the search looks for and where, and the searcher's membership history in each
        room searched, as it was when the first page was taken."""
        upto = batch.upto if batch is not None else self.rooms.positions.current
        scope = dict(batch.scope) if batch is not None else {}
        terms = tuple(parse_query(request.search_term))
        event_filter = request.event_filter
        memberships = await self.rooms.user_memberships(user_id)
        room_ids = [room_id for room_id in memberships
                    if event_filter.allows_room(room_id) and scope.get("room_id", room_id) == room_id]
        histories: dict[str, MembershipHistory] = {}
        if terms and room_ids:
            loaded = await SyncQueries(self.rooms.store).membership_histories(user_id, room_ids)
            histories = {room_id: history for room_id, entries in loaded.items()
                         if (history := [entry for entry in entries if entry[0] <= upto])}
        types = tuple(event_type for event_type in dict.fromkeys(TYPE_OF_KEY[key] for key in request.keys)
                      if event_filter.allows_type(event_type))
        senders = event_filter.senders
        if "sender" in scope:
            sender = scope["sender"]
            senders = (sender,) if senders is None or sender in senders else ()
        not_senders = event_filter.not_senders
        if self.ignored_users is not None:
            not_senders += tuple(sorted(await self.ignored_users(user_id)))
        criteria = Criteria(terms, tuple(room_access(room_id, history) for room_id, history in histories.items()),
                            types, senders, not_senders, event_filter.contains_url, upto)
        return criteria, histories

    async def _contexts(self, requester: Requester, rows: list[EventRow], histories: dict[str, MembershipHistory],
                        wanted: EventContext) -> list[dict[str, Any]]:
        """The events around each result that the searcher may see, with one query for the
        whole page (and one more for the senders' profiles)."""
        user_id = requester.user_id
        around = await self.context.event_ids_around(
            [Around(row, wanted.before_limit, wanted.after_limit) for row in rows])
        nearby = await self.rooms.store.get_event_rows(event_id for _, _, event_id in around)
        before: list[list[EventRow]] = [[] for _ in rows]
        after: list[list[EventRow]] = [[] for _ in rows]
        for index, side, event_id in around:
            row = nearby.get(event_id)
            if row is not None and is_visible(row, user_id, histories.get(rows[index].event.room_id, [])):
                (after if side == AFTER else before)[index].append(row)
        for events in before:
            events.sort(key=lambda row: row.key, reverse=True)
        for events in after:
            events.sort(key=lambda row: row.key)
        serialized = await self.timeline.serialize(list({row.event.event_id: row for events in before + after
                                                         for row in events}.values()), requester)
        by_id = {event["event_id"]: event for event in serialized}
        profiles = await self._profiles(rows, before, after) if wanted.include_profile else None
        contexts = []
        for index, row in enumerate(rows):
            last = after[index][-1].key if after[index] else row.key
            context: dict[str, Any] = {
                "events_before": [by_id[r.event.event_id] for r in before[index]],
                "events_after": [by_id[r.event.event_id] for r in after[index]],
                "start": room_token(before[index][-1].key if before[index] else row.key),
                "end": room_token(position_after(last)),
            }
            if profiles is not None:
                context["profile_info"] = profiles[index]
            contexts.append(context)
        return contexts

    async def _profiles(self, rows: list[EventRow], before: list[list[EventRow]],
                        after: list[list[EventRow]]) -> list[dict[str, dict[str, str]]]:
        """For each result, the display name and avatar of the senders of it and its
        context, as their membership events had them at the end of the context."""
        wanted: dict[tuple[str, str, int], None] = {}
        per_result = []
        for index, row in enumerate(rows):
            last = after[index][-1] if after[index] else row
            senders = dict.fromkeys(r.event.sender for r in [*before[index], row, *after[index]])
            keys = [(row.event.room_id, sender, last.stream_ordering) for sender in senders]
            wanted.update(dict.fromkeys(keys))
            per_result.append(keys)
        member_ids = await self.context.membership_event_ids(list(wanted))
        members = await self.rooms.store.get_event_rows(member_ids.values())
        profiles = []
        for keys in per_result:
            profile: dict[str, dict[str, str]] = {}
            for key in keys:
                member = members.get(member_ids.get(key, ""))
                content = member.event.content if member is not None and member.redacted_by is None else {}
                profile[key[1]] = {name: content[name] for name in ("displayname", "avatar_url")
                                   if isinstance(content.get(name), str)}
            profiles.append(profile)
        return profiles

    async def _state(self, requester: Requester, room_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The state of each room of the results: the current state where the searcher is
        joined, the state when they left where they left (as GET /state has it); none for
        rooms they are only invited to."""
        user_id = requester.user_id
        memberships = await self.rooms.user_memberships(user_id)
        state_ids: dict[str, list[str]] = {}
        left = []
        for room_id in room_ids:
            membership = memberships.get(room_id, ("", 0))[0]
            if membership == "join":
                state_ids[room_id] = [event.event_id for event in (await self.rooms.head(room_id)).state.values()]
            elif membership in ("leave", "ban"):
                left.append((room_id, user_id, self.rooms.positions.current))
        if left:
            leave_ids = await self.context.membership_event_ids(left)
            leaves = await self.rooms.store.get_event_rows(leave_ids.values())
            for (room_id, _, _), event_id in leave_ids.items():
                state_ids[room_id] = list((await self.timeline.state_at(leaves[event_id])).values())
        rows = await self.rooms.store.get_event_rows(event_id for ids in state_ids.values() for event_id in ids)
        serialized = await self.timeline.serialize(list(rows.values()), requester)
        by_id = {event["event_id"]: event for event in serialized}
        return {room_id: [by_id[event_id] for event_id in ids if event_id in by_id] for room_id, ids in state_ids.items()}


def _groups(group_by: tuple[str, ...], hits: list[Hit], following: Batch | None) -> dict[str, Any]:
    """The page's results by room and/or sender, each group in the order it first appears,
    with a token continuing within the group while there are more results at all."""
    groups: dict[str, Any] = {}
    for key in group_by:
        entries: dict[str, dict[str, Any]] = {}
        for hit in hits:
            value = hit.room_id if key == "room_id" else hit.sender
            entry = entries.setdefault(value, {"results": [], "order": len(entries) + 1})
            entry["results"].append(hit.event_id)
        if following is not None:
            for value, entry in entries.items():
                scope = tuple(sorted({**dict(following.scope), key: value}.items()))
                entry["next_batch"] = Batch(following.order, following.upto, following.after, None, scope).encode()
        groups[key] = entries
    return groups
