"""Sliding sync connections: positions name states, a repeated pos starts from the same
state, older ones are dropped once a newer one is used, and connections are bounded."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.sync.sliding_connections import KEPT_STATES, Connections, ConnectionState
from ranvier.notify.tokens import SyncToken, parse_pos


def state(events: int) -> ConnectionState:
    return ConnectionState(token=SyncToken(events=events))


def refused(connections: Connections, *key_and_pos) -> bool:
    with pytest.raises(MatrixError) as raised:
        connections.begin(*key_and_pos)
    return raised.value.errcode == "M_UNKNOWN_POS" and raised.value.status == 400


def test_a_pos_names_the_state_it_was_issued_with():
    connections = Connections()
    connection, base = connections.begin("@a:b", "D", "main", None)
    assert base == ConnectionState()
    pos = connections.issue(connection, state(7))
    assert parse_pos(pos)[0] == 7, "the events position is readable by /messages"
    again, named = connections.begin("@a:b", "D", "main", pos)
    assert again is connection and named == state(7)


def test_a_repeated_pos_starts_from_the_same_state_until_a_newer_one_is_used():
    connections = Connections()
    connection, _ = connections.begin("@a:b", "D", "", None)
    first = connections.issue(connection, state(1))
    _, base = connections.begin("@a:b", "D", "", first)
    lost = connections.issue(connection, state(2))
    _, retried = connections.begin("@a:b", "D", "", first)
    assert retried == base == state(1)
    kept = connections.issue(connection, state(3))
    assert connections.begin("@a:b", "D", "", kept)[1] == state(3)
    assert refused(connections, "@a:b", "D", "", first)
    assert refused(connections, "@a:b", "D", "", lost), "issued before the one the client went on from"
    assert connections.begin("@a:b", "D", "", kept)[1] == state(3)
    assert refused(connections, "@a:b", "D", "", "nonsense")


def test_many_retries_keep_the_state_the_client_names():
    connections = Connections()
    connection, _ = connections.begin("@a:b", "D", "", None)
    named = connections.issue(connection, state(1))
    connections.begin("@a:b", "D", "", named)
    issued = [connections.issue(connection, state(10 + i)) for i in range(KEPT_STATES + 3)]
    assert connections.begin("@a:b", "D", "", named)[1] == state(1)
    assert connections.begin("@a:b", "D", "", issued[-1])[1] == state(10 + KEPT_STATES + 2)
    assert refused(connections, "@a:b", "D", "", issued[0])


def test_positions_belong_to_their_user_device_and_conn_id():
    connections = Connections()
    connection, _ = connections.begin("@a:b", "D", "main", None)
    pos = connections.issue(connection, state(1))
    for key in (("@c:d", "D", "main"), ("@a:b", "E", "main"), ("@a:b", "D", "other")):
        assert refused(connections, *key, pos)
    # A new connection with the same conn_id replaces the old one.
    fresh, _ = connections.begin("@a:b", "D", "main", None)
    connections.issue(fresh, state(2))
    assert refused(connections, "@a:b", "D", "main", pos)


def test_connections_are_bounded_per_device_in_all_and_in_time(monkeypatch):
    connections = Connections(max_connections=5, per_device=2, idle_seconds=60)
    positions = {}
    for conn_id in ("a", "b", "c"):
        connection, _ = connections.begin("@a:b", "D", conn_id, None)
        positions[conn_id] = connections.issue(connection, state(1))
    assert refused(connections, "@a:b", "D", "a", positions["a"]), "the device's oldest went"
    assert connections.begin("@a:b", "D", "c", positions["c"])[1] == state(1)
    for device in "EFGH":
        connections.begin("@a:b", device, "", None)
    assert len(connections) == 5
    clock = [1000.0]
    monkeypatch.setattr("ranvier.sync.sliding_connections.time.monotonic", lambda: clock[0])
    connections = Connections(idle_seconds=60)
    old, _ = connections.begin("@a:b", "D", "old", None)
    old_pos = connections.issue(old, state(1))
    clock[0] += 61
    connections.begin("@a:b", "D", "new", None)
    assert refused(connections, "@a:b", "D", "old", old_pos)
