"""State resolution: v1 (rooms 1), v2 (rooms 2-11) and the v12 variant.

Pure: state maps of event IDs in, a state map out. `event_map` must hold
every event the state sets mention and their auth chains; events missing from
it are ignored, as a server cannot use what it does not have. Rejected events
(`Event.rejected_reason` set) are never used as auth events.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from typing import Callable, Iterable, Mapping

from ranvier.events.auth import (
    BAN,
    CREATE_KEY,
    LEAVE,
    POWER_LEVELS_KEY,
    AuthError,
    StateKey,
    auth_types_for_event,
    check_auth,
    get_power_level,
)
from ranvier.events.model import JOIN_RULES, MEMBER, POWER_LEVELS, Event
from ranvier.events.room_versions import RoomVersion

StateMap = dict[StateKey, str]
EventMap = Mapping[str, Event]


def resolve_state(
    room_version: RoomVersion,
    state_sets: list[dict[StateKey, str]],
    event_map: EventMap,
    auth_chain_ids_of: Callable[[str], set[str]] | None = None,
) -> dict[StateKey, str]:
    """Resolve `state_sets` into one state map with the algorithm of `room_version`.

    `auth_chain_ids_of(event_id)` may supply precomputed auth chains (the
    event's auth events, recursively); by default they are walked in
    `event_map`. Room version 1 uses the original algorithm of rooms/v1.
    """
    if not state_sets:
        return {}
    unconflicted, conflicted = _separate(state_sets)
    if not conflicted:
        return unconflicted
    if room_version.state_res == "v1":
        return _resolve_v1(room_version, unconflicted, conflicted, event_map)
    chains = auth_chain_ids_of or _AuthChains(event_map).of
    return _resolve_v2(room_version, state_sets, unconflicted, conflicted, event_map, chains)


def _separate(state_sets: list[dict[StateKey, str]]) -> tuple[StateMap, dict[StateKey, set[str]]]:
    """Split into the unconflicted state map and, per conflicted key, its candidate IDs."""
    unconflicted: StateMap = {}
    conflicted: dict[StateKey, set[str]] = {}
    for key in set().union(*state_sets):
        values = {state.get(key) for state in state_sets}
        if len(values) == 1 and None not in values:
            unconflicted[key] = values.pop()
        else:
            conflicted[key] = values - {None}
    return unconflicted, conflicted


class _AuthChains:
    """Auth chains walked in the event map, memoised for the duration of one resolution."""

    def __init__(self, event_map: EventMap) -> None:
        self._event_map = event_map
        self._chains: dict[str, frozenset[str]] = {}

    def of(self, event_id: str) -> frozenset[str]:
        if event_id in self._chains:
            return self._chains[event_id]
        # Iterative post-order walk: long rooms would overflow recursion.
        stack = [event_id]
        while stack:
            current = stack[-1]
            event = self._event_map.get(current)
            parents = [p for p in (event.auth_event_ids if event else []) if p in self._event_map]
            pending = [p for p in parents if p not in self._chains]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            chain: set[str] = set(parents)
            for parent in parents:
                chain |= self._chains[parent]
            self._chains[current] = frozenset(chain)
        return self._chains[event_id]


def _create_event_of(room_version: RoomVersion, event: Event, event_map: EventMap) -> Event | None:
    """The create event a v12 event implies through its room ID."""
    if not room_version.room_id_is_create_event_id or not isinstance(event.room_id, str):
        return None
    return event_map.get("$" + event.room_id[1:])


def _auth_state_for(
    room_version: RoomVersion, event: Event, state: Mapping[StateKey, str], event_map: EventMap
) -> dict[StateKey, Event]:
    """The state to authorise `event` with: the resolved state where it has the needed keys,
    else the event's own (non-rejected) auth events."""
    auth_state: dict[StateKey, Event] = {}
    for auth_id in event.auth_event_ids:
        auth_event = event_map.get(auth_id)
        if auth_event is not None and auth_event.rejected_reason is None:
            auth_state[(auth_event.type, auth_event.state_key)] = auth_event
    create = _create_event_of(room_version, event, event_map)
    if create is not None:
        auth_state[CREATE_KEY] = create
    for key in auth_types_for_event(room_version, event.type, event.sender, event.state_key, event.content):
        if key in state and state[key] in event_map:
            auth_state[key] = event_map[state[key]]
    return auth_state


def _is_allowed(
    room_version: RoomVersion, event: Event, state: Mapping[StateKey, str], event_map: EventMap
) -> bool:
    try:
        check_auth(room_version, event, _auth_state_for(room_version, event, state, event_map))
    except AuthError:
        return False
    return True


def _iterative_auth_checks(
    room_version: RoomVersion, event_ids: Iterable[str], initial: StateMap, event_map: EventMap
) -> StateMap:
    state = dict(initial)
    for event_id in event_ids:
        event = event_map[event_id]
        if event.state_key is not None and _is_allowed(room_version, event, state, event_map):
            state[(event.type, event.state_key)] = event_id
    return state


# --- state resolution v2 ---------------------------------------------------


def _is_power_event(event: Event) -> bool:
    if event.state_key is None:
        return False
    if event.type in (POWER_LEVELS, JOIN_RULES):
        return True
    return event.type == MEMBER and event.membership in (LEAVE, BAN) and event.sender != event.state_key


def _conflicted_state_subgraph(conflicted_ids: set[str], event_map: EventMap) -> set[str]:
    """Events on auth-event paths between two conflicted events (endpoints included)."""
    reachable: set[str] = set()
    children: dict[str, set[str]] = {}
    stack = list(conflicted_ids)
    while stack:
        event_id = stack.pop()
        for auth_id in event_map[event_id].auth_event_ids if event_id in event_map else []:
            if auth_id not in event_map:
                continue
            children.setdefault(auth_id, set()).add(event_id)
            if auth_id not in reachable:
                reachable.add(auth_id)
                stack.append(auth_id)
    # Walk back from the conflicted events towards their descendants: an event
    # reachable from a conflicted event that also leads to one lies on a path.
    on_path = set(conflicted_ids)
    stack = [event_id for event_id in conflicted_ids if event_id in reachable]
    seen = set(stack)
    while stack:
        event_id = stack.pop()
        for child in children.get(event_id, ()):
            on_path.add(child)
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return on_path


def _sender_power(room_version: RoomVersion, event: Event, event_map: EventMap) -> int | float:
    """The sender's power level according to the event's own auth events."""
    return get_power_level(_auth_state_for(room_version, event, {}, event_map), event.sender)


def _reverse_topological_power_order(
    room_version: RoomVersion, event_ids: set[str], event_map: EventMap
) -> list[str]:
    """Kahn's algorithm over the auth DAG, taking the highest-power, then oldest, then
    smallest-ID candidate first."""
    sort_key = {
        event_id: (-_sender_power(room_version, event_map[event_id], event_map),
                   event_map[event_id].origin_server_ts, event_id)
        for event_id in event_ids
    }
    waiting_on: dict[str, int] = {}
    dependants: dict[str, list[str]] = {}
    for event_id in event_ids:
        parents = {a for a in event_map[event_id].auth_event_ids if a in event_ids}
        waiting_on[event_id] = len(parents)
        for parent in parents:
            dependants.setdefault(parent, []).append(event_id)
    ready = [sort_key[event_id] for event_id, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        event_id = heapq.heappop(ready)[2]
        ordered.append(event_id)
        for dependant in dependants.get(event_id, ()):
            waiting_on[dependant] -= 1
            if waiting_on[dependant] == 0:
                heapq.heappush(ready, sort_key[dependant])
    return ordered


def _power_levels_parent(event: Event, event_map: EventMap) -> str | None:
    """The m.room.power_levels event among the event's auth events, if any."""
    for auth_id in event.auth_event_ids:
        auth_event = event_map.get(auth_id)
        if auth_event is not None and auth_event.type == POWER_LEVELS and auth_event.state_key == "":
            return auth_id
    return None


def _mainline_order(event_ids: Iterable[str], power_levels_id: str | None, event_map: EventMap) -> list[str]:
    """Sort by mainline position (older power levels first), then origin_server_ts, then ID."""
    mainline_index: dict[str, int] = {}
    current = power_levels_id
    while current is not None and current in event_map and current not in mainline_index:
        mainline_index[current] = len(mainline_index)
        current = _power_levels_parent(event_map[current], event_map)

    position_cache: dict[str, float] = {}

    def position(event_id: str) -> float:
        walked = []
        current = _power_levels_parent(event_map[event_id], event_map)
        found: float = math.inf
        while current is not None:
            if current in mainline_index:
                found = mainline_index[current]
                break
            if current in position_cache:
                found = position_cache[current]
                break
            walked.append(current)
            current = _power_levels_parent(event_map[current], event_map)
        # Every power levels event walked through leads to the same mainline event.
        for walked_id in walked:
            position_cache[walked_id] = found
        return found

    def sort_key(event_id: str) -> tuple:
        event = event_map[event_id]
        return (-position(event_id), event.origin_server_ts, event_id)

    return sorted(event_ids, key=sort_key)


def _resolve_v2(
    room_version: RoomVersion,
    state_sets: list[dict[StateKey, str]],
    unconflicted: StateMap,
    conflicted: dict[StateKey, set[str]],
    event_map: EventMap,
    auth_chain_ids_of: Callable[[str], Iterable[str]],
) -> StateMap:
    conflicted_ids = {event_id for ids in conflicted.values() for event_id in ids if event_id in event_map}
    full_chains = []
    for state in state_sets:
        chain: set[str] = set()
        for event_id in state.values():
            chain |= set(auth_chain_ids_of(event_id))
        full_chains.append(chain)
    auth_difference = set().union(*full_chains) - set.intersection(*full_chains)
    full_conflicted = conflicted_ids | {event_id for event_id in auth_difference if event_id in event_map}
    if room_version.state_res == "v2.1":
        full_conflicted |= _conflicted_state_subgraph(conflicted_ids, event_map)

    power_events = {event_id for event_id in full_conflicted if _is_power_event(event_map[event_id])}
    selected = set(power_events)
    for event_id in power_events:
        selected |= full_conflicted.intersection(auth_chain_ids_of(event_id))
    power_ordered = _reverse_topological_power_order(room_version, selected, event_map)

    initial = {} if room_version.state_res == "v2.1" else unconflicted
    partial = _iterative_auth_checks(room_version, power_ordered, initial, event_map)

    remaining = full_conflicted - selected
    others_ordered = _mainline_order(remaining, partial.get(POWER_LEVELS_KEY), event_map)
    resolved = _iterative_auth_checks(room_version, others_ordered, partial, event_map)
    resolved.update(unconflicted)
    return resolved


# --- state resolution v1 ---------------------------------------------------


def _sha1(event_id: str) -> bytes:
    return hashlib.sha1(event_id.encode("utf-8")).digest()


def _resolve_v1(
    room_version: RoomVersion,
    unconflicted: StateMap,
    conflicted: dict[StateKey, set[str]],
    event_map: EventMap,
) -> StateMap:
    """The original algorithm: auth-relevant types in a fixed order, each fork's events
    applied oldest first while they pass auth; other keys take the newest event that passes."""
    resolved = dict(unconflicted)
    candidates = {
        key: [event_map[event_id] for event_id in ids if event_id in event_map] for key, ids in conflicted.items()
    }

    for event_type in (POWER_LEVELS, JOIN_RULES, MEMBER):
        for key in sorted(k for k in candidates if k[0] == event_type):
            events = sorted(candidates[key], key=lambda e: (e.depth, [-b for b in _sha1(e.event_id)]))
            if not events:
                continue
            resolved[key] = events[0].event_id
            for event in events[1:]:
                if not _is_allowed(room_version, event, resolved, event_map):
                    break
                resolved[key] = event.event_id

    for key in sorted(k for k in candidates if k[0] not in (POWER_LEVELS, JOIN_RULES, MEMBER)):
        events = sorted(candidates[key], key=lambda e: (-e.depth, _sha1(e.event_id)))
        if not events:
            continue
        chosen = next((e for e in events if _is_allowed(room_version, e, resolved, event_map)), events[-1])
        resolved[key] = chosen.event_id
    return resolved
