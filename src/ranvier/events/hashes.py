"""Content hashes, reference hashes and event IDs (server-server API, "Signing Events")."""

from __future__ import annotations

import hashlib
import secrets
import string

from unpaddedbase64 import decode_base64, encode_base64

from ranvier.events.canonical_json import encode_canonical_json
from ranvier.events.redaction import redact
from ranvier.events.room_versions import RoomVersion

_EVENT_ID_ALPHABET = string.ascii_letters + string.digits
_EVENT_ID_LOCALPART_LENGTH = 18


def _content_hash_bytes(pdu: dict) -> bytes:
    hashed = {key: value for key, value in pdu.items() if key not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(hashed)).digest()


def compute_content_hash(pdu: dict) -> str:
    """The sha256 content hash of the full (unredacted) event, as unpadded base64."""
    return encode_base64(_content_hash_bytes(pdu))


def check_content_hash(pdu: dict) -> bool:
    """True if `hashes.sha256` matches the event; False means it was redacted or tampered with."""
    hashes = pdu.get("hashes")
    claimed = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not isinstance(claimed, str):
        return False
    try:
        claimed_bytes = decode_base64(claimed)
    except (ValueError, UnicodeEncodeError):
        return False
    return secrets.compare_digest(claimed_bytes, _content_hash_bytes(pdu))


def compute_reference_hash(pdu: dict, room_version: RoomVersion) -> bytes:
    """The sha256 over the redacted event without signatures and unsigned data."""
    redacted = redact(pdu, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


def compute_event_id(pdu: dict, room_version: RoomVersion, server_name: str | None = None) -> str:
    """The event ID for `pdu` in the format of `room_version`.

    Versions 1 and 2 use a fresh random `$localpart:server_name` (so
    `server_name` is required); later versions derive the ID from the
    reference hash, so the same event always gets the same ID.
    """
    if room_version.event_id_format == "v1":
        if not server_name:
            raise ValueError(f"room version {room_version.identifier} event IDs need a server name")
        localpart = "".join(secrets.choice(_EVENT_ID_ALPHABET) for _ in range(_EVENT_ID_LOCALPART_LENGTH))
        return f"${localpart}:{server_name}"
    urlsafe = room_version.event_id_format == "v4"
    return "$" + encode_base64(compute_reference_hash(pdu, room_version), urlsafe=urlsafe)
