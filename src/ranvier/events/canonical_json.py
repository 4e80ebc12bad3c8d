"""Canonical JSON (appendices: "Canonical JSON").

The bytes produced here are what gets hashed and signed, so two servers must
produce exactly the same output for the same value: keys sorted by code point,
no insignificant whitespace, UTF-8 without ``\\u`` escapes except the
mandatory ones, integers only.

``encode_canonical_json`` also accepts what events of room versions 1 to 5 may
legally contain (integers outside the safe range, floats), because those events
still have to be hashed. ``check_canonical`` is the strict test that room
versions 6 and later, and every client request, must pass.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import orjson

MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1
MAX_NESTING_DEPTH = 100

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    sort_keys=True,
    allow_nan=False,
)


class CanonicalJSONError(ValueError):
    """A value cannot be represented in canonical JSON; the message says where."""


class _Fraction(float):
    """A float that is not integral, which only old room versions may hold. orjson writes
    floats in another form than Python's encoder (``1e-7`` against ``1e-07``), and the
    hashes of those events were computed with the latter; orjson refuses float subclasses,
    so such a value sends the whole encoding to Python's encoder."""


def _normalise(value: Any, depth: int, strict: bool) -> Any:
    """Return `value` ready for the JSON encoder, or raise CanonicalJSONError.

    Integral floats become integers (the spec's ``1e10`` example encodes as
    ``10000000000``); in strict mode any float and any integer outside the safe
    range is rejected.
    """
    if depth > MAX_NESTING_DEPTH:
        raise CanonicalJSONError(f"JSON nested deeper than {MAX_NESTING_DEPTH} levels")
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if strict and not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJSONError(f"integer {value} is outside the canonical JSON range")
        return value
    if kind is float:
        if strict:
            raise CanonicalJSONError("floats are not allowed in canonical JSON")
        if not math.isfinite(value):
            raise CanonicalJSONError("NaN and infinities cannot be encoded as JSON")
        return int(value) if value.is_integer() else _Fraction(value)
    if kind is dict:
        normalised = {}
        for key, item in value.items():
            if type(key) is not str:
                raise CanonicalJSONError(f"object key {key!r} is not a string")
            normalised[key] = _normalise(item, depth + 1, strict)
        return normalised
    if kind is list or kind is tuple:
        return [_normalise(item, depth + 1, strict) for item in value]
    raise CanonicalJSONError(f"{kind.__name__} cannot be encoded as JSON")


def check_canonical(obj: Any) -> None:
    """Raise CanonicalJSONError unless `obj` is valid strict canonical JSON."""
    _normalise(obj, 0, strict=True)


def encode_canonical_json(obj: Any) -> bytes:
    """Encode `obj` as canonical JSON bytes.

    orjson writes the same bytes as Python's encoder for everything canonical JSON holds
    (keys sorted by code point, which UTF-8 byte order preserves; the same escapes), at a
    twentieth of the cost; integers beyond 64 bits and non-integral floats take the slow
    path, lone surrogates are refused by both.
    """
    normalised = _normalise(obj, 0, strict=False)
    with contextlib.suppress(orjson.JSONEncodeError):  # the slow path below says what is wrong, if anything
        return orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)
    try:
        return _ENCODER.encode(normalised).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("string contains a lone surrogate") from exc


def contains_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 in a string or an object key.

    PostgreSQL text cannot store it, and an event that one engine stores and the other
    refuses would make the two disagree, so the server refuses it in every request.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in key:
                    return True
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)
    return False
