"""The pure rules of relations: reading m.relates_to and the validity of an edit."""

from __future__ import annotations

import pytest

from ranvier.events.model import Event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.rooms.relations import is_valid_replacement, relation_of

V11 = ROOM_VERSIONS["11"]


def event(event_id: str, content: dict, *, sender="@alice:a", type="m.room.message", room="!r:a",
          state_key: str | None = None) -> Event:
    pdu = {"type": type, "sender": sender, "room_id": room, "content": content, "origin_server_ts": 1, "depth": 1}
    if state_key is not None:
        pdu["state_key"] = state_key
    return Event(pdu, V11, event_id)


def replacing(target: str, **fields) -> dict:
    return {"body": "* new", "m.new_content": {"body": "new"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target}, **fields}


ORIGINAL = event("$orig", {"body": "old"})


@pytest.mark.parametrize("content, expected", [
    ({"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}, ("m.thread", "$root")),
    ({"m.relates_to": {"m.in_reply_to": {"event_id": "$x"}}}, None),  # a rich reply has no rel_type
    ({"m.relates_to": {"rel_type": "m.reference"}}, None),
    ({"m.relates_to": {"rel_type": 5, "event_id": "$x"}}, None),
    ({"m.relates_to": "nonsense"}, None),
    ({}, None),
])
def test_relation_of(content, expected):
    assert relation_of(content) == expected


def test_a_valid_edit():
    assert is_valid_replacement(ORIGINAL, event("$edit", replacing("$orig")))


def test_an_edit_may_change_msgtype_but_not_type():
    assert is_valid_replacement(ORIGINAL, event("$edit", replacing("$orig", msgtype="m.emote")))
    assert not is_valid_replacement(ORIGINAL, event("$edit", replacing("$orig"), type="m.sticker"))


@pytest.mark.parametrize("edit", [
    event("$e", replacing("$orig"), sender="@mallory:a"),
    event("$e", replacing("$orig"), room="!other:a"),
    event("$e", {"body": "* new", "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}),
    event("$e", replacing("$orig", **{"m.new_content": "text"})),
    event("$e", replacing("$orig"), state_key=""),
])
def test_invalid_edits(edit):
    assert not is_valid_replacement(ORIGINAL, edit)


def test_state_events_and_edits_cannot_be_edited():
    assert not is_valid_replacement(event("$s", {"name": "x"}, type="m.room.name", state_key=""),
                                    event("$e", replacing("$s"), type="m.room.name"))
    earlier_edit = event("$first", replacing("$orig"))
    assert not is_valid_replacement(earlier_edit, event("$second", replacing("$first")))


def test_an_encrypted_edit_carries_new_content_in_its_ciphertext():
    original = event("$orig", {"ciphertext": "a"}, type="m.room.encrypted")
    edit = event("$e", {"ciphertext": "b", "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}},
                 type="m.room.encrypted")
    assert is_valid_replacement(original, edit)
