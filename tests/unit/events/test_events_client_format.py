"""The client event format and event_fields filtering."""

import pytest

from event_builders import SPEC_TEST_KEY
import orjson

from ranvier.events.client_format import (client_unsigned, encoded_sync_event, filter_event_fields, serialize_event,
                                          split_field_path)
from ranvier.events.model import build_event
from ranvier.events.room_versions import ROOM_VERSIONS


def make(version="11", **overrides):
    arguments = dict(room_id="!r:x", sender="@u:x", type="m.room.message", content={"body": "hi"},
                     prev_event_ids=[], auth_event_ids=[], depth=1, origin_server_ts=1000,
                     signing_key=SPEC_TEST_KEY, server_name="x", unsigned={"age_ts": 1000, "secret": 1})
    arguments.update(overrides)
    return build_event(ROOM_VERSIONS[version], **arguments)


def test_client_format_of_a_message():
    event = make()
    assert serialize_event(event, client_unsigned(event, now_ms=1500, transaction_id="t1")) == {
        "content": {"body": "hi"},
        "event_id": event.event_id,
        "origin_server_ts": 1000,
        "room_id": "!r:x",
        "sender": "@u:x",
        "type": "m.room.message",
        "unsigned": {"age": 500, "transaction_id": "t1"},
    }


def test_state_event_extras():
    event = make(type="m.room.topic", content={"topic": "new"}, state_key="")
    redaction = make(type="m.room.redaction", content={}, redacts=event.event_id)
    out = serialize_event(event, client_unsigned(event, now_ms=1000, prev_content={"topic": "old"},
                                                 replaces_state="$old", membership="join",
                                                 redacted_because=redaction, relations={"m.thread": {"count": 1}}))
    assert out["state_key"] == ""
    assert out["unsigned"]["prev_content"] == {"topic": "old"}
    assert out["unsigned"]["replaces_state"] == "$old"
    assert out["unsigned"]["membership"] == "join"
    assert out["unsigned"]["m.relations"] == {"m.thread": {"count": 1}}
    assert out["unsigned"]["redacted_because"]["event_id"] == redaction.event_id
    assert out["unsigned"]["redacted_because"]["redacts"] == event.event_id


@pytest.mark.parametrize("version", ["10", "11"])
def test_redacts_in_both_places(version):
    event = make(version, type="m.room.redaction", content={"reason": "r"}, redacts="$target")
    out = serialize_event(event, client_unsigned(event, now_ms=1000))
    assert out["redacts"] == "$target"
    assert out["content"] == {"reason": "r", "redacts": "$target"}


def test_federation_format_is_the_pdu():
    event = make()
    out = serialize_event(event, client_unsigned(event, now_ms=1200), as_client=False)
    assert out["hashes"] == event.pdu["hashes"] and out["signatures"] == event.pdu["signatures"]
    assert out["unsigned"]["age"] == 200


@pytest.mark.parametrize("overrides", [
    {},
    {"type": "m.room.topic", "content": {"topic": "new"}, "state_key": ""},
    {"type": "m.room.redaction", "content": {"reason": "r"}, "redacts": "$target"},
    {"content": {"body": "é \u2028 \"quoted\"", "n": 2**53 - 1, "f": 1.5, "nested": {"list": [1, None, True]}}},
])
def test_sync_form_is_the_client_format_without_room_id(overrides):
    """/sync's encoded form parses back to the ClientEvent without `room_id`, whatever
    the unsigned, and encoding it twice (the cached fields) gives the same."""
    event = make(**overrides)
    redaction = make(type="m.room.redaction", content={}, redacts=event.event_id)
    for unsigned in (client_unsigned(event, now_ms=1500),
                     client_unsigned(event, now_ms=2000, transaction_id="t1", prev_content={"topic": "old"},
                                     redacted_because=redaction, relations={"m.thread": {"count": 1}})):
        expected = serialize_event(event, unsigned)
        del expected["room_id"]
        assert serialize_event(event, unsigned, with_room_id=False) == expected
        for _ in range(2):
            assert orjson.loads(orjson.dumps({"events": [encoded_sync_event(event, unsigned)]})) == {"events": [expected]}


@pytest.mark.parametrize(
    "path, parts",
    [
        ("content.body", ["content", "body"]),
        ("content.m\\.relates_to", ["content", "m.relates_to"]),
        ("content.m\\\\foo", ["content", "m\\foo"]),
        ("content.a\\xb", ["content", "a\\xb"]),
        ("type", ["type"]),
    ],
)
def test_split_field_path(path, parts):
    assert split_field_path(path) == parts


def test_filter_event_fields():
    event = {"type": "m.room.message", "content": {"body": "b", "m.relates_to": {"rel_type": "x"}, "other": 1},
             "sender": "@u:x"}
    assert filter_event_fields(event, ["type", "content.body", "content.m\\.relates_to", "missing.path",
                                       "sender.deeper"]) == {
        "type": "m.room.message",
        "content": {"body": "b", "m.relates_to": {"rel_type": "x"}},
    }
    event = make()
    assert serialize_event(event, client_unsigned(event, now_ms=1000), event_fields=["content.body"]) == {
        "content": {"body": "hi"}}
