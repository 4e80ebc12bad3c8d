"""The request of simplified sliding sync (MSC4186), parsed once into typed settings.

Two dialects reach the endpoint and become the same settings:

- the proposal's: `pos`, `timeout` and `set_presence` in the body, one `range` per list,
  `required_state` as `{include, exclude, lazy_members}`, the filter `is_invited`;
- the one deployed clients speak (Element X, Synapse): `pos`, `timeout` and `set_presence`
  as query parameters, `ranges` (a list of ranges), `required_state` as `[type, state_key]`
  pairs where `*` is a wildcard, `["m.room.member", "$LAZY"]` asks for lazy members and
  `$ME` is the user's own ID, the filter `is_invite`.

A field of the wrong JSON type is M_BAD_JSON, a value out of bounds M_INVALID_PARAM.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_room_id
from ranvier.events.model import MEMBER
from ranvier.sync.filters import MAX_LIMIT

MAX_LISTS = 100
MAX_SUBSCRIPTIONS = 100
MAX_RANGES = 100
MAX_CONN_ID_LENGTH = 255
PRESENCE_STATES = ("online", "offline", "unavailable")
#: The proposal's "opaque identifier" grammar, for list names.
_OPAQUE_ID = re.compile(r"[0-9A-Za-z._~-]{1,255}")
#: The state key that stands for the requesting user.
ME = "$ME"
LAZY = "$LAZY"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class StateRule:
    """One `{type, state_key}` element: None matches anything; `$ME` is the user's ID."""

    type: str | None
    state_key: str | None

    def matches(self, event_type: str, state_key: str, user_id: str) -> bool:
        if self.type is not None and self.type != event_type:
            return False
        if self.state_key is None:
            return True
        return state_key == (user_id if self.state_key == ME else self.state_key)

    @property
    def names_one_key(self) -> bool:
        return self.type is not None and self.state_key is not None


@dataclass(frozen=True, slots=True)
class RequiredState:
    """Which state a room config returns. With `lazy_members`, member events come only from
    rules naming their state key, plus those of the users the timeline needs; `exclude`
    never removes the latter."""

    include: tuple[StateRule, ...] = ()
    exclude: tuple[StateRule, ...] = ()
    lazy_members: bool = False

    def matches(self, event_type: str, state_key: str, user_id: str) -> bool:
        lazy_member = self.lazy_members and event_type == MEMBER
        if not any(rule.matches(event_type, state_key, user_id) and (not lazy_member or rule.state_key is not None)
                   for rule in self.include):
            return False
        return not any(rule.matches(event_type, state_key, user_id) for rule in self.exclude)

    @property
    def exact_keys(self) -> bool:
        """True when every included rule names one (type, state_key): matching state is
        then found by lookups instead of a scan of the room's state."""
        return all(rule.names_one_key for rule in self.include)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What to return for a room: the combination of every list and subscription it matches."""

    timeline_limit: int
    required_state: frozenset[RequiredState]

    @classmethod
    def combine(cls, configs: list["RoomConfig"]) -> "RoomConfig":
        """The superset: the largest timeline limit, state matched by any of them."""
        if len(configs) == 1:
            return configs[0]
        return interned(cls(max(c.timeline_limit for c in configs),
                            frozenset().union(*(c.required_state for c in configs))))

    def same_as(self, other: "RoomConfig | None") -> bool:
        return self is other or self == other

    def matches(self, event_type: str, state_key: str, user_id: str) -> bool:
        return any(rs.matches(event_type, state_key, user_id) for rs in self.required_state)

    @property
    def lazy_members(self) -> bool:
        return any(rs.lazy_members for rs in self.required_state)

    @property
    def exact_keys(self) -> bool:
        return all(rs.exact_keys for rs in self.required_state)

    def exact_rules(self) -> list[StateRule]:
        return [rule for rs in self.required_state for rule in rs.include]


_INTERNED: OrderedDict[RoomConfig, RoomConfig] = OrderedDict()
_INTERNED_MAX = 1024


def interned(config: RoomConfig) -> RoomConfig:
    """One object for equal configs: clients send the same configs with every request, and
    comparing a room's config with the one it was sent with is then mostly an identity test."""
    found = _INTERNED.get(config)
    if found is None:
        found = _INTERNED[config] = config
        if len(_INTERNED) > _INTERNED_MAX:
            _INTERNED.popitem(last=False)
    else:
        _INTERNED.move_to_end(config)
    return found


@dataclass(frozen=True, slots=True)
class RoomFilter:
    """A list's filters; None (or empty for the `not_` lists) means no condition."""

    is_dm: bool | None = None
    spaces: tuple[str, ...] | None = None
    is_encrypted: bool | None = None
    is_invited: bool | None = None
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()

    @property
    def needs_room_facts(self) -> bool:
        """Whether the room's type or encryption must be known."""
        return self.is_encrypted is not None or self.room_types is not None or bool(self.not_room_types)


@dataclass(frozen=True, slots=True)
class ListConfig:
    #: Inclusive index ranges into the filtered, ordered rooms; None means all of them.
    ranges: tuple[tuple[int, int], ...] | None
    room: RoomConfig
    filters: RoomFilter

    def in_range(self, index: int) -> bool:
        return self.ranges is None or any(low <= index <= high for low, high in self.ranges)

    @property
    def window_end(self) -> int | None:
        """One past the highest index any range reaches (None: unbounded)."""
        return None if self.ranges is None else max(high for _, high in self.ranges) + 1


@dataclass(frozen=True, slots=True)
class ExtensionConfig:
    """An extension's settings. `lists`/`rooms` None means every list / subscription (`*`)."""

    lists: tuple[str, ...] | None = None
    rooms: tuple[str, ...] | None = None
    since: str | None = None
    limit: int | None = None


@dataclass
class SlidingRequest:
    conn_id: str = ""
    pos: str | None = None
    timeout_ms: int = 0
    set_presence: str | None = None
    lists: dict[str, ListConfig] = field(default_factory=dict)
    subscriptions: dict[str, RoomConfig] = field(default_factory=dict)
    #: Enabled extensions only.
    extensions: dict[str, ExtensionConfig] = field(default_factory=dict)


# -- parsing ---------------------------------------------------------------------------------


def _typed(data: Mapping[str, Any], name: str, kind: type, where: str, *, required: bool = False) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise MatrixError("M_MISSING_PARAM", f"{where}{name} is required")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MatrixError("M_BAD_JSON", f"{where}{name} has the wrong type")
    return value


def _strings(data: Mapping[str, Any], name: str, where: str, *, nullable: bool = False) -> tuple | None:
    value = _typed(data, name, list, where)
    if value is None:
        return None
    if not all(isinstance(item, str) or (nullable and item is None) for item in value):
        raise MatrixError("M_BAD_JSON", f"{where}{name} must be a list of strings")
    return tuple(value)


def _non_negative(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MatrixError("M_BAD_JSON", f"{where} must be an integer")
    if value < 0:
        raise MatrixError("M_INVALID_PARAM", f"{where} must not be negative")
    return value


def _range(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise MatrixError("M_BAD_JSON", f"{where} must be a pair of integers")
    low, high = (_non_negative(v, where) for v in value)
    if low > high:
        raise MatrixError("M_INVALID_PARAM", f"{where} starts after it ends")
    return low, high


def _rule(element: Any, where: str) -> StateRule:
    if not isinstance(element, dict):
        raise MatrixError("M_BAD_JSON", f"{where} elements must be objects")
    return StateRule(_typed(element, "type", str, where + "."), _typed(element, "state_key", str, where + "."))


def parse_required_state(value: Any, where: str) -> RequiredState:
    """Either dialect; absent is nothing at all."""
    if value is None:
        return RequiredState()
    if isinstance(value, dict):
        include = _typed(value, "include", list, where + ".") or []
        exclude = _typed(value, "exclude", list, where + ".") or []
        return RequiredState(tuple(_rule(e, where + ".include") for e in include),
                             tuple(_rule(e, where + ".exclude") for e in exclude),
                             bool(_typed(value, "lazy_members", bool, where + ".")))
    if not isinstance(value, list):
        raise MatrixError("M_BAD_JSON", f"{where} must be an object or a list of [type, state_key] pairs")
    rules: list[StateRule] = []
    lazy = False
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise MatrixError("M_BAD_JSON", f"{where} entries must be [type, state_key] pairs of strings")
        event_type, state_key = pair
        if state_key == LAZY:
            lazy = lazy or event_type == MEMBER
            continue
        rules.append(StateRule(None if event_type == WILDCARD else event_type,
                               None if state_key == WILDCARD else state_key))
    # A wildcard that returns every member makes lazy loading moot (the pairs dialect's rule).
    all_members = any(rule.type in (None, MEMBER) and rule.state_key is None for rule in rules)
    return RequiredState(tuple(rules), (), lazy and not all_members)


def _room_config(data: Any, where: str) -> RoomConfig:
    if not isinstance(data, dict):
        raise MatrixError("M_BAD_JSON", f"{where} must be an object")
    limit = _non_negative(_typed(data, "timeline_limit", int, where + ".", required=True), f"{where}.timeline_limit")
    required_state = parse_required_state(data.get("required_state"), f"{where}.required_state")
    return interned(RoomConfig(min(limit, MAX_LIMIT), frozenset([required_state])))


def _filters(data: Any, where: str) -> RoomFilter:
    if data is None:
        return RoomFilter()
    if not isinstance(data, dict):
        raise MatrixError("M_BAD_JSON", f"{where} must be an object")
    where += "."
    is_invited = _typed(data, "is_invited", bool, where)
    if is_invited is None:
        is_invited = _typed(data, "is_invite", bool, where)
    return RoomFilter(
        is_dm=_typed(data, "is_dm", bool, where),
        spaces=_strings(data, "spaces", where),
        is_encrypted=_typed(data, "is_encrypted", bool, where),
        is_invited=is_invited,
        room_types=_strings(data, "room_types", where, nullable=True),
        not_room_types=_strings(data, "not_room_types", where, nullable=True) or (),
        tags=_strings(data, "tags", where),
        not_tags=_strings(data, "not_tags", where) or (),
    )


def _list_config(data: Any, where: str) -> ListConfig:
    room = _room_config(data, where)
    ranges: tuple[tuple[int, int], ...] | None = None
    if data.get("range") is not None:
        ranges = (_range(data["range"], f"{where}.range"),)
    elif data.get("ranges") is not None:
        if not isinstance(data["ranges"], list):
            raise MatrixError("M_BAD_JSON", f"{where}.ranges must be a list of ranges")
        if len(data["ranges"]) > MAX_RANGES:
            raise MatrixError("M_INVALID_PARAM", f"{where}.ranges has more than {MAX_RANGES} ranges")
        ranges = tuple(_range(r, f"{where}.ranges") for r in data["ranges"])
    return ListConfig(ranges, room, _filters(data.get("filters"), f"{where}.filters"))


def _extensions(data: Any) -> dict[str, ExtensionConfig]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MatrixError("M_BAD_JSON", "extensions must be an object")
    enabled: dict[str, ExtensionConfig] = {}
    for name, config in data.items():
        where = f"extensions.{name}."
        if not isinstance(config, dict):
            raise MatrixError("M_BAD_JSON", f"extensions.{name} must be an object")
        if not _typed(config, "enabled", bool, where):
            continue
        limit = config.get("limit")
        since = _typed(config, "since", str, where)
        if name == "to_device" and since is not None and not (since.isascii() and since.isdigit()):
            raise MatrixError("M_INVALID_PARAM", "extensions.to_device.since is not a next_batch of this server")
        enabled[name] = ExtensionConfig(
            lists=_strings(config, "lists", where),
            rooms=_strings(config, "rooms", where),
            since=since,
            limit=None if limit is None else _non_negative(limit, where + "limit"),
        )
    return enabled


def _query_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return _non_negative(int(value), name)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", f"Query parameter {name} must be an integer") from None


def parse_request(body: dict[str, Any], query: Mapping[str, str]) -> SlidingRequest:
    """The request body (and the query parameters of the deployed dialect) as settings."""
    conn_id = _typed(body, "conn_id", str, "") or ""
    if len(conn_id) > MAX_CONN_ID_LENGTH:
        raise MatrixError("M_INVALID_PARAM", f"conn_id is longer than {MAX_CONN_ID_LENGTH} characters")
    pos = _typed(body, "pos", str, "")
    if pos is None:
        pos = query.get("pos")
    timeout = body.get("timeout")
    timeout_ms = _non_negative(timeout, "timeout") if timeout is not None else _query_int(query, "timeout") or 0
    set_presence = _typed(body, "set_presence", str, "") or query.get("set_presence")
    if set_presence is not None and set_presence not in PRESENCE_STATES:
        raise MatrixError("M_INVALID_PARAM", f"set_presence must be one of {', '.join(PRESENCE_STATES)}")

    lists = _typed(body, "lists", dict, "") or {}
    if len(lists) > MAX_LISTS:
        raise MatrixError("M_INVALID_PARAM", f"At most {MAX_LISTS} lists")
    for name in lists:
        if not _OPAQUE_ID.fullmatch(name):
            raise MatrixError("M_INVALID_PARAM", f"List name {name!r} is not an opaque identifier")
    subscriptions = _typed(body, "room_subscriptions", dict, "") or {}
    if len(subscriptions) > MAX_SUBSCRIPTIONS:
        raise MatrixError("M_INVALID_PARAM", f"At most {MAX_SUBSCRIPTIONS} room subscriptions")
    for room_id in subscriptions:
        if not is_valid_room_id(room_id):
            raise MatrixError("M_INVALID_PARAM", f"{room_id!r} is not a room ID")
    return SlidingRequest(
        conn_id=conn_id,
        pos=pos or None,
        timeout_ms=timeout_ms,
        set_presence=set_presence,
        lists={name: _list_config(config, f"lists.{name}") for name, config in lists.items()},
        subscriptions={room_id: _room_config(config, f"room_subscriptions.{room_id}")
                       for room_id, config in subscriptions.items()},
        extensions=_extensions(body.get("extensions")),
    )
