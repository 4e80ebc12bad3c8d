"""The checks of a PDU received from another server, before the room server sees it
(server-server API, "Checks performed on receipt of a PDU", steps 1 to 3): it must have
the format of its room version (else it is dropped), bear valid signatures (else it is
dropped), and match its content hash (else it is redacted before going further)."""

from __future__ import annotations

from typing import Any

import orjson

from ranvier.events.canonical_json import MAX_SAFE_INTEGER, CanonicalJSONError, check_canonical
from ranvier.events.hashes import check_content_hash
from ranvier.events.identifiers import is_valid_user_id
from ranvier.events.model import CREATE, Event
from ranvier.events.redaction import redact
from ranvier.events.room_versions import RoomVersion
from ranvier.events.signing import SignatureError
from ranvier.federation.keys import ServerKeys
from ranvier.rooms.input import MAX_REMOTE_AUTH_EVENTS, MAX_REMOTE_PREV_EVENTS

MAX_PDU_BYTES = 65536


class InvalidPdu(ValueError):
    """The PDU is dropped; the message says why."""


def _references(value: Any, version: RoomVersion, name: str) -> None:
    if not isinstance(value, list):
        raise InvalidPdu(f"{name} must be a list")
    for reference in value:
        if version.event_id_has_domain:
            if not (isinstance(reference, list) and len(reference) == 2 and isinstance(reference[0], str)):
                raise InvalidPdu(f"{name} entries must be [event_id, hashes] pairs in this room version")
        elif not isinstance(reference, str):
            raise InvalidPdu(f"{name} entries must be event IDs")
        if "\x00" in (reference if isinstance(reference, str) else reference[0]):
            raise InvalidPdu(f"{name} entries must not hold NUL characters")


def parse_pdu(pdu: Any, version: RoomVersion) -> Event:
    """The PDU as an event of `version`, if it has that version's format."""
    if not isinstance(pdu, dict):
        raise InvalidPdu("a PDU must be an object")
    if len(orjson.dumps(pdu)) > MAX_PDU_BYTES:
        raise InvalidPdu(f"the PDU is larger than {MAX_PDU_BYTES} bytes")
    event_type = pdu.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidPdu("type must be a string")
    if not (version.room_id_is_create_event_id and event_type == CREATE) and not isinstance(pdu.get("room_id"), str):
        raise InvalidPdu("room_id must be a string")
    if not isinstance(pdu.get("sender"), str) or not is_valid_user_id(pdu["sender"]):
        raise InvalidPdu("sender must be a user ID")
    depth, ts = pdu.get("depth"), pdu.get("origin_server_ts")
    if type(depth) is not int or not 0 <= depth <= MAX_SAFE_INTEGER:
        raise InvalidPdu("depth must be an integer from 0")
    if type(ts) is not int:
        raise InvalidPdu("origin_server_ts must be an integer")
    if not isinstance(pdu.get("content"), dict):
        raise InvalidPdu("content must be an object")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise InvalidPdu("state_key must be a string")
    if any("\x00" in value for value in (event_type, pdu.get("room_id") or "", pdu["sender"], pdu.get("state_key", ""))):
        raise InvalidPdu("identifiers must not hold NUL characters")
    if not isinstance(pdu.get("hashes"), dict) or not isinstance(pdu.get("signatures"), dict):
        raise InvalidPdu("hashes and signatures must be objects")
    _references(pdu.get("prev_events"), version, "prev_events")
    _references(pdu.get("auth_events"), version, "auth_events")
    if len(pdu["prev_events"]) > MAX_REMOTE_PREV_EVENTS:
        raise InvalidPdu(f"more than {MAX_REMOTE_PREV_EVENTS} prev_events")
    if len(pdu["auth_events"]) > MAX_REMOTE_AUTH_EVENTS:
        raise InvalidPdu(f"more than {MAX_REMOTE_AUTH_EVENTS} auth_events")
    if version.strict_canonicaljson:
        try:
            check_canonical(pdu)
        except CanonicalJSONError as exc:
            raise InvalidPdu(f"not canonical JSON: {exc}") from None
    try:
        return Event.from_pdu({k: v for k, v in pdu.items() if k != "unsigned"} | _kept_unsigned(pdu), version)
    except (ValueError, TypeError) as exc:
        raise InvalidPdu(str(exc)) from None


def _kept_unsigned(pdu: dict[str, Any]) -> dict[str, Any]:
    """Another server's `unsigned` is not trusted, except the stripped state of an invite
    or knock, which clients are shown."""
    unsigned = pdu.get("unsigned")
    if not isinstance(unsigned, dict):
        return {}
    kept = {key: unsigned[key] for key in ("invite_room_state", "knock_room_state") if isinstance(unsigned.get(key), list)}
    return {"unsigned": kept} if kept else {}


async def checked_event(keys: ServerKeys, pdu: Any, version: RoomVersion, *, signing_here: bool = False) -> Event:
    """A received PDU as an event: its format and signatures checked (InvalidPdu otherwise),
    redacted if its content hash does not match. `signing_here`: this server signs it next
    (a restricted join it authorises)."""
    event = parse_pdu(pdu, version)
    try:
        await keys.verify_event(event.pdu, version, event.event_id, signing_here=signing_here)
    except SignatureError as exc:
        raise InvalidPdu(f"bad signature: {exc}") from None
    if not check_content_hash(event.pdu):
        event = Event(redact(event.pdu, version), version, event.event_id)
    return event
