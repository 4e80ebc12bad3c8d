"""The Event wrapper around a PDU dict, and building new signed events."""

from __future__ import annotations

import sys
from typing import Any, Iterable

from ranvier.events.canonical_json import MAX_SAFE_INTEGER
from ranvier.events.hashes import compute_content_hash, compute_event_id
from ranvier.events.room_versions import RoomVersion
from ranvier.events.signing import SigningKey, sign_event

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
REDACTION = "m.room.redaction"
ALIASES = "m.room.aliases"


#: PDU fields whose values recur across many events (see Event.share_strings).
_RECURRING_FIELDS = ("room_id", "sender", "type", "state_key")


def _event_ids_of(references: Any) -> list[str]:
    """IDs from `prev_events`/`auth_events`: plain IDs (v3+) or `[id, hashes]` pairs (v1, v2)."""
    if not isinstance(references, list):
        return []
    ids = []
    for reference in references:
        if isinstance(reference, str):
            ids.append(reference)
        elif isinstance(reference, (list, tuple)) and reference and isinstance(reference[0], str):
            ids.append(reference[0])
    return ids


class Event:
    """A room event (PDU) of a known room version.

    The PDU dict is kept as received so that hashes and signatures stay
    checkable; properties read from it. `rejected_reason` is set by whoever
    knows the event failed authorisation; state resolution skips rejected
    auth events.
    """

    __slots__ = ("pdu", "room_version", "event_id", "rejected_reason", "sync_json")

    def __init__(self, pdu: dict, room_version: RoomVersion, event_id: str) -> None:
        self.pdu = pdu
        self.room_version = room_version
        self.event_id = event_id
        self.rejected_reason: str | None = None
        #: A state event's client-format fields as /sync sends them, encoded once when
        #: first sent (events.client_format.encoded_sync_event); the PDU is never changed in place.
        self.sync_json: bytes | None = None

    @classmethod
    def from_pdu(cls, pdu: dict, room_version: RoomVersion) -> Event:
        """Wrap `pdu`; versions 1 and 2 read `event_id`, later ones derive it from the reference hash."""
        if room_version.event_id_has_domain:
            event_id = pdu.get("event_id")
            if not isinstance(event_id, str):
                raise ValueError("events of room versions 1 and 2 must carry an event_id")
        else:
            event_id = compute_event_id(pdu, room_version)
        return cls(pdu, room_version, event_id)

    def __repr__(self) -> str:
        return f"<Event {self.event_id} {self.type} state_key={self.state_key!r} sender={self.sender}>"

    def share_strings(self) -> None:
        """Replace the strings that recur across events (room, sender, type, state key,
        membership, the IDs of referenced events and the event's own ID) by the one copy
        Python interns of each, for an event that stays in a cache: a message then holds
        about a fifth fewer bytes. The PDU dict itself is rebuilt at its size: a parsed or
        copied one keeps room to grow (632 bytes for a message's eleven keys, 464 rebuilt).
        Values and their order are unchanged."""
        pdu = self.pdu = {key: value for key, value in self.pdu.items()}
        for key in _RECURRING_FIELDS:
            value = pdu.get(key)
            if type(value) is str:
                pdu[key] = sys.intern(value)
        for key in ("auth_events", "prev_events"):
            references = pdu.get(key)
            if type(references) is not list:
                continue
            for i, reference in enumerate(references):
                if type(reference) is str:
                    references[i] = sys.intern(reference)
                elif type(reference) is list and reference and type(reference[0]) is str:
                    reference[0] = sys.intern(reference[0])
        content = pdu.get("content")
        if type(content) is dict and type(content.get("membership")) is str:
            content["membership"] = sys.intern(content["membership"])
        self.event_id = sys.intern(self.event_id)

    @property
    def type(self) -> str:
        return self.pdu["type"]

    @property
    def room_id(self) -> str:
        """The room ID; a v12 create event has none in its PDU, so it is derived."""
        room_id = self.pdu.get("room_id")
        if room_id is None and self.room_version.room_id_is_create_event_id and self.type == CREATE:
            return room_id_for_v12_create(self)
        return room_id

    @property
    def sender(self) -> str:
        return self.pdu["sender"]

    @property
    def state_key(self) -> str | None:
        return self.pdu.get("state_key")

    @property
    def is_state(self) -> bool:
        return "state_key" in self.pdu

    @property
    def content(self) -> dict:
        content = self.pdu.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def membership(self) -> str | None:
        """content.membership of an m.room.member event, else None."""
        membership = self.content.get("membership") if self.type == MEMBER else None
        return membership if isinstance(membership, str) else None

    @property
    def depth(self) -> int:
        return self.pdu.get("depth", 0)

    @property
    def prev_event_ids(self) -> list[str]:
        return _event_ids_of(self.pdu.get("prev_events"))

    @property
    def auth_event_ids(self) -> list[str]:
        return _event_ids_of(self.pdu.get("auth_events"))

    @property
    def origin_server_ts(self) -> int:
        return self.pdu.get("origin_server_ts", 0)

    @property
    def redacts(self) -> str | None:
        """The event an m.room.redaction redacts (in content from v11, top-level before)."""
        if self.type != REDACTION:
            return None
        if self.room_version.redacts_in_content:
            redacts = self.content.get("redacts")
        else:
            redacts = self.pdu.get("redacts")
        return redacts if isinstance(redacts, str) else None

    @property
    def unsigned(self) -> dict:
        unsigned = self.pdu.get("unsigned")
        return unsigned if isinstance(unsigned, dict) else {}

    @property
    def signatures(self) -> dict:
        signatures = self.pdu.get("signatures")
        return signatures if isinstance(signatures, dict) else {}


def room_id_for_v12_create(event: Event) -> str:
    """The room ID a v12 create event defines: its event ID with the `!` sigil."""
    return "!" + event.event_id[1:]


def _references(room_version: RoomVersion, entries: Iterable[str | tuple[str, dict]]) -> list:
    """prev_events/auth_events in the version's format.

    Versions 1 and 2 want `[event_id, {"sha256": ...}]` pairs: entries may be
    given as such pairs, and bare IDs get an empty hash object.
    """
    references: list = []
    for entry in entries:
        event_id, hashes = (entry, {}) if isinstance(entry, str) else entry
        references.append([event_id, dict(hashes)] if room_version.event_id_has_domain else event_id)
    return references


def build_event(
    room_version: RoomVersion,
    *,
    room_id: str | None,
    sender: str,
    type: str,
    content: dict,
    state_key: str | None = None,
    prev_event_ids: Iterable[str | tuple[str, dict]],
    auth_event_ids: Iterable[str | tuple[str, dict]],
    depth: int,
    origin_server_ts: int,
    signing_key: SigningKey,
    server_name: str,
    redacts: str | None = None,
    unsigned: dict | None = None,
) -> Event:
    """Build, hash and sign a new event in the format of `room_version`.

    A v12 create event gets no room_id (its ID defines the room); `redacts` is
    placed in content from v11 and at the top level before. Depth is capped at
    the largest canonical JSON integer, as the spec asks.
    """
    pdu: dict[str, Any] = {
        "auth_events": _references(room_version, auth_event_ids),
        "content": dict(content),
        "depth": min(depth, MAX_SAFE_INTEGER),
        "origin_server_ts": origin_server_ts,
        "prev_events": _references(room_version, prev_event_ids),
        "sender": sender,
        "type": type,
    }
    if not (room_version.room_id_is_create_event_id and type == CREATE):
        if room_id is None:
            raise ValueError("room_id is required for every event but a v12 create event")
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.redacts_in_content:
            pdu["content"]["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    if room_version.event_id_has_domain:
        pdu["event_id"] = compute_event_id(pdu, room_version, server_name)
    pdu["hashes"] = {"sha256": compute_content_hash(pdu)}
    pdu = sign_event(pdu, room_version, server_name, signing_key)
    if unsigned:
        pdu["unsigned"] = dict(unsigned)
    return Event.from_pdu(pdu, room_version)
