"""The SQL that decides which indexed events a searcher may read agrees with the rules of
/messages (`rooms/visibility.py`) for every membership history and visibility."""

import sqlite3
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.rooms.visibility import is_visible
from ranvier.search.access import access_sql, room_access, visibility_bit

USER = "@reader:example.org"
SETTINGS = ("world_readable", "shared", "invited", "joined", "something_else")
MEMBERSHIPS = ("join", "leave", "invite", "ban", "knock")


@st.composite
def rooms(draw):
    """Rooms, each with the reader's membership history and messages, on one stream."""
    count = draw(st.integers(1, 7))
    positions = iter(draw(st.permutations(range(1, 200)))[:150])
    result = {}
    for index in range(count):
        history = sorted((next(positions), draw(st.sampled_from(MEMBERSHIPS)))
                         for _ in range(draw(st.integers(0, 5))))
        messages = [(next(positions), draw(st.sampled_from(SETTINGS))) for _ in range(draw(st.integers(0, 12)))]
        result[f"!r{index}:example.org"] = (history, messages)
    return result


def _message(stream, setting):
    event = SimpleNamespace(type="m.room.message", state_key=None, membership=None, content={"body": "x"})
    return SimpleNamespace(event=event, stream_ordering=stream, history_visibility=setting)


@settings(max_examples=300, deadline=None)
@given(rooms())
def test_the_sql_finds_exactly_what_messages_shows(searched):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE search_events (room_id TEXT, stream_ordering INTEGER, visibility INTEGER)")
    expected = set()
    for room_id, (history, messages) in searched.items():
        for stream, setting in messages:
            db.execute("INSERT INTO search_events VALUES (?, ?, ?)", (room_id, stream, visibility_bit(setting)))
            if history and is_visible(_message(stream, setting), USER, history):
                expected.add(stream)
    db.execute("INSERT INTO search_events VALUES ('!elsewhere:example.org', 1000, 1)")  # a room not searched
    access = [room_access(room_id, history) for room_id, (history, _) in searched.items() if history]
    condition, params = access_sql(access)
    found = {row[0] for row in db.execute(f"SELECT s.stream_ordering FROM search_events s WHERE {condition}", params)}
    assert found == expected


def test_a_room_joined_late_with_members_only_history_hides_what_came_before():
    access = room_access("!r:x", [(10, "invite"), (20, "join"), (30, "leave")])
    assert access.bounds == (10, 20, 30)
    # before the invite: nothing but world-readable and shared; invited: + invited; joined: all; left: world-readable
    assert access.masks == (1 | 2, 1 | 2 | 4, 15, 1)


def test_no_rooms_means_no_rows():
    assert access_sql([]) == ("1 = 0", [])
