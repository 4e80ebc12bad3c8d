"""Olm: the device's identity, its published keys, and the encrypted channel to each other device.

The Olm account holds the device's two identity keys (Curve25519 for key
agreement, Ed25519 for signatures), its one-time keys and its fallback key.
An Olm session with another device is started either by the bot (with a
one-time key claimed from the server) or by the other device (its first
message, a pre-key message, uses one of the bot's one-time keys). Room keys
and key requests travel as Olm-encrypted to-device messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import vodozemac

from .encoding import decode_base64, encode_base64
from .store import CryptoStore

OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
SIGNED_CURVE25519 = "signed_curve25519"
PRE_KEY_MESSAGE, NORMAL_MESSAGE = 0, 1


class OlmError(ValueError):
    """A to-device message that cannot be decrypted, or whose payload fails its checks."""


def canonical_json(value: Any) -> bytes:
    """Matrix's canonical JSON: keys sorted, no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def signed_part(value: Mapping[str, Any]) -> bytes:
    """What a signature covers: the object without ``signatures`` and ``unsigned``."""
    return canonical_json({k: v for k, v in value.items() if k not in ("signatures", "unsigned")})


def signature_is_valid(value: Mapping[str, Any], user_id: str, key_id: str, public_key: str) -> bool:
    """Whether ``value`` carries a valid signature of ``user_id`` by the Ed25519 key ``key_id`` (``public_key``)."""
    signature = ((value.get("signatures") or {}).get(user_id) or {}).get(key_id)
    if not isinstance(signature, str):
        return False
    try:
        vodozemac.Ed25519PublicKey.from_base64(public_key).verify_signature(
            signed_part(value), vodozemac.Ed25519Signature.from_base64(signature)
        )
    except (vodozemac.SignatureException, vodozemac.KeyException, vodozemac.DecodeException, ValueError):
        return False
    return True


def sign_with(signer: vodozemac.Account, value: Mapping[str, Any]) -> str:
    """The Ed25519 signature of ``value`` by the account's Ed25519 key."""
    return signer.sign(signed_part(value)).to_base64()


@dataclass(frozen=True, slots=True)
class Recipient:
    """The keys a to-device message is encrypted to."""

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str


class OlmAccount:
    """The Olm account of the bot's device and its Olm sessions, saved in the crypto store."""

    def __init__(self, store: CryptoStore, user_id: str, device_id: str) -> None:
        self.store = store
        self.user_id = user_id
        self.device_id = device_id
        saved = store.get("olm_account", "")
        self.account = vodozemac.Account.from_pickle(saved, store.pickle_key) if saved else vodozemac.Account()
        self.published = bool(store.get("meta", "published"))
        """Whether the device keys have been uploaded."""
        self._sessions: dict[str, list[tuple[float, vodozemac.Session]]] = {}
        for item_id, value in store.load("olm_session").items():
            curve = item_id.split("|", 1)[0]
            self._sessions.setdefault(curve, []).append((value["used"], vodozemac.Session.from_pickle(value["pickle"], store.pickle_key)))
        for sessions in self._sessions.values():
            sessions.sort(key=lambda entry: entry[0], reverse=True)
        if not saved:
            self.save()

    @property
    def curve25519(self) -> str:
        return self.account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self.account.ed25519_key.to_base64()

    @property
    def one_time_key_target(self) -> int:
        """How many one-time keys the server should hold: half of what the account can keep."""
        return self.account.max_number_of_one_time_keys // 2

    def save(self) -> None:
        self.store.put("olm_account", "", self.account.pickle(self.store.pickle_key))

    # --- published keys ---------------------------------------------------------

    def sign(self, value: Mapping[str, Any]) -> str:
        return sign_with(self.account, value)

    def _signed(self, value: dict[str, Any]) -> dict[str, Any]:
        return {**value, "signatures": {self.user_id: {f"ed25519:{self.device_id}": self.sign(value)}}}

    def device_keys(self) -> dict[str, Any]:
        """The device keys to upload, signed by the device."""
        return self._signed({
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": [OLM, MEGOLM],
            "keys": {f"curve25519:{self.device_id}": self.curve25519, f"ed25519:{self.device_id}": self.ed25519},
        })

    def one_time_keys(self, count: int) -> dict[str, Any]:
        """``count`` one-time keys to upload, signed: those generated before but never published, and new ones."""
        missing = count - len(self.account.one_time_keys)
        if missing > 0:
            self.account.generate_one_time_keys(missing)
        return {
            f"{SIGNED_CURVE25519}:{key_id}": self._signed({"key": key.to_base64()})
            for key_id, key in self.account.one_time_keys.items()
        }

    def fallback_key(self) -> dict[str, Any]:
        """A new fallback key (used when the one-time keys run out), signed."""
        self.account.generate_fallback_key()
        return {
            f"{SIGNED_CURVE25519}:{key_id}": self._signed({"key": key.to_base64(), "fallback": True})
            for key_id, key in self.account.fallback_key.items()
        }

    def mark_published(self) -> None:
        """The keys were uploaded: they are no longer offered again."""
        self.account.mark_keys_as_published()
        self.published = True
        with self.store.transaction():
            self.store.put("meta", "published", True)
            self.save()

    # --- sessions ---------------------------------------------------------------

    def has_session(self, curve25519: str) -> bool:
        return bool(self._sessions.get(curve25519))

    def _keep(self, curve25519: str, session: vodozemac.Session) -> None:
        """Save ``session`` and make it the first one tried (and used) for that device."""
        now = time.time()
        sessions = [entry for entry in self._sessions.get(curve25519, []) if entry[1].session_id != session.session_id]
        self._sessions[curve25519] = [(now, session), *sessions]
        self.store.put("olm_session", f"{curve25519}|{session.session_id}", {"pickle": session.pickle(self.store.pickle_key), "used": now})

    def start_session(self, curve25519: str, one_time_key: str) -> None:
        """A new outbound session with a device, from one of its (checked) one-time keys."""
        session = self.account.create_outbound_session(
            vodozemac.Curve25519PublicKey.from_base64(curve25519), vodozemac.Curve25519PublicKey.from_base64(one_time_key)
        )
        self._keep(curve25519, session)

    def encrypt(self, recipient: Recipient, event_type: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """The ``m.room.encrypted`` to-device content carrying ``event_type``/``content`` to one device."""
        entries = self._sessions.get(recipient.curve25519)
        if not entries:
            raise OlmError(f"no Olm session with {recipient.user_id} {recipient.device_id}")
        session = entries[0][1]
        payload = {
            "sender": self.user_id,
            "sender_device": self.device_id,
            "keys": {"ed25519": self.ed25519},
            "recipient": recipient.user_id,
            "recipient_keys": {"ed25519": recipient.ed25519},
            "type": event_type,
            "content": dict(content),
        }
        message_type, body = session.encrypt(canonical_json(payload)).to_parts()
        self._keep(recipient.curve25519, session)
        return {"algorithm": OLM, "sender_key": self.curve25519,
                "ciphertext": {recipient.curve25519: {"type": message_type, "body": encode_base64(body)}}}

    def decrypt(self, sender: str, content: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Decrypt an Olm to-device message: (the sender's Curve25519 key, the checked payload)."""
        sender_key = content.get("sender_key")
        mine = (content.get("ciphertext") or {}).get(self.curve25519) if isinstance(content.get("ciphertext"), dict) else None
        if content.get("algorithm") != OLM or not isinstance(sender_key, str) or not isinstance(mine, dict):
            raise OlmError("not an Olm message for this device")
        body = mine.get("body")
        if not isinstance(body, str) or mine.get("type") not in (PRE_KEY_MESSAGE, NORMAL_MESSAGE):
            raise OlmError("malformed Olm ciphertext")
        try:
            plaintext = self._decrypt(sender_key, mine["type"], body)
        except (vodozemac.OlmDecryptionException, vodozemac.DecodeException, vodozemac.KeyException,
                vodozemac.SessionCreationException, ValueError) as exc:
            raise OlmError(f"cannot decrypt the Olm message: {exc}") from None
        try:
            payload = json.loads(plaintext)
        except ValueError:
            raise OlmError("the Olm payload is not JSON") from None
        if not isinstance(payload, dict) or payload.get("sender") != sender:
            raise OlmError("the Olm payload names another sender")
        if payload.get("recipient") != self.user_id or (payload.get("recipient_keys") or {}).get("ed25519") != self.ed25519:
            raise OlmError("the Olm payload is meant for another device")
        if not isinstance((payload.get("keys") or {}).get("ed25519"), str) or not isinstance(payload.get("content"), dict):
            raise OlmError("the Olm payload lacks the sender's key or a content")
        return sender_key, payload

    def _decrypt(self, sender_key: str, message_type: int, body: str) -> bytes:
        sessions = [session for _, session in self._sessions.get(sender_key, [])]
        if message_type == PRE_KEY_MESSAGE:
            pre_key = vodozemac.PreKeyMessage.from_base64(body)
            for session in sessions:
                if session.session_matches(pre_key):
                    plaintext = session.decrypt(pre_key.to_any())
                    self._keep(sender_key, session)
                    return bytes(plaintext)
            session, plaintext = self.account.create_inbound_session(vodozemac.Curve25519PublicKey.from_base64(sender_key), pre_key)
            self._keep(sender_key, session)
            self.save()  # the one-time key it used is gone
            return bytes(plaintext)
        message = vodozemac.AnyOlmMessage.from_parts(NORMAL_MESSAGE, decode_base64(body))
        for session in sessions:
            try:
                plaintext = session.decrypt(message)
            except vodozemac.OlmDecryptionException:
                continue
            self._keep(sender_key, session)
            return bytes(plaintext)
        raise OlmError("no Olm session with that device decrypts the message")
