"""Canonical JSON: the spec's examples, rejections, and properties."""

import json

import canonicaljson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ranvier.events.canonical_json import (
    MAX_NESTING_DEPTH,
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJSONError,
    check_canonical,
    encode_canonical_json,
)

# (input as written in appendices.md, expected canonical output)
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {
            "display_name": "John Doe", "three_pids": [
            {"medium": "email", "address": "john.doe@example.org"},
            {"medium": "msisdn", "address": "123456789"}]}}}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":'
        '[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},'
        '"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize("source, expected", SPEC_EXAMPLES)
def test_spec_examples(source, expected):
    assert encode_canonical_json(json.loads(source)) == expected.encode("utf-8")


@pytest.mark.parametrize(
    "char, escaped",
    [
        ("\b", "\\b"), ("\t", "\\t"), ("\n", "\\n"), ("\f", "\\f"), ("\r", "\\r"),
        ('"', '\\"'), ("\\", "\\\\"), ("\x00", "\\u0000"), ("\x1f", "\\u001f"),
        ("\x0b", "\\u000b"), ("\x7f", "\x7f"), ("\u2028", "\u2028"), ("é", "é"), ("😀", "😀"),
    ],
)
def test_shortest_escapes(char, escaped):
    assert encode_canonical_json(char) == f'"{escaped}"'.encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        {"a": 2.0},
        MAX_SAFE_INTEGER + 1,
        MIN_SAFE_INTEGER - 1,
        {1: "non-string key"},
        {"nested": [{"x": float("nan")}]},
        {"a": object()},
    ],
)
def test_check_canonical_rejects(value):
    with pytest.raises(CanonicalJSONError):
        check_canonical(value)


def test_check_canonical_accepts_range_limits():
    check_canonical({"max": MAX_SAFE_INTEGER, "min": MIN_SAFE_INTEGER, "list": [True, None, "x"]})


def _nested(depth):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_nesting_is_bounded():
    check_canonical(_nested(MAX_NESTING_DEPTH))
    with pytest.raises(CanonicalJSONError):
        check_canonical(_nested(MAX_NESTING_DEPTH + 1))
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json(_nested(MAX_NESTING_DEPTH + 1))


def test_legacy_values_still_encode():
    # Room versions 1-5 may hold big integers and floats, which must still hash.
    assert encode_canonical_json({"big": 2**60, "pl": 50.5}) == b'{"big":1152921504606846976,"pl":50.5}'
    # beyond 64 bits, and floats written as Python writes them (their events were hashed so)
    assert encode_canonical_json({"huge": 2**70, "tiny": 1e-7}) == b'{"huge":1180591620717411303424,"tiny":1e-07}'


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_legacy_floats_encode_as_python_does(value):
    expected = int(value) if value.is_integer() else value
    assert encode_canonical_json({"f": [value]}) == json.dumps({"f": [expected]}, separators=(",", ":")).encode()


def test_encoding_errors():
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"a": float("inf")})
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json("\ud800")
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({("tuple",): 1})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(MIN_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_and_agreement(value):
    encoded = encode_canonical_json(value)
    check_canonical(value)
    assert json.loads(encoded) == value
    assert encoded == canonicaljson.encode_canonical_json(value)
    # Encoding is a fixed point: re-encoding the decoded value gives the same bytes.
    assert encode_canonical_json(json.loads(encoded)) == encoded


@given(st.dictionaries(st.text(alphabet=st.characters(exclude_categories=["Cs"])), st.integers(0, 9), min_size=2))
def test_keys_sorted_by_code_point(value):
    decoded_keys = list(json.loads(encode_canonical_json(value), object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
    assert decoded_keys == sorted(value)
    assert b" " not in encode_canonical_json({k: v for k, v in value.items() if " " not in k})
