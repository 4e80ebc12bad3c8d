"""Event filters (the spec's RoomEventFilter), parsed once and matched per event.

`types`/`not_types` accept `*` wildcards; a `not_` list always wins over its positive
counterpart. A filter that breaks the spec's schema (filter.yaml: wrong JSON types,
senders that are not user IDs, rooms that are not room IDs, an unknown event_format)
is M_BAD_JSON; keys the schema does not name are ignored.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from ranvier.errors import MatrixError
from ranvier.events.canonical_json import contains_nul
from ranvier.events.identifiers import is_valid_room_id, is_valid_user_id
from ranvier.events.model import Event

MAX_LIMIT = 1000


def filter_json(raw: str) -> Any:
    """An inline filter given as JSON in a query parameter; M_INVALID_PARAM when it is not
    JSON or holds a NUL (U+0000, which no filter can match and PostgreSQL cannot hold)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError("M_INVALID_PARAM", "filter is not valid JSON") from None
    if contains_nul(data):
        raise MatrixError("M_INVALID_PARAM", "filter holds a NUL character (U+0000)")
    return data


_ITEM_CHECKS = {"user IDs": is_valid_user_id, "room IDs": is_valid_room_id}


def _string_list(data: dict[str, Any], name: str, items: str = "strings") -> list[str] | None:
    """A list of strings, or of user or room IDs (`items`); None when absent."""
    value = data.get(name)
    if value is None:
        return None
    check = _ITEM_CHECKS.get(items)
    if not isinstance(value, list) or not all(isinstance(item, str) and (check is None or check(item))
                                              for item in value):
        raise MatrixError("M_BAD_JSON", f"Filter field {name} must be a list of {items}")
    return value


def _bool(data: dict[str, Any], name: str, default: bool | None) -> bool | None:
    value = data.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise MatrixError("M_BAD_JSON", f"Filter field {name} must be true or false")
    return value


def room_allowed(rooms: tuple[str, ...] | None, not_rooms: tuple[str, ...], room_id: str) -> bool:
    """`not_rooms` wins; no `rooms` list means every room."""
    return room_id not in not_rooms and (rooms is None or room_id in rooms)


@lru_cache(maxsize=1024)
def _patterns(globs: tuple[str, ...]) -> re.Pattern:
    """One regular expression for a list of globs (`*` matches anything)."""
    return re.compile("|".join(fnmatch.translate(glob) for glob in globs) or "(?!)")


@dataclass(frozen=True)
class EventFilter:
    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    @classmethod
    def parse(cls, data: Any) -> "EventFilter":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise MatrixError("M_BAD_JSON", "An event filter must be an object")
        limit = data.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise MatrixError("M_BAD_JSON", "Filter limit must be a non-negative integer")
        types = _string_list(data, "types")
        senders = _string_list(data, "senders", "user IDs")
        rooms = _string_list(data, "rooms", "room IDs")
        return cls(
            limit=min(limit, MAX_LIMIT) if limit is not None else None,
            types=tuple(types) if types is not None else None,
            not_types=tuple(_string_list(data, "not_types") or ()),
            senders=tuple(senders) if senders is not None else None,
            not_senders=tuple(_string_list(data, "not_senders", "user IDs") or ()),
            rooms=tuple(rooms) if rooms is not None else None,
            not_rooms=tuple(_string_list(data, "not_rooms", "room IDs") or ()),
            contains_url=_bool(data, "contains_url", None),
            lazy_load_members=bool(_bool(data, "lazy_load_members", False)),
            include_redundant_members=bool(_bool(data, "include_redundant_members", False)),
            unread_thread_notifications=bool(_bool(data, "unread_thread_notifications", False)),
        )

    @property
    def is_everything(self) -> bool:
        return (self.types is None and not self.not_types and self.senders is None and not self.not_senders
                and self.contains_url is None)

    def allows_room(self, room_id: str) -> bool:
        return room_allowed(self.rooms, self.not_rooms, room_id)

    def allows_type(self, event_type: str) -> bool:
        """For events that are not room events (account data, presence, ephemeral)."""
        if self.not_types and _patterns(self.not_types).fullmatch(event_type):
            return False
        return self.types is None or bool(_patterns(self.types).fullmatch(event_type))

    @property
    def allows_no_type(self) -> bool:
        """Whether it leaves out every event type (`not_types` holds `*`, or `types` is empty)."""
        return "*" in self.not_types or self.types == ()

    def allows_sender(self, sender: str) -> bool:
        return sender not in self.not_senders and (self.senders is None or sender in self.senders)

    def allows(self, event: Event) -> bool:
        if self.is_everything:
            return True
        if not self.allows_type(event.type) or not self.allows_sender(event.sender):
            return False
        if self.contains_url is not None:
            has_url = isinstance(event.content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True


@dataclass(frozen=True)
class RoomFilter:
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    timeline: EventFilter = EventFilter()
    state: EventFilter = EventFilter()
    ephemeral: EventFilter = EventFilter()
    account_data: EventFilter = EventFilter()

    def allows_room(self, room_id: str) -> bool:
        return room_allowed(self.rooms, self.not_rooms, room_id)


@dataclass(frozen=True)
class SyncFilter:
    """The spec's Filter: what /sync (and /initialSync) return."""

    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    presence: EventFilter = EventFilter()
    account_data: EventFilter = EventFilter()
    room: RoomFilter = RoomFilter()

    @classmethod
    def parse(cls, data: Any) -> "SyncFilter":
        if not isinstance(data, dict):
            raise MatrixError("M_BAD_JSON", "A filter must be an object")
        event_format = data.get("event_format", "client")
        if event_format not in ("client", "federation"):
            raise MatrixError("M_BAD_JSON", "event_format must be client or federation")
        event_fields = _string_list(data, "event_fields")
        room = data.get("room", {})
        if not isinstance(room, dict):
            raise MatrixError("M_BAD_JSON", "Filter field room must be an object")
        rooms = _string_list(room, "rooms", "room IDs")
        return cls(
            event_fields=tuple(event_fields) if event_fields is not None else None,
            event_format=event_format,
            presence=EventFilter.parse(data.get("presence")),
            account_data=EventFilter.parse(data.get("account_data")),
            room=RoomFilter(
                rooms=tuple(rooms) if rooms is not None else None,
                not_rooms=tuple(_string_list(room, "not_rooms", "room IDs") or ()),
                include_leave=bool(_bool(room, "include_leave", False)),
                timeline=EventFilter.parse(room.get("timeline")),
                state=EventFilter.parse(room.get("state")),
                ephemeral=EventFilter.parse(room.get("ephemeral")),
                account_data=EventFilter.parse(room.get("account_data")),
            ),
        )
