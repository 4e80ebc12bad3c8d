"""What the room server keeps in memory per room (its head) and per batch of events being
built (a draft): the state as `Event` objects, so building and checking an event reads
nothing from the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ranvier.events.model import MEMBER, Event
from ranvier.events.room_versions import RoomVersion
from ranvier.rooms.store import NewStateGroup, PersistedEvent, StateKey

JOIN = "join"
#: A new local event names at most this many forward extremities as prev_events, the
#: deepest ones (as Synapse does); the others are merged by later events.
MAX_PREV_EVENTS = 10

State = dict[StateKey, Event]
T = TypeVar("T")


@dataclass
class RoomHead:
    """A room's version, current state, and forward extremities (the events without children
    that the next local event follows). A room known only through an invite has none."""

    room_id: str
    version: RoomVersion
    state: State
    state_group: int
    chain_length: int
    #: event_id -> depth of each forward extremity.
    extremities: dict[str, int]
    #: user_id -> their join event, kept in step with `state` (push rules and fan-out need it).
    joined: dict[str, Event] = field(default_factory=dict)
    #: What `derived` computed from `state`, by the function that computed it.
    _derived: dict[Callable[[State], Any], Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.joined:
            self.joined = joined_members(self.state)

    def with_extremities(self, extremities: dict[str, int]) -> RoomHead:
        """This head after events that changed no state: the same state, members and derived
        values, new forward extremities."""
        return RoomHead(self.room_id, self.version, self.state, self.state_group, self.chain_length, extremities,
                        self.joined, self._derived)

    def derived(self, compute: Callable[[State], T]) -> T:
        """compute(state), computed once for this head. A head's state is never changed in
        place (a change of state makes a new head), so the value lives exactly as long as
        the state it was computed from is current and in memory: no separate cache to
        bound, and no cache that a sync of more rooms than it holds would empty."""
        try:
            return self._derived[compute]
        except KeyError:
            value = self._derived[compute] = compute(self.state)
            return value

    @property
    def depth(self) -> int:
        """The depth of the deepest forward extremity."""
        return max(self.extremities.values(), default=0)

    @property
    def resident(self) -> bool:
        """Whether this server holds the room's graph (not only an invite into it)."""
        return bool(self.extremities)

    def prev_event_ids(self) -> list[str]:
        """The prev_events of the next local event: the deepest forward extremities."""
        if len(self.extremities) == 1:
            return list(self.extremities)
        return sorted(self.extremities, key=lambda event_id: (-self.extremities[event_id], event_id))[:MAX_PREV_EVENTS]

    @property
    def latest_event_id(self) -> str:
        return self.prev_event_ids()[0]


def joined_members(state: State) -> dict[str, Event]:
    return {key[1]: event for key, event in state.items() if key[0] == MEMBER and event.membership == JOIN}


@dataclass
class Draft:
    """Events being built in one batch; each sees the state the ones before it left.

    It starts from `base` (the state before its first event: the room's current state,
    unless the first event names only some of many forward extremities) and is also the
    view persist hooks get of the room before an event from another server.
    """

    head: RoomHead
    items: list[PersistedEvent] = field(default_factory=list)
    state: State = field(default_factory=dict)
    base: State | None = None
    state_group: int = 0
    chain_length: int = 0
    prev_event_ids: list[str] = field(default_factory=list)
    depth: int = 0
    #: State groups the draft needs beside its events' (the state of the prev events it names).
    new_groups: list[NewStateGroup] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.base is None:
            self.base = self.head.state
            self.state_group = self.head.state_group
            self.chain_length = self.head.chain_length
            self.prev_event_ids = self.head.prev_event_ids() if self.head.extremities else []
            self.depth = max((self.head.extremities[e] for e in self.prev_event_ids), default=0)

    def get(self, key: StateKey) -> Event | None:
        return self.state[key] if key in self.state else self.base.get(key)

    def joined_members(self) -> dict[str, Event]:
        """Who is joined at this point of the draft: user_id -> their join event."""
        base_joined = self.head.joined if self.base is self.head.state else joined_members(self.base)
        changed = {key[1]: ev for key, ev in self.state.items() if key[0] == MEMBER}
        if not changed:
            return base_joined
        joined = dict(base_joined)
        for user_id, event in changed.items():
            if event.membership == JOIN:
                joined[user_id] = event
            else:
                joined.pop(user_id, None)
        return joined

    def full_state(self) -> State:
        return {**self.base, **self.state}

    def full_state_ids(self) -> dict[StateKey, str]:
        return {key: event.event_id for key, event in self.full_state().items()}

    def advance(self, event: Event) -> None:
        """The next event of the draft follows this one."""
        self.prev_event_ids = [event.event_id]
        self.depth = event.depth
