"""State groups and state resolution.

The state before and after every event is a state group: a delta of a few entries over
another group, or, every `MAX_STATE_CHAIN` deltas (and whenever an entry disappears), a
full snapshot, so any group is one recursive query away. Hot groups are cached, and the
groups this process makes are kept (as they are written: deltas) until well after their
transaction commits: a group is read back before its group commit lands, when the room's
next event (a remote one, say) follows it.

Where branches of a room's graph meet, their states are resolved with the algorithm of
the room's version (`events.state_res`): the events of the state sets and their whole auth
chains are loaded (one recursive query for the chains, one for the events).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Mapping

from ranvier.events.model import Event
from ranvier.events.room_versions import RoomVersion
from ranvier.events.state_res import resolve_state
from ranvier.rooms.graph_store import GraphQueries
from ranvier.rooms.head import State
from ranvier.rooms.store import NewStateGroup, RoomStore, StateKey, StateMap

#: Longest chain of state deltas before a full snapshot is written.
MAX_STATE_CHAIN = 32
_STATE_GROUPS_CACHED = 2_000
_MADE_KEPT = 10_000


class StateGroups:
    def __init__(self, store: RoomStore, graph: GraphQueries, allocate: Callable[[], int]) -> None:
        self.store = store
        self.graph = graph
        self._allocate = allocate
        self._cache: OrderedDict[int, tuple[StateMap, int]] = OrderedDict()
        #: The groups this process made, as written: group -> (prev group or None, entries, chain).
        self._made: OrderedDict[int, NewStateGroup] = OrderedDict()

    async def load(self, state_group: int) -> tuple[StateMap, int]:
        """A group's state and delta chain length; the hot ones and those made here from memory."""
        cached = self._cache.get(state_group)
        if cached is not None:
            self._cache.move_to_end(state_group)
            return cached
        made = self._made.get(state_group)
        if made is not None:
            base = (await self.load(made.prev_group))[0] if made.prev_group is not None else {}
            cached = ({**base, **made.entries}, made.chain_length)
        else:
            cached = await self.store.load_state_group(state_group) if state_group else ({}, 0)
        self._remember(state_group, *cached)
        return cached

    def _made_here(self, group: NewStateGroup) -> NewStateGroup:
        self._made[group.state_group] = group
        if len(self._made) > _MADE_KEPT:
            self._made.popitem(last=False)
        return group

    def _remember(self, state_group: int, state: StateMap, chain_length: int) -> None:
        self._cache[state_group] = (state, chain_length)
        if len(self._cache) > _STATE_GROUPS_CACHED:
            self._cache.popitem(last=False)

    async def ids(self, state_group: int) -> StateMap:
        return (await self.load(state_group))[0]

    async def ids_of_groups(self, state_groups: Iterable[int]) -> dict[int, StateMap]:
        """The states of many groups (a sync of many rooms): those in memory from there,
        the others in one query per 500 groups, not cached (they would evict the hot ones)."""
        found: dict[int, StateMap] = {}
        stored = []
        for state_group in set(state_groups):
            if state_group in self._cache or state_group in self._made or not state_group:
                found[state_group] = await self.ids(state_group)
            else:
                stored.append(state_group)
        found.update(await self.store.load_state_groups(stored))
        return found

    async def events(self, state_ids: StateMap, known: Mapping[str, Event] | None = None) -> State:
        """The events of a state map (those in `known` taken from there)."""
        known = known or {}
        missing = [event_id for event_id in state_ids.values() if event_id not in known]
        loaded = await self.store.get_events(missing) if missing else {}
        return {key: known.get(event_id) or loaded[event_id] for key, event_id in state_ids.items()
                if event_id in known or event_id in loaded}

    def derive(self, base_group: int, base: StateMap, base_chain: int, new: StateMap) -> tuple[NewStateGroup, int]:
        """A new group for `new`: a delta over `base_group` when that only adds or replaces
        entries and the chain is short enough, else a full snapshot. Returns it and its
        chain length; it is cached at once (the caller writes it in its transaction)."""
        group = self._allocate()
        removed = any(key not in new for key in base)
        if base_group and not removed and base_chain < MAX_STATE_CHAIN:
            delta = {key: event_id for key, event_id in new.items() if base.get(key) != event_id}
            new_group = NewStateGroup(group, base_group, base_chain + 1, delta)
        else:
            new_group = NewStateGroup(group, None, 0, dict(new))
        self._remember(group, dict(new), new_group.chain_length)
        return self._made_here(new_group), new_group.chain_length

    def with_event(self, base_group: int, base_chain: int, key: StateKey, event_id: str,
                   base: Callable[[], StateMap]) -> tuple[NewStateGroup, int]:
        """The group after a state event: one entry over the group before it, or a full
        snapshot (`base()` gives the state before) when the chain is long enough."""
        group = self._allocate()
        if base_group and base_chain < MAX_STATE_CHAIN:
            return self._made_here(NewStateGroup(group, base_group, base_chain + 1, {key: event_id})), base_chain + 1
        return self._made_here(NewStateGroup(group, None, 0, {**base(), key: event_id})), 0

    def forget(self, state_groups: list[int]) -> None:
        """Groups whose transaction failed."""
        for state_group in state_groups:
            self._cache.pop(state_group, None)
            self._made.pop(state_group, None)

    async def resolve(self, version: RoomVersion, state_sets: list[StateMap],
                      pending: Mapping[str, Event]) -> StateMap:
        """The resolved state of several state maps (the algorithm of the room's version).
        `pending` holds events not stored yet that the maps or auth chains may name."""
        first = state_sets[0]
        if all(state == first for state in state_sets[1:]):
            return dict(first)
        event_map = await self._resolution_events(state_sets, pending)
        return resolve_state(version, state_sets, event_map)

    async def _resolution_events(self, state_sets: list[StateMap], pending: Mapping[str, Event]) -> dict[str, Event]:
        """Every event of the state sets and of their auth chains. Events in hand (not
        stored yet, or written but maybe not committed: the store's cache) are walked in
        memory down to the older ones, whose chains one recursive query reads."""
        event_map: dict[str, Event] = {}
        stored: set[str] = set()
        walk = list({event_id for state in state_sets for event_id in state.values()})
        while walk:
            event_id = walk.pop()
            if event_id in event_map or event_id in stored:
                continue
            event = pending.get(event_id) or self.store.cached_event(event_id)
            if event is None:
                stored.add(event_id)
            else:
                event_map[event_id] = event
                walk += event.auth_event_ids
        chain = await self.graph.auth_chain_ids(list(stored))
        event_map.update(await self.store.get_events((stored | chain) - event_map.keys()))
        return event_map
