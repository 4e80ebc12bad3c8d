"""Sliding sync's room list: which rooms a user's list holds, their order, the filters.

The list holds the rooms the user is joined to, invited to or knocking on, those they were
kicked or banned from after joining, and those they left themselves only if the connection
was sent them before. It is ordered by activity, newest first: a joined room by its newest
event, any other room by the user's membership event (later events are not theirs to
see). The memberships and the newest event of every room are in memory, so ordering a
thousand rooms reads nothing; what filters need is kept in memory too (`RoomFacts`,
`AccountMarks`) and read in batches the first time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

from ranvier.events.model import CREATE, MEMBER, Event
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import PersistedEvent
from ranvier.rooms.sync_queries import SyncQueries
from ranvier.storage.engine import Transaction
from ranvier.sync.sliding_request import ListConfig, RoomFilter
from ranvier.users.account_data import TAGS, AccountData

#: The events that are "proper" activity (the proposal's list): they move a room's bump_stamp.
BUMP_TYPES = ("m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite",
              "m.poll.start", "m.beacon_info")
ENCRYPTION = "m.room.encryption"
SPACE_CHILD = "m.space.child"
DIRECT = "m.direct"
_USERS_CACHED = 10_000


class RoomFacts:
    """What filters and `bump_stamp` need of a room, in memory: its type, whether it is
    encrypted, the stream position of its newest bump event.

    A persist hook: every committed event of those kinds updates them, so a fact read once
    from the database stays true. Rooms are read in batches the first time they are asked
    about (a read racing with a commit merges with what the hook saw: a larger bump stamp
    wins, encryption only ever appears).
    """

    def __init__(self, queries: SyncQueries) -> None:
        self.queries = queries
        self._bump: dict[str, int] = {}
        self._types: dict[str, str | None] = {}
        self._encrypted: set[str] = set()

    # -- the persist hook ------------------------------------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> Event | None:
        relevant = event.type in BUMP_TYPES or (event.type == ENCRYPTION and event.state_key == "")
        return event if relevant else None

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, Event]]) -> None:
        """Nothing to store: the events table holds these facts already."""
        return None

    def committed(self, prepared: list[tuple[PersistedEvent, Event]]) -> None:
        for item, event in prepared:
            room_id = event.room_id
            if event.type == ENCRYPTION:
                self._encrypted.add(room_id)
                continue
            self._bump[room_id] = max(self._bump.get(room_id, 0), item.stream_ordering)
            if event.type == CREATE and event.state_key == "":
                room_type = event.content.get("type")
                self._types[room_id] = room_type if isinstance(room_type, str) else None

    # -- reading ---------------------------------------------------------------------------

    async def bump_stamps(self, room_ids: list[str]) -> dict[str, int]:
        """room_id -> stream position of its newest bump event (any bump since this process
        started is newer than everything stored before)."""
        missing = [room_id for room_id in room_ids if room_id not in self._bump]
        if missing:
            for room_id, stream in (await self.queries.latest_of_types(missing, BUMP_TYPES)).items():
                self._bump[room_id] = max(self._bump.get(room_id, 0), stream)
        return {room_id: self._bump.get(room_id, 0) for room_id in room_ids}

    async def kinds(self, room_ids: list[str]) -> dict[str, tuple[str | None, bool]]:
        """room_id -> (room type, encrypted)."""
        missing = [room_id for room_id in room_ids if room_id not in self._types]
        if missing:
            for room_id, (room_type, encrypted) in (await self.queries.room_kinds(missing)).items():
                self._types.setdefault(room_id, room_type)
                if encrypted:
                    self._encrypted.add(room_id)
        return {room_id: (self._types.get(room_id), room_id in self._encrypted) for room_id in room_ids}


@dataclass(frozen=True)
class Marks:
    """A user's direct rooms (m.direct) and room tags (m.tag) as of an account data position."""

    position: int
    direct: frozenset[str]
    tags: Mapping[str, frozenset[str]]


class AccountMarks:
    """`Marks` per user, moved forward by reading only the account data written since."""

    def __init__(self, account_data: AccountData | None) -> None:
        self.account_data = account_data
        self._users: OrderedDict[str, Marks] = OrderedDict()

    async def of(self, user_id: str, upto: int) -> Marks:
        marks = self._users.get(user_id) or Marks(0, frozenset(), {})
        if self.account_data is not None and marks.position < upto:
            global_events, room_events = await self.account_data.changes(user_id, marks.position, upto)
            direct = marks.direct
            for event in global_events:
                if event["type"] == DIRECT:
                    direct = direct_rooms(event["content"])
            tags = dict(marks.tags)
            for room_id, events in room_events.items():
                for event in events:
                    if event["type"] == TAGS:
                        value = event["content"].get("tags")
                        tags[room_id] = frozenset(value) if isinstance(value, dict) else frozenset()
            marks = Marks(upto, direct, tags)
        self._users[user_id] = marks
        self._users.move_to_end(user_id)
        if len(self._users) > _USERS_CACHED:
            self._users.popitem(last=False)
        return marks


def direct_rooms(content: dict[str, Any]) -> frozenset[str]:
    """Every room ID listed in an m.direct event's content ({user ID: [room IDs]})."""
    return frozenset(room_id for rooms in content.values() if isinstance(rooms, list)
                     for room_id in rooms if isinstance(room_id, str))


@dataclass(frozen=True, slots=True)
class Entry:
    """A room a list window or a subscription picked, with the user's membership."""

    room_id: str
    membership: str
    membership_stream: int
    #: False for rooms the user was never joined to (invites, knocks, declined invites).
    ever_joined: bool
    #: The user's membership event, for rooms they have left.
    leave_event_id: str | None = None


@dataclass
class Listing:
    """The user's rooms as of one response."""

    memberships: Mapping[str, tuple[str, int]]
    #: The rooms of the list, newest activity first.
    order: list[str]
    #: The rooms the user is not joined to that a list or a subscription may show.
    others: dict[str, Entry]

    def entry(self, room_id: str) -> Entry | None:
        """The room's entry, or None if the user may see nothing of it."""
        other = self.others.get(room_id)
        if other is not None:
            return other
        membership = self.memberships.get(room_id)
        if membership is None or membership[0] != "join":
            return None
        return Entry(room_id, "join", membership[1], True)


NO_FILTER = RoomFilter()


class RoomLists:
    def __init__(self, rooms: RoomServer, queries: SyncQueries, facts: RoomFacts) -> None:
        self.rooms = rooms
        self.queries = queries
        self.facts = facts
        #: user_id -> room_id -> (stream, event ID, sender, ever joined) of leave and ban memberships.
        self._departures: OrderedDict[str, dict[str, tuple[int, str, str, bool]]] = OrderedDict()

    async def listing(self, user_id: str, memberships: Mapping[str, tuple[str, int]],
                      sent_before: Mapping[str, Any], ignored: set[str]) -> Listing:
        """The rooms of the user's list in activity order, and the rooms they are not joined
        to that a list or subscription may show (invites, knocks, rooms left or declined)."""
        room_streams = self.rooms.room_streams
        activity = {room_id: room_streams.get(room_id, stream)
                    for room_id, (membership, stream) in memberships.items() if membership == "join"}
        others: dict[str, Entry] = {}
        rest = [(room_id, membership, stream) for room_id, (membership, stream) in memberships.items()
                if membership != "join"]
        if rest:
            departures = await self._departures_of(user_id, rest)
            inviters = await self._inviters(user_id, [r for r, m, _ in rest if m == "invite"]) if ignored else {}
            for room_id, membership, stream in rest:
                if membership in ("invite", "knock"):
                    if inviters.get(room_id) in ignored:
                        continue  # an ignored user's invite is never shown
                    others[room_id] = Entry(room_id, membership, stream, False)
                    activity[room_id] = stream
                elif membership in ("leave", "ban") and room_id in departures:
                    _, event_id, sender, ever_joined = departures[room_id]
                    if not ever_joined and membership == "ban":
                        continue  # banned without ever being in the room: nothing of it to show
                    others[room_id] = Entry(room_id, membership, stream, ever_joined, event_id)
                    if sender != user_id or room_id in sent_before:  # kicked, or seen on this connection
                        activity[room_id] = stream
        # Every event has its own stream position, so activities never tie.
        return Listing(memberships, sorted(activity, key=activity.__getitem__, reverse=True), others)

    async def _inviters(self, user_id: str, invites: list[str]) -> dict[str, str]:
        heads = await self.rooms.heads(invites) if invites else {}
        return {room_id: head.state[(MEMBER, user_id)].sender for room_id, head in heads.items()
                if (MEMBER, user_id) in head.state}

    async def _departures_of(self, user_id: str, rest: list[tuple[str, str, int]]):
        cached = self._departures.get(user_id)
        if cached is None or any(m in ("leave", "ban") and cached.get(room_id, (None,))[0] != stream
                                 for room_id, m, stream in rest):
            cached = await self.queries.departures(user_id)
            self._departures[user_id] = cached
            if len(self._departures) > _USERS_CACHED:
                self._departures.popitem(last=False)
        self._departures.move_to_end(user_id)
        return cached

    async def windows(self, listing: Listing, lists: Mapping[str, ListConfig],
                      marks: Marks) -> dict[str, tuple[int, list[str]]]:
        """list name -> (count of matching rooms, the room IDs within its ranges, in order)."""
        if not lists:
            return {}
        kinds: dict[str, tuple[str | None, bool]] = {}
        if any(config.filters.needs_room_facts for config in lists.values()):
            kinds = await self.facts.kinds(listing.order)
        spaces = await self._space_children(listing, lists)
        result = {}
        for name, config in lists.items():
            filters = config.filters
            matching = listing.order if filters == NO_FILTER else [
                room_id for room_id in listing.order
                if _passes(room_id, listing.memberships[room_id][0], filters, marks, kinds, spaces)]
            window = [room_id for index, room_id in enumerate(matching[:config.window_end]) if config.in_range(index)]
            result[name] = (len(matching), window)
        return result

    async def _space_children(self, listing: Listing, lists: Mapping[str, ListConfig]) -> dict[str, frozenset[str]]:
        """space room ID -> the rooms its m.space.child events name, for the spaces the
        filters name that the user is joined to (others are ignored, as the proposal says)."""
        wanted = {space for config in lists.values() for space in config.filters.spaces or ()
                  if listing.memberships.get(space, ("",))[0] == "join"}
        if not wanted:
            return {}
        heads = await self.rooms.heads(sorted(wanted))
        return {space: frozenset(key for (event_type, key), event in head.state.items()
                                 if event_type == SPACE_CHILD and isinstance(event.content.get("via"), list)
                                 and event.content["via"])
                for space, head in heads.items()}


def _passes(room_id: str, membership: str, filters: RoomFilter, marks: Marks,
            kinds: Mapping[str, tuple[str | None, bool]], spaces: Mapping[str, frozenset[str]]) -> bool:
    if filters.is_dm is not None and (room_id in marks.direct) != filters.is_dm:
        return False
    if filters.is_invited is not None and (membership == "invite") != filters.is_invited:
        return False
    if filters.spaces is not None and not any(room_id in spaces.get(space, ()) for space in filters.spaces):
        return False
    room_type, encrypted = kinds.get(room_id, (None, False))
    if filters.is_encrypted is not None and encrypted != filters.is_encrypted:
        return False
    if room_type in filters.not_room_types or (filters.room_types is not None and room_type not in filters.room_types):
        return False
    tags = marks.tags.get(room_id, frozenset())
    if filters.not_tags and tags.intersection(filters.not_tags):
        return False
    return filters.tags is None or bool(tags.intersection(filters.tags))
