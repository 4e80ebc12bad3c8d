"""The pure parts of federation: the X-Matrix header, server ACLs, and the format checks of
received PDUs (resolving server names: test_federation_discovery.py)."""

from __future__ import annotations

import pytest
from unpaddedbase64 import decode_base64

from ranvier.events.model import build_event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.events.signing import SigningKey, verify_signed_json
from ranvier.federation.acl import acl_allows
from ranvier.federation.pdus import InvalidPdu, parse_pdu
from ranvier.federation.request_auth import authorization_header, parse_authorization, request_json

KEY = SigningKey.generate("k1")


def test_an_authorization_header_verifies_against_the_request_it_signs():
    header = authorization_header("origin.test", "dest.test", KEY, "PUT", "/_matrix/x?a=1", {"b": 2})
    parsed = parse_authorization(header)
    assert (parsed.origin, parsed.destination, parsed.key_id) == ("origin.test", "dest.test", "ed25519:k1")
    signed = request_json("PUT", "/_matrix/x?a=1", "origin.test", "dest.test", {"b": 2})
    signed["signatures"] = {"origin.test": {parsed.key_id: parsed.signature}}
    verify_signed_json(signed, "origin.test", parsed.key_id, decode_base64(KEY.public_key_base64))
    tampered = dict(signed, uri="/_matrix/x?a=2")
    with pytest.raises(ValueError):
        verify_signed_json(tampered, "origin.test", parsed.key_id, decode_base64(KEY.public_key_base64))


@pytest.mark.parametrize("header,origin,key", [
    ('X-Matrix origin="a.test",destination="b.test",key="ed25519:1",sig="c2ln"', "a.test", "ed25519:1"),
    ('X-Matrix   origin=a.test:8448 , key="ed25519:1", SIG="c2ln", extra="x"', "a.test:8448", "ed25519:1"),
    ('X-Matrix origin="a\\.test",key=ed25519:1,sig=c2ln', "a.test", "ed25519:1"),
])
def test_headers_are_parsed_as_the_spec_allows(header, origin, key):
    parsed = parse_authorization(header)
    assert (parsed.origin, parsed.key_id, parsed.signature) == (origin, key, "c2ln")


@pytest.mark.parametrize("header", ["Bearer abc", "X-Matrix origin=\"a\"", "X-Matrix origin=\"a\",key=\"k\"",
                                    'X-Matrix origin="a,key="k",sig="s"', ""])
def test_headers_that_are_not_x_matrix_are_refused(header):
    with pytest.raises(ValueError):
        parse_authorization(header)


@pytest.mark.parametrize("content,server,allowed", [
    ({"allow": ["*"]}, "evil.test:8448", True),
    ({"allow": ["*"], "deny": ["evil.test"]}, "evil.test:8448", False),
    ({"allow": ["*.example.org"]}, "matrix.example.org", True),
    ({"allow": ["*.example.org"]}, "example.org", False),
    ({"allow": ["ma?rix.test"]}, "MATRIX.test", True),
    ({"allow": ["*"], "allow_ip_literals": False}, "127.0.0.1:8448", False),
    ({"allow": ["*"], "allow_ip_literals": False}, "[::1]:8448", False),
    ({"allow": ["*"]}, "127.0.0.1:8448", True),
    ({}, "anyone.test", False),
])
def test_server_acls(content, server, allowed):
    assert acl_allows(content, server) is allowed


def _pdu(version_id="11", **changes):
    version = ROOM_VERSIONS[version_id]
    event = build_event(version, room_id="!r:remote.test", sender="@a:remote.test", type="m.room.message",
                        content={"body": "hi"}, prev_event_ids=["$p"] if version_id != "1" else [("$p:x", {})],
                        auth_event_ids=[], depth=3, origin_server_ts=1, signing_key=KEY, server_name="remote.test")
    pdu = dict(event.pdu)
    pdu.update(changes)
    return pdu, version


def test_a_well_formed_pdu_becomes_an_event_without_untrusted_unsigned_data():
    pdu, version = _pdu(unsigned={"age": 5, "invite_room_state": [{"type": "m.room.name"}]})
    event = parse_pdu(pdu, version)
    assert event.unsigned == {"invite_room_state": [{"type": "m.room.name"}]}
    assert event.event_id == parse_pdu(_pdu()[0], version).event_id


@pytest.mark.parametrize("changes,reason", [
    ({"type": 5}, "type"), ({"sender": "not a user"}, "sender"), ({"depth": -1}, "depth"),
    ({"depth": 2 ** 60}, "depth"), ({"origin_server_ts": "1"}, "origin_server_ts"), ({"content": []}, "content"),
    ({"state_key": 1}, "state_key"), ({"prev_events": "$p"}, "prev_events"),
    ({"prev_events": [f"$p{n}" for n in range(21)]}, "prev_events"),
    ({"auth_events": [f"$a{n}" for n in range(11)]}, "auth_events"), ({"content": {"f": 1.5}}, "canonical"),
    ({"type": "m.room\x00message"}, "NUL"), ({"prev_events": ["$p\x00"]}, "NUL"),
    ({"content": {"body": "x" * 70000}}, "larger"),
])
def test_malformed_pdus_are_dropped(changes, reason):
    pdu, version = _pdu(**changes)
    with pytest.raises(InvalidPdu, match=reason):
        parse_pdu(pdu, version)


def test_versions_1_and_2_need_their_own_reference_format():
    pdu, version = _pdu("1", event_id="$e:remote.test")
    assert parse_pdu(pdu, version).event_id == "$e:remote.test"
    with pytest.raises(InvalidPdu, match="pairs"):
        parse_pdu(dict(pdu, prev_events=["$p"]), version)


def test_a_key_answer_is_kept_only_when_each_current_key_signs_it_and_old_keys_come_with_it():
    from ranvier.events.signing import sign_json
    from ranvier.federation.keys import _checked_keys, _valid_at

    old = SigningKey.generate("old")
    answer = sign_json({
        "server_name": "remote.test",
        "verify_keys": {KEY.key_id: {"key": KEY.public_key_base64}},
        "old_verify_keys": {old.key_id: {"key": old.public_key_base64, "expired_ts": 1_000}},
        "valid_until_ts": 5_000,
    }, "remote.test", KEY)
    keys = _checked_keys(answer, "remote.test")
    assert set(keys) == {KEY.key_id, old.key_id}
    assert _valid_at(keys[KEY.key_id], 5_000) and not _valid_at(keys[KEY.key_id], 5_001)
    assert _valid_at(keys[old.key_id], 999) and not _valid_at(keys[old.key_id], 1_000)  # old events only
    assert _checked_keys(answer, "other.test") == {}
    unsigned = {key: value for key, value in answer.items() if key != "signatures"}
    assert _checked_keys(unsigned, "remote.test") == {}
    forged = sign_json(unsigned, "remote.test", SigningKey.generate("k1"))  # same key ID, another key
    assert _checked_keys(forged, "remote.test") == {}
