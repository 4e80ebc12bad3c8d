"""Event filters (the spec's RoomEventFilter), parsed once and matched per event.

`types`/`not_types` accept `*` wildcards; a `not_` list always wins over its positive
counterpart. A malformed filter is M_BAD_JSON (wrong JSON types) or M_INVALID_PARAM.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ranvier.errors import MatrixError
from ranvier.events.model import Event

MAX_LIMIT = 1000


def _string_list(data: dict[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MatrixError("M_BAD_JSON", f"Filter field {name} must be a list of strings")
    return value


def _bool(data: dict[str, Any], name: str, default: bool | None) -> bool | None:
    value = data.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise MatrixError("M_BAD_JSON", f"Filter field {name} must be true or false")
    return value


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
        senders = _string_list(data, "senders")
        rooms = _string_list(data, "rooms")
        return cls(
            limit=min(limit, MAX_LIMIT) if limit is not None else None,
            types=tuple(types) if types is not None else None,
            not_types=tuple(_string_list(data, "not_types") or ()),
            senders=tuple(senders) if senders is not None else None,
            not_senders=tuple(_string_list(data, "not_senders") or ()),
            rooms=tuple(rooms) if rooms is not None else None,
            not_rooms=tuple(_string_list(data, "not_rooms") or ()),
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
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def allows(self, event: Event) -> bool:
        if self.is_everything:
            return True
        if self.not_types and _patterns(self.not_types).fullmatch(event.type):
            return False
        if self.types is not None and not _patterns(self.types).fullmatch(event.type):
            return False
        if event.sender in self.not_senders:
            return False
        if self.senders is not None and event.sender not in self.senders:
            return False
        if self.contains_url is not None:
            has_url = isinstance(event.content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True
