"""The draft's event stream: GET /events, paged as the pagination streaming API draws it
and long-polled with `timeout` (woken by the same notifier as /sync).

A user's stream merges four streams, each read by its own positions: room events,
today's read receipts and the draft's feedback (both as m.room.message.feedback), and
presence (as m.presence). A token holds a position in each, so a page takes a prefix of
every stream (the items merged by time) and the next page goes on where each stopped.

In a room, the stream carries what happens while the user is joined, and the user's own
membership changes (an invitation, their join, their leave): history from before they
joined is read with /rooms/$room_id/messages/list, as the draft's example does. Feedback
is shown on messages the stream carried.
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.model import MEMBER
from ranvier.legacy_api.forms import MESSAGE, feedback_event, has_draft_form, presence_event, room_event
from ranvier.legacy_api.ids import rooms_to_draft
from ranvier.legacy_api.pagination import END, START, PageRequest, bad_pagination, page_request, query_milliseconds
from ranvier.legacy_api.presence import presence_entries
from ranvier.legacy_api.routing import DraftRoutes
from ranvier.legacy_api.store import Feedback
from ranvier.requester import Requester
from ranvier.rooms.store import EventRow
from ranvier.sync.receipts import READ
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response

routes = DraftRoutes()

DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 5 * 60 * 1000
#: Room events read per page at most, shown or not, before a page answers with what it found.
_SCAN_BUDGET = 2_000
#: The merged streams, in the order they are shown when two items have the same time.
EVENTS, RECEIPTS, FEEDBACK, PRESENCE = range(4)
HELD = ("join", "invite", "knock")


@dataclass(frozen=True)
class StreamToken:
    """A position in each merged stream: `e<events>_<receipts>_<feedback>_<presence>`;
    each stands for the boundary just after that position."""

    positions: tuple[int, int, int, int]

    def encode(self) -> str:
        return "e" + "_".join(str(position) for position in self.positions)

    @classmethod
    def parse(cls, token: str) -> "StreamToken":
        parts = token[1:].split("_") if token.startswith("e") else []
        if len(parts) != 4 or not all(part.isascii() and part.isdigit() for part in parts):
            raise bad_pagination(f"{token!r} is not a token of the event stream")
        return cls(tuple(int(part) for part in parts))

    def at_most(self, other: "StreamToken") -> "StreamToken":
        return StreamToken(tuple(min(a, b) for a, b in zip(self.positions, other.positions)))


@dataclass
class Item:
    stream: int
    position: int
    ts: int
    value: Any


@dataclass
class Scan:
    """What one stream offers a page: shown items in reading order; `complete` when the whole
    range was read, else `reached` is the last position read."""

    items: list[Item] = field(default_factory=list)
    complete: bool = True
    reached: int = 0


def _membership_at(history: list[tuple[int, str]], position: int) -> str | None:
    index = bisect_right([stream for stream, _ in history], position) - 1
    return history[index][1] if index >= 0 else None


class StreamPage:
    """One read of a user's stream between two tokens."""

    def __init__(self, request: web.Request, who: Requester) -> None:
        self.request = request
        self.hs = request.app[HOMESERVER]
        self.user_id = who.user_id
        self._histories: dict[str, list[tuple[int, str]]] = {}

    def now(self) -> StreamToken:
        hs = self.hs
        return StreamToken((hs.rooms.positions.current, hs.receipts.position, hs.legacy.feedback_position,
                            hs.presence.position))

    async def _history_of(self, room_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
        missing = [room_id for room_id in room_ids if room_id not in self._histories]
        if missing:
            self._histories.update(await self.hs.sync.queries.membership_histories(self.user_id, missing))
        return self._histories

    def _in_stream(self, row: EventRow) -> bool:
        event = row.event
        if event.type == MEMBER and event.state_key == self.user_id:
            return True
        return _membership_at(self._histories.get(event.room_id, []), row.stream_ordering) == "join"

    # -- the four streams ----------------------------------------------------------------

    async def _room_events(self, memberships: dict, after: int, upto: int, backwards: bool, limit: int) -> Scan:
        # A room counts up to the user's leave (or invitation, or knock) when they are not
        # joined; going forwards, only rooms that moved since `after` (known in memory).
        bounds = {}
        for room_id, (membership, stream) in memberships.items():
            bound = upto if membership == "join" else min(upto, stream)
            if bound > after and (backwards or self.hs.rooms.room_streams.get(room_id, 0) > after):
                bounds[room_id] = bound
        if not bounds:
            return Scan()
        histories = await self._history_of(list(bounds))
        # Nothing before a user's first membership event in a room is theirs to see.
        after = max(after, min((histories[room_id][0][0] for room_id in bounds if histories[room_id]),
                               default=upto) - 1)
        scan = Scan(complete=False, reached=upto + 1 if backwards else after)
        budget = _SCAN_BUDGET
        low, high = after, upto
        while len(scan.items) < limit and budget > 0:
            batch = min(max(limit - len(scan.items), 50), 1000)
            capped = {room_id: min(bound, high) for room_id, bound in bounds.items()}
            rows = await self.hs.sync.queries.stream_page(capped, after=low, backwards=backwards, limit=batch)
            budget -= len(rows)
            for row in rows:
                scan.reached = row.stream_ordering
                if backwards:
                    high = row.stream_ordering - 1
                else:
                    low = row.stream_ordering
                if self._in_stream(row) and has_draft_form(row.event, bool(row.redacted_by)):
                    scan.items.append(Item(EVENTS, row.stream_ordering, row.event.origin_server_ts, row))
                    if len(scan.items) == limit:
                        return scan
            if len(rows) < batch:
                scan.complete = True
                return scan
        return scan

    async def _messages_in_stream(self, feedback: list[Feedback]) -> list[Feedback]:
        """The feedback on messages this user's stream carried."""
        await self._history_of(list({item.room_id for item in feedback}))
        return [item for item in feedback
                if _membership_at(self._histories[item.room_id], item.message_stream) == "join"]

    async def _receipts(self, joined: list[str], after: int, upto: int, backwards: bool) -> Scan:
        if not joined or after >= upto:
            return Scan()
        receipts = [receipt for receipt in await self.hs.receipts.changed(self.user_id, joined, after, upto)
                    if receipt.receipt_type == READ]
        receipts.sort(key=lambda receipt: receipt.stream_id, reverse=backwards)
        targets = await self.hs.rooms.store.get_event_rows([receipt.event_id for receipt in receipts])
        on_messages = [receipt for receipt in receipts if (target := targets.get(receipt.event_id)) is not None
                       and target.event.type == MESSAGE and not target.redacted_by]
        # A reader's draft "r" on the message already stands for their receipt; one per reader.
        seen = {(f.event_id, f.user_id) for f in await self.hs.legacy.store.feedback_on(
            [receipt.event_id for receipt in on_messages]) if f.kind == "r"}
        candidates = []
        for receipt in on_messages:
            if (receipt.event_id, receipt.user_id) not in seen:
                seen.add((receipt.event_id, receipt.user_id))
                candidates.append(Feedback.of_receipt(receipt, targets[receipt.event_id].stream_ordering))
        return Scan([Item(RECEIPTS, f.stream_id, f.hs_ts, f) for f in await self._messages_in_stream(candidates)])

    async def _feedback(self, joined: list[str], after: int, upto: int, backwards: bool, limit: int) -> Scan:
        if not joined or after >= upto or not limit:
            return Scan(complete=not joined or after >= upto, reached=upto + 1 if backwards else after)
        found = await self.hs.legacy.store.feedback_page(joined, after=after, upto=upto, backwards=backwards,
                                                         limit=limit)
        shown = await self._messages_in_stream(found)
        scan = Scan([Item(FEEDBACK, f.stream_id, f.hs_ts, f) for f in shown], complete=len(found) < limit)
        if found:
            scan.reached = found[-1].stream_id
        return scan

    async def _presence(self, after: int, upto: int, backwards: bool) -> Scan:
        if after >= upto:
            return Scan()
        rows = sorted(await self.hs.presence.changed_rows(self.user_id, after, upto),
                      key=lambda row: row.stream_id, reverse=backwards)
        return Scan([Item(PRESENCE, row.stream_id, row.last_seen_ts, row) for row in rows])

    # -- a page ----------------------------------------------------------------------------

    async def read(self, start: StreamToken, bound: StreamToken, backwards: bool,
                   limit: int) -> tuple[dict[str, Any], bool]:
        """The page from `start` towards `bound` (exclusive of `start`), and whether it read
        everything up to `bound`."""
        low, high = (bound, start) if backwards else (start, bound)
        memberships = await self.hs.rooms.user_memberships(self.user_id)
        joined = [room_id for room_id, (membership, _) in memberships.items() if membership == "join"]
        ranges = list(zip(low.positions, high.positions))
        scans = [
            await self._room_events(memberships, *ranges[EVENTS], backwards, limit),
            await self._receipts(joined, *ranges[RECEIPTS], backwards),
            await self._feedback(joined, *ranges[FEEDBACK], backwards, limit),
            await self._presence(*ranges[PRESENCE], backwards),
        ]
        taken, counts = _merge(scans, limit, backwards)
        positions = []
        for stream, scan in enumerate(scans):
            lower, upper = ranges[stream]
            if counts[stream] < len(scan.items):
                next_position = scan.items[counts[stream]].position
                positions.append(next_position if backwards else next_position - 1)
            elif scan.complete:
                positions.append(lower if backwards else upper)
            else:
                positions.append(scan.reached - 1 if backwards else scan.reached)
        reached = StreamToken(tuple(positions)).encode()
        finished = all(scan.complete and count == len(scan.items) for scan, count in zip(scans, counts))
        chunk = await self._present(taken)
        if backwards:
            return {"chunk": chunk, "start": reached, "end": start.encode()}, finished
        return {"chunk": chunk, "start": start.encode(), "end": reached}, finished

    async def _present(self, taken: list[Item]) -> list[dict[str, Any]]:
        """The taken items in the draft's forms, with what they need read in a few batches."""
        hs = self.hs
        rows = [item.value for item in taken if item.stream == EVENTS]
        feedback = [item.value for item in taken if item.stream in (RECEIPTS, FEEDBACK)]
        messages = await hs.rooms.store.get_event_rows([f.event_id for f in feedback])
        msg_ids = await hs.legacy.store.msg_ids([row.event.event_id for row in rows if row.event.type == MESSAGE]
                                                + [f.event_id for f in feedback])
        names = await rooms_to_draft(hs.rooms, [row.event.room_id for row in rows] + [f.room_id for f in feedback])
        presence_rows = {item.value.user_id: item.value for item in taken if item.stream == PRESENCE}
        entries = await presence_entries(self.request, presence_rows, list(presence_rows))
        chunk = []
        for item in taken:
            if item.stream == EVENTS:
                event = item.value.event
                chunk.append(room_event(event, names[event.room_id], msg_ids.get(event.event_id)))
            elif item.stream == PRESENCE:
                chunk.append(presence_event(item.position, entries[item.value.user_id]))
            else:
                message = messages[item.value.event_id].event
                chunk.append(feedback_event(item.value, names[item.value.room_id], message.sender,
                                            msg_ids.get(message.event_id, message.event_id)))
        return chunk


def _merge(scans: list[Scan], limit: int, backwards: bool) -> tuple[list[Item], list[int]]:
    """Up to `limit` items taken from the heads of the scans by time (newest first when
    backwards), so each scan gives a prefix; and how many each gave."""
    counts = [0] * len(scans)
    sign = -1 if backwards else 1
    heads = [(sign * scan.items[0].ts, stream) for stream, scan in enumerate(scans) if scan.items]
    heapq.heapify(heads)
    taken: list[Item] = []
    while heads and len(taken) < limit:
        _, stream = heapq.heappop(heads)
        scan = scans[stream]
        taken.append(scan.items[counts[stream]])
        counts[stream] += 1
        if counts[stream] < len(scan.items):
            heapq.heappush(heads, (sign * scan.items[counts[stream]].ts, stream))
    return taken, counts


def _token(token: str, now: StreamToken) -> StreamToken:
    if token == START:
        return StreamToken((0, 0, 0, 0))
    if token == END:
        return now
    return StreamToken.parse(token).at_most(now)


@routes.get("/events")
async def event_stream(request: web.Request) -> web.Response:
    """GET /events: the caller's event stream (from, to, limit; START, END or a token from an
    earlier answer). Going forwards to END with nothing to show, it waits up to `timeout`
    ms (default 30 s, at most 5 min; timeout=0 answers at once) for something to happen.
    Two tokens that are neither before nor after one another, or a bad value: M_BAD_PAGINATION."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    asked: PageRequest = page_request(request)
    timeout_ms = query_milliseconds(request, "timeout", DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        page = StreamPage(request, who)
        memberships = await hs.rooms.user_memberships(who.user_id)
        keys = [f"user:{who.user_id}"] + [f"room:{room_id}" for room_id, (m, _) in memberships.items() if m in HELD]
        with hs.notifier.subscribe(keys) as subscription:
            now = page.now()
            start, bound = _token(asked.from_token, now), _token(asked.to_token, now)
            backwards = asked.backwards(lambda: _before(bound, start))
            answer, finished = await page.read(start, bound, backwards, asked.limit)
            if answer["chunk"] or not finished or backwards or asked.to_token != END:
                return json_response(answer)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await subscription.wait(remaining) or hs.notifier.closed:
                return json_response(answer)
            asked = PageRequest(answer["end"], END, asked.limit)


def _before(token: StreamToken, other: StreamToken) -> bool:
    """True if `token` is before `other` in every stream; M_BAD_PAGINATION if it is before in
    some and after in others."""
    pairs = list(zip(token.positions, other.positions))
    if all(a <= b for a, b in pairs):
        return any(a < b for a, b in pairs)
    if all(a >= b for a, b in pairs):
        return False
    raise MatrixError("M_BAD_PAGINATION", "from and to are neither before nor after one another")
