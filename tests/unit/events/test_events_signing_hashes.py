"""Signing keys, JSON and event signatures (the spec's test vectors), hashes and event IDs."""

import base64
import hashlib
import re

import pytest
from unpaddedbase64 import decode_base64

from event_builders import SPEC_TEST_KEY
from ranvier.events.canonical_json import encode_canonical_json
from ranvier.events.hashes import (
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
)
from ranvier.events.model import Event, build_event, room_id_for_v12_create
from ranvier.events.redaction import redact
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.events.signing import (
    SignatureError,
    SigningKey,
    sign_event,
    sign_json,
    verify_event_signature,
    verify_signed_json,
)

V1 = ROOM_VERSIONS["1"]
PUBLIC_KEY = bytes(SPEC_TEST_KEY.verify_key)


def test_spec_json_signing_vectors():
    assert sign_json({}, "domain", SPEC_TEST_KEY) == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
            }
        }
    }
    assert sign_json({"one": 1, "two": "Two"}, "domain", SPEC_TEST_KEY) == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }


def _hash_and_sign(pdu):
    pdu = {**pdu, "hashes": {"sha256": compute_content_hash(pdu)}}
    return sign_event(pdu, V1, "domain", SPEC_TEST_KEY)


def test_spec_minimal_event_vector():
    event = {
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }
    signed = _hash_and_sign(event)
    assert signed["hashes"] == {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"}
    assert signed["signatures"] == {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
        }
    }
    assert signed["unsigned"] == {"age_ts": 1000000}
    assert check_content_hash(signed)


def test_spec_redactable_event_vector():
    event = {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }
    signed = _hash_and_sign(event)
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"]["domain"]["ed25519:1"] == (
        "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
    )
    # The signature covers the redacted form, so it still verifies once redacted...
    verify_event_signature(signed, V1, "domain", "ed25519:1", PUBLIC_KEY)
    verify_event_signature(redact(signed, V1), V1, "domain", "ed25519:1", PUBLIC_KEY)
    # ...while the content hash tells that the content was removed.
    assert not check_content_hash(redact(signed, V1))


def test_verify_signed_json_failures():
    signed = sign_json({"a": 1}, "domain", SPEC_TEST_KEY)
    verify_signed_json(signed, "domain", "ed25519:1", PUBLIC_KEY)
    verify_signed_json({**signed, "unsigned": {"x": 1}}, "domain", "ed25519:1", PUBLIC_KEY)
    with pytest.raises(SignatureError):
        verify_signed_json({**signed, "a": 2}, "domain", "ed25519:1", PUBLIC_KEY)
    with pytest.raises(SignatureError):
        verify_signed_json(signed, "other", "ed25519:1", PUBLIC_KEY)
    with pytest.raises(SignatureError):
        verify_signed_json(signed, "domain", "ed25519:2", PUBLIC_KEY)
    with pytest.raises(SignatureError):
        verify_signed_json(signed, "domain", "ed25519:1", bytes(SigningKey.generate().verify_key))
    garbled = {**signed, "signatures": {"domain": {"ed25519:1": "!!notbase64"}}}
    with pytest.raises(SignatureError):
        verify_signed_json(garbled, "domain", "ed25519:1", PUBLIC_KEY)


def test_sign_json_keeps_other_signatures_and_input():
    original = {"a": 1, "signatures": {"other": {"ed25519:x": "sig"}}}
    signed = sign_json(original, "domain", SPEC_TEST_KEY)
    assert signed["signatures"]["other"] == {"ed25519:x": "sig"}
    assert "domain" in signed["signatures"]
    assert original == {"a": 1, "signatures": {"other": {"ed25519:x": "sig"}}}


def test_signing_key_file_round_trip(tmp_path):
    path = tmp_path / "signing.key"
    key = SigningKey.generate()
    assert re.fullmatch(r"a_[A-Za-z0-9]{4}", key.version)
    assert key.key_id == f"ed25519:{key.version}"
    key.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    line = path.read_text()
    assert re.fullmatch(rf"ed25519 {key.version} [A-Za-z0-9+/]{{43}}\n", line)
    loaded = SigningKey.load(path)
    assert loaded.version == key.version
    assert loaded.public_key_base64 == key.public_key_base64
    assert loaded.sign(b"x") == key.sign(b"x")


def test_signing_key_file_errors(tmp_path):
    path = tmp_path / "bad.key"
    path.write_text("curve25519 1 AAAA\n")
    with pytest.raises(ValueError):
        SigningKey.load(path)
    path.write_text("ed25519 1 AAAA\n")
    with pytest.raises(ValueError):
        SigningKey.load(path)
    with pytest.raises(ValueError):
        SigningKey(b"\0" * 32, "bad version!")


def test_spec_public_key_of_test_seed():
    assert SPEC_TEST_KEY.public_key_base64 == base64.b64encode(PUBLIC_KEY).decode().rstrip("=")
    assert len(PUBLIC_KEY) == 32


MESSAGE_PDU = {
    "auth_events": ["$a"],
    "content": {"body": "hi", "msgtype": "m.text"},
    "depth": 5,
    "origin_server_ts": 1234,
    "prev_events": ["$p"],
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "type": "m.room.message",
    "hashes": {"sha256": "x"},
    "signatures": {"domain": {"ed25519:1": "s"}},
    "unsigned": {"age": 3},
}


def test_reference_hash_covers_only_the_redacted_event():
    rv = ROOM_VERSIONS["11"]
    expected = hashlib.sha256(
        encode_canonical_json({k: v for k, v in redact(MESSAGE_PDU, rv).items() if k != "signatures"})
    ).digest()
    assert compute_reference_hash(MESSAGE_PDU, rv) == expected
    changed_body = {**MESSAGE_PDU, "content": {"body": "other"}, "signatures": {}, "unsigned": {}}
    assert compute_reference_hash(changed_body, rv) == expected
    assert compute_reference_hash({**MESSAGE_PDU, "hashes": {"sha256": "y"}}, rv) != expected


@pytest.mark.parametrize(
    "version, pattern",
    [("3", r"\$[A-Za-z0-9+/]{43}"), ("4", r"\$[A-Za-z0-9_-]{43}"), ("11", r"\$[A-Za-z0-9_-]{43}")],
)
def test_hash_event_id_formats(version, pattern):
    rv = ROOM_VERSIONS[version]
    event_id = compute_event_id(MESSAGE_PDU, rv)
    assert re.fullmatch(pattern, event_id)
    assert decode_base64(event_id[1:]) == compute_reference_hash(MESSAGE_PDU, rv)
    assert Event.from_pdu(MESSAGE_PDU, rv).event_id == event_id


def test_v3_and_v4_differ_only_in_alphabet():
    # Find a PDU whose hash has a '+' or '/' so the two alphabets visibly differ.
    for depth in range(200):
        pdu = {**MESSAGE_PDU, "depth": depth}
        v3_id = compute_event_id(pdu, ROOM_VERSIONS["3"])
        if "+" in v3_id or "/" in v3_id:
            break
    v4_id = compute_event_id(pdu, ROOM_VERSIONS["4"])
    assert v3_id != v4_id
    assert v3_id.replace("+", "-").replace("/", "_") == v4_id


@pytest.mark.parametrize("version", ["1", "2"])
def test_v1_event_ids(version):
    rv = ROOM_VERSIONS[version]
    first = compute_event_id(MESSAGE_PDU, rv, "example.org")
    assert re.fullmatch(r"\$[A-Za-z0-9]{18}:example\.org", first)
    assert first != compute_event_id(MESSAGE_PDU, rv, "example.org")
    with pytest.raises(ValueError):
        compute_event_id(MESSAGE_PDU, rv)
    assert Event.from_pdu({**MESSAGE_PDU, "event_id": first}, rv).event_id == first
    with pytest.raises(ValueError):
        Event.from_pdu(MESSAGE_PDU, rv)


def test_check_content_hash():
    pdu = {k: v for k, v in MESSAGE_PDU.items() if k != "hashes"}
    pdu["hashes"] = {"sha256": compute_content_hash(pdu)}
    assert check_content_hash(pdu)
    assert check_content_hash({**pdu, "unsigned": {"age": 99}, "signatures": {}})
    assert not check_content_hash({**pdu, "content": {"body": "tampered"}})
    assert not check_content_hash({**pdu, "hashes": {}})
    assert not check_content_hash({**pdu, "hashes": {"sha256": "é"}})


def _build(version, **overrides):
    rv = ROOM_VERSIONS[version]
    arguments = dict(
        room_id="!r:a.example",
        sender="@u:a.example",
        type="m.room.message",
        content={"body": "hi"},
        prev_event_ids=["$prev:a.example"],
        auth_event_ids=["$auth:a.example"],
        depth=7,
        origin_server_ts=99,
        signing_key=SPEC_TEST_KEY,
        server_name="a.example",
    )
    arguments.update(overrides)
    return build_event(rv, **arguments)


@pytest.mark.parametrize("version", list(ROOM_VERSIONS))
def test_build_event_formats(version):
    rv = ROOM_VERSIONS[version]
    event = _build(version, unsigned={"transaction_id": "t"})
    pdu = event.pdu
    assert check_content_hash(pdu)
    verify_event_signature(pdu, rv, "a.example", "ed25519:1", PUBLIC_KEY)
    assert event.unsigned == {"transaction_id": "t"}
    assert event.prev_event_ids == ["$prev:a.example"] and event.auth_event_ids == ["$auth:a.example"]
    if rv.event_id_has_domain:
        assert pdu["event_id"] == event.event_id and event.event_id.endswith(":a.example")
        assert pdu["prev_events"] == [["$prev:a.example", {}]]
    else:
        assert "event_id" not in pdu
        assert pdu["prev_events"] == ["$prev:a.example"]
        assert event.event_id == compute_event_id(pdu, rv)
    assert (event.room_id, event.type, event.sender, event.depth) == ("!r:a.example", "m.room.message", "@u:a.example", 7)
    assert event.state_key is None and not event.is_state and event.redacts is None


def test_build_event_v1_keeps_given_reference_hashes():
    event = _build("1", prev_event_ids=[("$p:a.example", {"sha256": "abc"})])
    assert event.pdu["prev_events"] == [["$p:a.example", {"sha256": "abc"}]]
    assert event.prev_event_ids == ["$p:a.example"]


@pytest.mark.parametrize("version, in_content", [("10", False), ("11", True), ("12", True)])
def test_redacts_placement(version, in_content):
    event = _build(version, type="m.room.redaction", content={"reason": "spam"}, redacts="$target")
    assert event.redacts == "$target"
    assert ("redacts" in event.content) is in_content
    assert ("redacts" in event.pdu) is not in_content


def test_v12_create_event_defines_the_room_id():
    event = _build("12", type="m.room.create", content={"room_version": "12"}, state_key="", room_id=None,
                   prev_event_ids=[], auth_event_ids=[])
    assert "room_id" not in event.pdu
    assert event.room_id == room_id_for_v12_create(event) == "!" + event.event_id[1:]
    with pytest.raises(ValueError):
        _build("11", room_id=None)


def test_state_event_properties():
    event = _build("11", type="m.room.topic", content={"topic": "t"}, state_key="")
    assert event.is_state and event.state_key == ""
    assert event.membership is None
    member = _build("11", type="m.room.member", content={"membership": "join"}, state_key="@u:a.example")
    assert member.membership == "join"
