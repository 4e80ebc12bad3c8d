"""Megolm: the room keys. One outbound session per room encrypts what the bot sends; the
inbound sessions (one per sending device and rotation) decrypt what it receives.

An outbound session is replaced (rotated) before the next send when it has
lived ``rotation_period_ms`` or encrypted ``rotation_period_msgs`` messages (the
room's ``m.room.encryption`` says, one week and 100 by default), when someone
who may hold its key left the room or lost a device, and when the history
visibility moved across "shared" (the key says whether history is shared).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import vodozemac

from .store import CryptoStore

WEEK_MS = 7 * 24 * 3600 * 1000
DEFAULT_ROTATION_MSGS = 100


class MegolmError(ValueError):
    """A room event that its session cannot decrypt (bad ciphertext, a replay, a wrong room)."""


@dataclass(slots=True)
class InboundSession:
    """A room key received (or made) by the bot: decrypts one sender's session from its first known index."""

    room_id: str
    session: vodozemac.InboundGroupSession
    sender_key: str
    """The Curve25519 key of the device that created the session (the Olm sender of the key)."""
    signing_key: str
    """The Ed25519 key that device claimed (checked against its published keys when decrypting)."""

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def to_json(self, pickle_key: bytes) -> dict[str, Any]:
        return {"room_id": self.room_id, "pickle": self.session.pickle(pickle_key), "sender_key": self.sender_key,
                "signing_key": self.signing_key}


@dataclass(slots=True)
class OutboundSession:
    """The room key the bot encrypts with in one room, and the devices it was shared with."""

    room_id: str
    session: vodozemac.GroupSession
    shared_history: bool
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    shared_with: dict[str, dict[str, str]] = field(default_factory=dict)
    """user ID -> device ID -> the device's Ed25519 key when the key was shared with it."""

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def expired(self, settings: Mapping[str, Any], now_ms: int | None = None) -> bool:
        """Whether the room's rotation period (time or messages) has run out."""
        period = settings.get("rotation_period_ms")
        messages = settings.get("rotation_period_msgs")
        period = period if isinstance(period, int) and not isinstance(period, bool) and period > 0 else WEEK_MS
        messages = messages if isinstance(messages, int) and not isinstance(messages, bool) and messages > 0 else DEFAULT_ROTATION_MSGS
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        return now_ms - self.created_ms >= period or self.session.message_index >= messages

    def is_shared_with(self, user_id: str, device_id: str, ed25519: str) -> bool:
        return self.shared_with.get(user_id, {}).get(device_id) == ed25519

    def to_json(self, pickle_key: bytes) -> dict[str, Any]:
        return {"pickle": self.session.pickle(pickle_key), "shared_history": self.shared_history,
                "created_ms": self.created_ms, "shared_with": self.shared_with}


class MegolmSessions:
    """The inbound and outbound Megolm sessions, saved in the crypto store as they change."""

    replay_window = 10_000
    """How many (session, message index) pairs are remembered to refuse replayed ciphertexts."""

    def __init__(self, store: CryptoStore) -> None:
        self.store = store
        key = store.pickle_key
        self._inbound: dict[tuple[str, str], InboundSession] = {}
        for value in store.load("megolm_inbound").values():
            session = InboundSession(value["room_id"], vodozemac.InboundGroupSession.from_pickle(value["pickle"], key),
                                     value["sender_key"], value["signing_key"])
            self._inbound[(session.room_id, session.session_id)] = session
        self._outbound: dict[str, OutboundSession] = {}
        for room_id, value in store.load("megolm_outbound").items():
            self._outbound[room_id] = OutboundSession(
                room_id, vodozemac.GroupSession.from_pickle(value["pickle"], key), bool(value["shared_history"]),
                int(value["created_ms"]), {user: dict(devices) for user, devices in value["shared_with"].items()},
            )
        self._seen: OrderedDict[tuple[str, int], str] = OrderedDict()

    # --- inbound ----------------------------------------------------------------

    def inbound(self, room_id: str, session_id: str) -> InboundSession | None:
        return self._inbound.get((room_id, session_id))

    def add_inbound(self, room_id: str, session_id: str, session_key: str, sender_key: str, signing_key: str) -> bool:
        """Keep a room key received in an ``m.room_key``; True when it is new or reaches further back."""
        try:
            session = vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key))
        except (vodozemac.SessionKeyDecodeException, ValueError):
            return False
        if session.session_id != session_id:
            return False
        known = self._inbound.get((room_id, session_id))
        if known is not None and (known.sender_key != sender_key or known.session.first_known_index <= session.first_known_index):
            return False
        self._save_inbound(InboundSession(room_id, session, sender_key, signing_key))
        return True

    def _save_inbound(self, session: InboundSession) -> None:
        self._inbound[(session.room_id, session.session_id)] = session
        self.store.put("megolm_inbound", f"{session.room_id}|{session.session_id}", session.to_json(self.store.pickle_key))

    def decrypt(self, session: InboundSession, event_id: str, ciphertext: str) -> dict[str, Any]:
        """The decrypted payload of a room event (``type``, ``content``, ``room_id``), checked."""
        try:
            decrypted = session.session.decrypt(vodozemac.MegolmMessage.from_base64(ciphertext))
        except (vodozemac.MegolmDecryptionException, vodozemac.DecodeException, ValueError) as exc:
            raise MegolmError(f"the Megolm session cannot decrypt the event: {exc}") from None
        seen = (session.session_id, decrypted.message_index)
        if self._seen.setdefault(seen, event_id) != event_id:
            raise MegolmError(f"message index {decrypted.message_index} of session {session.session_id} was used by another event (a replay)")
        self._seen.move_to_end(seen)
        while len(self._seen) > self.replay_window:
            self._seen.popitem(last=False)
        try:
            payload = json.loads(decrypted.plaintext)
        except ValueError:
            raise MegolmError("the decrypted payload is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) or not isinstance(payload.get("content"), dict):
            raise MegolmError("the decrypted payload has no type or content")
        if payload.get("room_id") != session.room_id:
            raise MegolmError("the decrypted payload belongs to another room")
        return payload

    def export(self, session: InboundSession) -> str:
        """The session from its first known index, as an exported key (for ``m.forwarded_room_key``)."""
        return session.session.export_at(session.session.first_known_index).to_base64()

    # --- outbound ---------------------------------------------------------------

    def outbound(self, room_id: str) -> OutboundSession | None:
        return self._outbound.get(room_id)

    def new_outbound(self, room_id: str, shared_history: bool, curve25519: str, ed25519: str) -> OutboundSession:
        """A new room key for the bot's sends in ``room_id`` (the bot keeps its inbound half, to read its own events)."""
        session = OutboundSession(room_id, vodozemac.GroupSession(), shared_history)
        own = InboundSession(room_id, vodozemac.InboundGroupSession(session.session.session_key), curve25519, ed25519)
        with self.store.transaction():
            self._save_inbound(own)
            self.save_outbound(session)
        return session

    def save_outbound(self, session: OutboundSession) -> None:
        self._outbound[session.room_id] = session
        self.store.put("megolm_outbound", session.room_id, session.to_json(self.store.pickle_key))

    def discard_outbound(self, room_id: str) -> None:
        """Rotate: the next send in the room makes and shares a new key."""
        if self._outbound.pop(room_id, None) is not None:
            self.store.delete("megolm_outbound", room_id)

    def encrypt(self, session: OutboundSession, event_type: str, content: Mapping[str, Any]) -> str:
        """The ciphertext of one room event; the session's new index is saved before it is sent."""
        payload = {"type": event_type, "content": dict(content), "room_id": session.room_id}
        ciphertext = session.session.encrypt(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()).to_base64()
        self.save_outbound(session)
        return str(ciphertext)
