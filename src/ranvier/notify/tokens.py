"""The tokens that name positions in the streams: a /sync token (`s<p1>_<p2>_...`, the
position of every stream /sync reports) and a sliding sync `pos`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ranvier.errors import MatrixError

STREAMS = ("events", "account_data", "receipts", "typing", "presence", "to_device", "device_lists")
#: Tokens parsed lately: the long-pollers of a room all come back with the same few.
_PARSED_KEPT = 1_024
_parsed: dict[str, "SyncToken"] = {}


@dataclass(frozen=True)
class SyncToken:
    """The position of every stream /sync reports; serialised as `s<p1>_<p2>_...`."""

    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    to_device: int = 0
    device_lists: int = 0

    def encode(self) -> str:
        return self._encoded

    @cached_property
    def _encoded(self) -> str:  # every answer woken at one position carries the same token
        return "s" + "_".join(str(getattr(self, name)) for name in STREAMS)

    @classmethod
    def parse(cls, token: str) -> "SyncToken":
        parsed = _parsed.get(token)
        if parsed is not None:
            return parsed
        parts = token[1:].split("_") if token.startswith("s") else []
        if not parts or len(parts) > len(STREAMS) or not token.isascii() or not all(p.isdigit() for p in parts):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        parsed = cls(**{name: int(value) for name, value in zip(STREAMS, parts)})
        if len(_parsed) >= _PARSED_KEPT:
            _parsed.clear()
        _parsed[token] = parsed
        return parsed


def encode_pos(events: int, seq: int, nonce: str) -> str:
    """A sliding sync `pos`: `<events position>_<sequence>_<connection nonce>`. The events
    position lets /messages and /relations take a `pos` as they take a /sync `next_batch`."""
    return f"{events}_{seq}_{nonce}"


def parse_pos(pos: str) -> tuple[int, int, str] | None:
    """(events position, sequence, nonce) of a sliding sync `pos`, or None."""
    parts = pos.split("_")
    if len(parts) != 3 or not pos.isascii() or not parts[0].isdigit() or not parts[1].isdigit() \
            or not parts[2].isalnum():
        return None
    return int(parts[0]), int(parts[1]), parts[2]
