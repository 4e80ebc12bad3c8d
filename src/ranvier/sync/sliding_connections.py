"""Sliding sync connections: what each connection's client already holds, by position.

A connection is (user, device, conn_id). Each response issues a `pos` naming the state
after it, and a request continues from the state its `pos` names. A client may retry or
replace a request (with the same `pos`), so the states issued after the one a request
names are kept until the client uses a newer one: a repeated `pos` starts from the same
state and is answered the same way. Once a `pos` is used, the states before it are
dropped. States are never changed: a new one shares the unchanged room entries of the
one it came from.

Everything lives in memory. After a restart, or once a connection has been evicted
(idle too long, or too many), its `pos` is unknown: 400 M_UNKNOWN_POS, and the client
starts the connection again, as the proposal allows.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

from ranvier.errors import MatrixError
from ranvier.rooms.store import StateKey
from ranvier.sync.sliding_request import RoomConfig
from ranvier.notify.tokens import SyncToken, encode_pos, parse_pos

#: Connections kept in all; the least recently used go first.
MAX_CONNECTIONS = 5_000
#: Connections per device (clients use one or two).
MAX_PER_DEVICE = 10
#: A connection unused for this long is dropped.
IDLE_SECONDS = 30 * 60
#: States kept per connection: the one the last request named and those issued since.
KEPT_STATES = 4


@dataclass(frozen=True, slots=True)
class RoomSent:
    """What the client of a connection holds of one room."""

    membership: str
    membership_stream: int
    #: Everything up to this stream position is reflected in what was sent.
    stream: int
    #: The client has every event of the room from this stream position on (0: all).
    covered_from: int
    #: The combined room config the room was last looked at with.
    config: RoomConfig | None
    #: The room's required state the client holds: (type, state_key) -> event ID.
    state: Mapping[StateKey, str]
    #: The last values sent of name, avatar, heroes, is_dm, bump_stamp, counts.
    fields: Mapping[str, Any]
    #: Only stripped state was sent (an invite, a knock, a declined invite).
    stripped: bool = False


@dataclass(frozen=True)
class ConnectionState:
    """Everything one response left the client with."""

    #: The stream positions the response was computed at; None before the first one.
    token: SyncToken | None = None
    rooms: Mapping[str, RoomSent] = field(default_factory=dict)
    list_counts: Mapping[str, int] = field(default_factory=dict)
    #: Extension name -> the rooms whose data for it was current as of `token`.
    extension_rooms: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Extensions whose data that concerns no room (global account data) was sent.
    extensions_started: frozenset[str] = frozenset()


@dataclass
class Connection:
    key: tuple[str, str, str]
    nonce: str
    states: dict[int, ConnectionState]
    used_at: float
    next_seq: int = 1


def unknown_pos() -> MatrixError:
    return MatrixError("M_UNKNOWN_POS", "Unknown or expired pos: start the connection again without one")


class Connections:
    def __init__(self, *, max_connections: int = MAX_CONNECTIONS, per_device: int = MAX_PER_DEVICE,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.max_connections = max_connections
        self.per_device = per_device
        self.idle_seconds = idle_seconds
        self._connections: OrderedDict[tuple[str, str, str], Connection] = OrderedDict()

    def begin(self, user_id: str, device_id: str, conn_id: str, pos: str | None) -> tuple[Connection, ConnectionState]:
        """The connection and the state a request continues from: a new connection (replacing
        one of the same conn_id) without `pos`, else the state `pos` names; M_UNKNOWN_POS if
        the connection or that state is gone, or `pos` was issued to another device."""
        key = (user_id, device_id, conn_id)
        if pos is None:
            return self._start(key), ConnectionState()
        parsed = parse_pos(pos)
        if parsed is None:
            raise unknown_pos()
        _, seq, nonce = parsed
        connection = self._connections.get(key)
        if connection is None or connection.nonce != nonce or seq not in connection.states:
            raise unknown_pos()
        for older in [s for s in connection.states if s < seq]:
            del connection.states[older]
        connection.used_at = time.monotonic()
        self._connections.move_to_end(key)
        return connection, connection.states[seq]

    def issue(self, connection: Connection, state: ConnectionState) -> str:
        """Record the state a response leaves the client with; returns its `pos`."""
        seq = connection.next_seq
        connection.next_seq += 1
        connection.states[seq] = state
        if len(connection.states) > KEPT_STATES:
            # Keep the state the client last named (the oldest) and the newest ones.
            del connection.states[sorted(connection.states)[1]]
        return encode_pos(state.token.events if state.token else 0, seq, connection.nonce)

    def _start(self, key: tuple[str, str, str]) -> Connection:
        self._connections.pop(key, None)
        self._expire()
        same_device = [k for k in self._connections if k[:2] == key[:2]]
        for old in same_device[:max(0, len(same_device) - self.per_device + 1)]:
            del self._connections[old]
        while len(self._connections) >= self.max_connections:
            self._connections.popitem(last=False)
        connection = Connection(key, secrets.token_hex(8), {}, time.monotonic())
        self._connections[key] = connection
        return connection

    def _expire(self) -> None:
        """Drop connections idle for too long (the least recently used come first)."""
        cutoff = time.monotonic() - self.idle_seconds
        while self._connections:
            oldest = next(iter(self._connections.values()))
            if oldest.used_at >= cutoff:
                break
            self._connections.popitem(last=False)

    def __len__(self) -> int:
        return len(self._connections)
