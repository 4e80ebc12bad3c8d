"""The /sync side of the client: the filter it asks with, the order of events, the gaps it fills.

When a room's timeline in a sync is ``limited``, events were left out between
the previous sync and the first one shown: the client pages back with
/messages from the timeline's ``prev_batch`` until it meets the last event it
handled in that room (or, in a room it has no record of, its own join), so
every message that arrived while the bot was down is handled, once, in order.
At most ``gap_fill_limit`` events are fetched per room and sync; past that the
older ones are given up and :meth:`granolin.Client.on_gap` is called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .events import AccountDataEvent, EphemeralEvent, Event, InvitationEvent, RoomStateEvent, TimelineEvent, timeline_event


@dataclass(frozen=True, slots=True)
class SyncFilter:
    """The filter the bot syncs with (sent inline with each /sync)."""

    timeline_limit: int = 50
    """At most this many events per room and sync; earlier ones are fetched by gap filling."""
    lazy_load_members: bool = True
    """Only the member events of the senders in the timeline, not the whole member list."""
    presence: bool = False
    """Whether to receive presence updates (bots rarely need them)."""

    def to_json(self) -> dict[str, Any]:
        lazy = {"lazy_load_members": True} if self.lazy_load_members else {}
        definition: dict[str, Any] = {"room": {"timeline": {"limit": self.timeline_limit, **lazy}, "state": dict(lazy)}}
        if not self.presence:
            definition["presence"] = {"not_types": ["*"]}
        return definition


def events_of(container: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    events = (container.get(section) or {}).get("events") or []
    return [event for event in events if isinstance(event, dict)]


def joined_rooms(response: Mapping[str, Any]) -> dict[str, Any]:
    rooms = (response.get("rooms") or {}).get("join") or {}
    return rooms if isinstance(rooms, dict) else {}


def sync_events(
    response: Mapping[str, Any], *, skip_messages: bool = False, decrypted: Mapping[str, TimelineEvent | None] | None = None,
) -> Iterator[Event]:
    """The typed events of a /sync answer, in the order they are dispatched.

    Per joined room: state (which precedes the timeline), timeline, ephemeral
    events, room account data. Then invites, the state changes of left rooms
    and global account data. With ``skip_messages``, the timeline's non-state
    events (old messages) are left out. A timeline event whose ID is in
    ``decrypted`` is replaced by its decrypted event, or left out when that is
    None (it waits for its room key).
    """
    rooms = response.get("rooms") or {}
    decrypted = decrypted or {}
    for room_id, room in joined_rooms(response).items():
        for raw in events_of(room, "state") + events_of(room, "state_after"):
            yield timeline_event(raw, room_id)
        for raw in events_of(room, "timeline"):
            event_id = raw.get("event_id")
            event = decrypted[event_id] if event_id in decrypted else timeline_event(raw, room_id)
            if event is not None and (not skip_messages or isinstance(event, RoomStateEvent)):
                yield event
        for raw in events_of(room, "ephemeral"):
            yield EphemeralEvent(raw, room_id)
        for raw in events_of(room, "account_data"):
            yield AccountDataEvent(raw, room_id)
    for room_id, room in (rooms.get("invite") or {}).items():
        for raw in events_of(room, "invite_state"):
            yield InvitationEvent(raw, room_id)
    for room_id, room in (rooms.get("leave") or {}).items():
        for raw in events_of(room, "state") + events_of(room, "timeline"):
            if "state_key" in raw:
                yield timeline_event(raw, room_id)
    for raw in events_of(response, "account_data"):
        yield AccountDataEvent(raw)


@dataclass(slots=True)
class Gap:
    """What paging back over one limited timeline found."""

    events: list[dict[str, Any]]
    """The missed events, oldest first."""
    closed: bool
    """True when paging reached the last handled event (or the bot's join, or the room's start)."""
    resume_from: str | None = None
    """When not closed: the /messages token where paging stopped (older events lie behind it)."""


HistoryPage = Callable[[str, int], Awaitable[tuple[list[dict[str, Any]], str | None]]]
"""Fetches up to n events before a token, newest first, and the token after them (None at the room's start)."""


async def page_back(
    fetch_page: HistoryPage,
    prev_batch: str,
    *,
    last_handled: str | None,
    own_user_id: str | None,
    limit: int,
) -> Gap:
    """Collect the events before ``prev_batch`` back to ``last_handled`` (excluded), at most ``limit``.

    Without a ``last_handled`` event, paging stops at the bot's own join (included).
    """
    found: list[dict[str, Any]] = []
    token: str | None = prev_batch
    while token is not None:
        wanted = min(100, limit - len(found)) or 1  # one more, once full: is the gap closed right there?
        page, following = await fetch_page(token, wanted)
        for raw in page:
            if last_handled is not None and raw.get("event_id") == last_handled:
                return Gap(found[::-1], closed=True)
            if len(found) >= limit:
                return Gap(found[::-1], closed=False, resume_from=token)
            found.append(raw)
            if last_handled is None and _is_own_join(raw, own_user_id):
                return Gap(found[::-1], closed=True)
        if not page or following == token:
            break
        token = following
    return Gap(found[::-1], closed=True)


def _is_own_join(raw: Mapping[str, Any], own_user_id: str | None) -> bool:
    content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
    return (
        raw.get("type") == "m.room.member"
        and raw.get("state_key") == own_user_id
        and content.get("membership") == "join"
        and (raw.get("unsigned") or {}).get("prev_content", {}).get("membership") != "join"
    )
