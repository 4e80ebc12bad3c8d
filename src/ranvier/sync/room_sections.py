"""The shapes a /sync response's joined rooms are built from: what one sync reads for all
its rooms at once, a room's timeline slice, the part of an incremental section every
reader shares, and a section waiting for its events to be serialised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.events.model import Event
from ranvier.rooms.service import RoomHead
from ranvier.rooms.store import EventRow, StateKey


@dataclass
class Prefetched:
    """What the rooms of one sync need, read for all of them at once: their heads, the
    newest events of each room's window (the first batch its timeline looks at) and the
    user's membership history in each."""

    heads: dict[str, RoomHead]
    recent: dict[str, list[EventRow]]
    histories: dict[str, list[tuple[int, str]]]
    #: The user's memberships (room_id -> (membership, stream)), as `RoomServer.user_memberships`.
    memberships: dict[str, tuple[str, int]]
    #: The state groups a full section starts from when the room's state changed within
    #: its timeline (group -> state IDs).
    state_groups: dict[int, dict[StateKey, str]]


@dataclass
class PendingRoom:
    """A joined room's section whose events are not serialised yet (every room's are
    serialised together, but for a timeline already serialised for every reader), with the
    IDs of its state events, looked up together too."""

    section: dict[str, Any]
    timeline_rows: list[EventRow]
    state_ids: dict[StateKey, str]
    #: The room's current state (its head's), which holds most of the state section's events parsed.
    current: dict[StateKey, Event]
    #: Encoded events, or dicts with `event_fields` or the federation format (see Timeline.serialize).
    timeline_events: list[Any] | None = None


@dataclass
class TimelineSlice:
    """A room's timeline in a sync: its events (oldest first); `limited` when matching
    events were left before them; `gap_before`, the stream position below which the
    window was not returned (None when it all was); and the state events in the window
    that the timeline filter left out. `oldest_scanned`: the stream position of the oldest
    event looked at (None when none was); a reader joined before it sees the same slice
    whoever computed it."""

    rows: list[EventRow]
    limited: bool
    gap_before: int | None
    hidden_state: list[EventRow]
    oldest_scanned: int | None = None


@dataclass
class RoomDelta:
    """What an incremental sync shows of a joined room between two stream positions, the
    same for every reader who was joined throughout and reads with the same timeline
    filter and the same ignored senders: the timeline slice, the IDs of the state events
    of its gap (before lazy-loading, which depends on the connection) and the timeline's
    client events, serialised once (None when they depend on the reader)."""

    timeline: TimelineSlice
    state_ids: dict[StateKey, str]
    events: list[Any] | None
    #: (sender, sending device) of the timeline's events: that device's own copy differs
    #: (it carries the transaction IDs).
    sending_devices: frozenset[tuple[str, str]]
    #: Whether the timeline or the gap's state holds member events (the summary is sent then).
    members_changed: bool
