"""Unpadded base64, as Matrix writes keys, ciphertexts and hashes (no vodozemac needed)."""

from __future__ import annotations

import base64
import binascii

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64; ``urlsafe`` uses ``-`` and ``_`` (as a JSON Web Key's ``k``)."""
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.decode().rstrip("=")


def decode_base64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def decode_base64_strictly(text: str) -> bytes:
    """Base64 in either alphabet, padded or not; anything else raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    unpadded = text.translate(_URLSAFE_TO_STANDARD).rstrip("=")
    try:
        return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
