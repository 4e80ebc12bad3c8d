"""Sync tokens: the position of every stream /sync reports, `s<p1>_<p2>_...`."""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.errors import MatrixError

STREAMS = ("events", "account_data", "receipts", "typing", "presence", "to_device", "device_lists")


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
        return "s" + "_".join(str(getattr(self, name)) for name in STREAMS)

    @classmethod
    def parse(cls, token: str) -> "SyncToken":
        parts = token[1:].split("_") if token.startswith("s") else []
        if not parts or len(parts) > len(STREAMS) or not token.isascii() or not all(p.isdigit() for p in parts):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        return cls(**{name: int(value) for name, value in zip(STREAMS, parts)})
