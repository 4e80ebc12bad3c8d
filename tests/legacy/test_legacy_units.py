"""The draft API's pure parts: identifiers, index pagination, event forms and errors."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.legacy_api.forms import has_draft_form, member, room_event
from ranvier.legacy_api.ids import alias_from_draft, new_room_alias, user_from_draft, user_to_draft
from ranvier.legacy_api.pagination import END, START, PageRequest, index_page
from ranvier.legacy_api.routing import draft_error


@pytest.mark.parametrize("draft,today", [
    ("bob@sy.org", "@bob:sy.org"),
    ("@bob:sy.org", "@bob:sy.org"),
    ("bob", "@bob:sy.org"),
    ("bob@sy.org:8448", "@bob:sy.org:8448"),
    ("o.ld+user@host.example", "@o.ld+user:host.example"),
])
def test_user_ids_either_way(draft, today):
    assert user_from_draft(draft, "sy.org") == today
    assert user_from_draft(user_to_draft(today), "sy.org") == today


@pytest.mark.parametrize("bad", ["", "@", "bob@", "bob@not a host", "nul\x00@sy.org", "@bob", 5, None])
def test_bad_user_ids(bad):
    with pytest.raises(MatrixError) as caught:
        user_from_draft(bad, "sy.org")
    assert caught.value.errcode == "M_BAD_JSON"


def test_room_names_either_way():
    assert alias_from_draft("room_beta@sy.org", "sy.org") == "#room_beta:sy.org"
    assert alias_from_draft("room_beta", "sy.org") == "#room_beta:sy.org"
    assert alias_from_draft("#room_beta:other.org", "sy.org") == "#room_beta:other.org"
    for bad in ("@sy.org", "two words@sy.org", "a#b@sy.org", "x@bad host"):
        with pytest.raises(MatrixError):
            alias_from_draft(bad, "sy.org")
    for bad in ("!abc:sy.org", "room@other.org"):
        with pytest.raises(MatrixError) as caught:
            new_room_alias(bad, "sy.org")
        assert caught.value.errcode == "M_BAD_JSON"


ROOMS = [f"R{number}" for number in range(1, 18)]


@pytest.mark.parametrize("from_token,to_token,limit,chunk,tokens", [
    ("9", END, 5, ["R11", "R12", "R13", "R14", "R15"], {"start": "10", "end": "14"}),
    (START, END, 5, ["R1", "R2", "R3", "R4", "R5"], {"start": "0", "end": "4"}),
    (END, START, 2, ["R17", "R16"], {"start": "15", "end": "16"}),
    ("10", START, 3, ["R10", "R9", "R8"], {"start": "7", "end": "9"}),
    ("3", "7", 100, ["R5", "R6", "R7"], {"start": "4", "end": "6"}),
    ("7", "3", 100, ["R7", "R6", "R5"], {"start": "4", "end": "6"}),
    ("16", END, 5, [], {"start": "16", "end": "16"}),
    (START, START, 5, [], {"start": START, "end": START}),
    ("99", END, 5, [], {"start": "99", "end": "99"}),
    (START, END, 1000, ROOMS, {}),
])
def test_index_pages(from_token, to_token, limit, chunk, tokens):
    assert index_page(ROOMS, PageRequest(from_token, to_token, limit)) == (chunk, tokens)


@pytest.mark.parametrize("token", ["-1", "x", "1.5", "1e3", "٣"])
def test_index_page_tokens_are_indexes(token):
    with pytest.raises(MatrixError) as caught:
        index_page(ROOMS, PageRequest(token, END, 5))
    assert caught.value.errcode == "M_BAD_PAGINATION"


def _event(event_type, content, **extra):
    pdu = {"type": event_type, "content": content, "sender": "@alice:sy.org", "room_id": "!r:sy.org",
           "origin_server_ts": 1234, **extra}
    return Event(pdu, ROOM_VERSIONS["11"], "$e")


def test_event_forms():
    assert room_event(_event("m.room.message", {"msgtype": "m.text", "body": "hi"}), "beta@sy.org", None) == {
        "event_id": "$e", "type": "m.room.message", "room_id": "beta@sy.org", "msg_id": "$e", "from": "alice@sy.org",
        "hs_ts": 1234, "hsob_ts": 1234, "hsib_ts": 1234, "content": {"msgtype": "m.text", "body": "hi"}}
    assert room_event(_event("m.room.topic", {"topic": "t"}, state_key=""), "beta@sy.org", None) == {
        "event_id": "$e", "type": "m.room.topic", "room_id": "beta@sy.org", "from": "alice@sy.org",
        "content": {"topic": "t"}}
    assert member(_event("m.room.member", {"membership": "ban"}, state_key="@bob:sy.org"), "beta@sy.org") == {
        "event_id": "$e", "type": "m.room.member", "room_id": "beta@sy.org", "user_id": "bob@sy.org",
        "from": "alice@sy.org", "content": {"membership": "leave"}}
    shown = [
        (_event("m.room.message", {"msgtype": "m.notice", "body": "n"}), True),
        (_event("m.room.message", {"body": "no msgtype"}), False),
        (_event("m.reaction", {}), True),
        (_event("m.room.member", {"membership": "knock"}, state_key="@bob:sy.org"), False),
        (_event("m.room.name", {"name": "n"}, state_key=""), False),
        (_event("org.example.state", {}, state_key="k"), False),
        (_event("m.room.redaction", {"redacts": "$x"}), False),
        (_event("m.presence", {}), False),
        (_event("m.room.message.feedback", {}), False),
    ]
    assert [has_draft_form(event, False) for event, _ in shown] == [expected for _, expected in shown]
    assert not has_draft_form(_event("m.room.message", {"msgtype": "m.text", "body": "x"}), True)


@pytest.mark.parametrize("today,draft,status", [
    ("M_UNKNOWN_TOKEN", "M_FORBIDDEN", 403), ("M_MISSING_TOKEN", "M_FORBIDDEN", 403),
    ("M_MISSING_PARAM", "M_BAD_JSON", 400), ("M_INVALID_PARAM", "M_BAD_JSON", 400),
    ("M_UNRECOGNIZED", "M_NOT_FOUND", 404), ("M_ROOM_IN_USE", "M_ROOM_IN_USE", 400),
    ("M_LIMIT_EXCEEDED", "M_LIMIT_EXCEEDED", 429),
])
def test_errors_in_the_drafts_codes(today, draft, status):
    error = draft_error(MatrixError(today, "why"))
    assert (error.errcode, error.status, error.message) == (draft, status, "why")


def test_page_direction():
    assert not PageRequest(START, END, 1).backwards(lambda: True)
    assert PageRequest(END, START, 1).backwards(lambda: False)
    assert PageRequest(END, "5", 1).backwards(lambda: False)
    assert not PageRequest(START, "5", 1).backwards(lambda: True)
    assert PageRequest("9", "5", 1).backwards(lambda: True)
    assert not PageRequest("5", END, 1).backwards(lambda: True)
