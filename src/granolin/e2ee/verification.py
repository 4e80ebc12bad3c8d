"""Interactive key verification: the framework and SAS (``m.sas.v1``), as a state machine.

A :class:`Verification` is one verification with one device, identified by
the other user and the ``transaction_id``: a random ID for to-device
messages; for messages in a room (the way to verify another user), the event
ID of the request, which the other messages reference (``m.relates_to``,
``m.reference``). :class:`Verifications` takes the
``m.key.verification.*`` messages that arrive (:meth:`Verifications.receive`)
and the bot's decisions (:meth:`~Verifications.accept`,
:meth:`~Verifications.confirm`, :meth:`~Verifications.mismatch`...), and
answers by queueing messages to send (``outbox``) and what to tell the bot
(``notices``: a request to accept, a SAS to compare, a success, a
cancellation). It does no I/O: :mod:`granolin.e2ee.verifying` sends the
messages and calls the bot's hooks.

The flow, either side requesting:
``request -> ready -> start -> accept -> key (starter) -> key -> mac, mac -> done, done``.
The requester sends the start once the other device is ready (a bot that was
asked waits for the other device's start); a start that comes without a
request (the older flow) is handled as a request and its start together.

Refused, with an ``m.key.verification.cancel`` to the other device:
a malformed message (``m.invalid_message``), one out of order
(``m.unexpected_message``), a ``transaction_id`` the bot does not know for a
message other than a request, start or cancel (``m.unknown_transaction``), no
method, key agreement, hash, MAC or string in common (``m.unknown_method``), a
``from_device`` that is not the device verified or not a device of the sender
(``m.user_mismatch``), a key that does not match its commitment
(``m.mismatched_commitment``), a MAC that does not match
(``m.key_mismatch``), strings the bot says differ (``m.mismatched_sas``), the
bot declining (``m.user``), a verification not finished 10 minutes after it
began, or silent for 10 minutes (``m.timeout``), and a second verification
the same device begins while one is under way (both, ``m.unexpected_message``).
A to-device request sent to every device of a user is cancelled on the others
with ``m.accepted`` once one is ready (in a room, any device of the user may
answer). A request whose ``timestamp`` (in a room,
``origin_server_ts``) is more than 10 minutes old (or 5 minutes ahead) is
ignored. A cancellation received ends
the verification with its code.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..transport import log
from .sas import (HASH, KEY_AGREEMENT, MAC_METHODS, SAS_METHODS, SAS_V1, Party, SasError, SasKeys, ShortAuthString,
                  commitment, mac_info, sas_info)

PREFIX = "m.key.verification."
TIMEOUT = 600.0
"""Seconds a verification may take, and may stay silent; also how old a request may be."""
FUTURE_LEEWAY = 300.0
"""Seconds a request's ``timestamp`` may be ahead of the bot's clock."""

USER = "m.user"
TIMED_OUT = "m.timeout"
UNKNOWN_TRANSACTION = "m.unknown_transaction"
UNKNOWN_METHOD = "m.unknown_method"
UNEXPECTED_MESSAGE = "m.unexpected_message"
KEY_MISMATCH = "m.key_mismatch"
USER_MISMATCH = "m.user_mismatch"
INVALID_MESSAGE = "m.invalid_message"
ACCEPTED = "m.accepted"
MISMATCHED_COMMITMENT = "m.mismatched_commitment"
MISMATCHED_SAS = "m.mismatched_sas"


class Phase(enum.Enum):
    REQUESTED = "requested"
    """A request was sent or received; no device is ready yet."""
    READY = "ready"
    STARTED = "started"
    """A start was sent; the accept is awaited."""
    ACCEPTED = "accepted"
    """The start was accepted; the public keys are being exchanged."""
    COMPARING = "comparing"
    """Both keys are known: the short authentication strings are shown; the MACs come next."""
    DONE = "done"
    CANCELLED = "cancelled"


class Cancel(Exception):
    """Raised by a step: the verification is cancelled with ``code``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class Message:
    """A to-device message to send."""

    user_id: str
    device_id: str
    event_type: str
    content: dict[str, Any]
    room_id: str | None = None
    """Set for a message to send in a room (then ``device_id`` is not used)."""


class Verification:
    """One verification with one device of ``user_id`` (``device_id`` is None while a request waits for every device)."""

    def __init__(self, transaction_id: str, user_id: str, device_id: str | None, we_requested: bool, now: float,
                 room_id: str | None = None) -> None:
        self.transaction_id = transaction_id
        self.room_id = room_id
        """The room of a verification by room messages; None for to-device messages."""
        self.user_id = user_id
        self.device_id = device_id
        self.we_requested = we_requested
        """Whether the bot sent the request (else the other device did)."""
        self.phase = Phase.REQUESTED
        self.began = self.last_activity = now
        self.asked_devices: list[str] = [device_id] if device_id is not None else []
        self.short_auth_string: ShortAuthString | None = None
        """The strings to compare, once both public keys are known."""
        self.verified_keys: dict[str, str] = {}
        """The other side's keys its MAC proved (key ID -> public key): its device key, and its master key if published."""
        self.cancel_code: str | None = None
        self.cancel_reason: str | None = None
        self.cancelled_by_them = False
        self._settled = asyncio.Event()
        self.start_content: dict[str, Any] | None = None
        self.we_started = False
        self.pending_start: dict[str, Any] | None = None
        """A start that came without a request, handled once the bot accepts."""
        self.keys: SasKeys | None = None
        self.their_key: str | None = None
        self.their_commitment: str | None = None
        self.mac_method: str | None = None
        self.sas_methods: list[str] = []
        self.confirmed = False
        self.their_mac_checked = False
        self.early_mac: dict[str, Any] | None = None
        """The other side's MAC, come before its key (see ``Verifications._on_mac``)."""

    @property
    def emoji(self) -> list[tuple[str, str]]:
        """The seven emoji to compare (emoji, description), or [] before the keys are exchanged or without ``emoji``."""
        return self.short_auth_string.emoji if self.short_auth_string and "emoji" in self.sas_methods else []

    @property
    def decimals(self) -> tuple[int, int, int] | None:
        """The three numbers to compare, or None before the keys are exchanged."""
        return self.short_auth_string.decimals if self.short_auth_string else None

    @property
    def verified(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.DONE, Phase.CANCELLED)

    async def wait(self) -> bool:
        """Wait until the verification ends: True when the other device was verified (and is trusted), False
        when it was cancelled."""
        await self._settled.wait()
        return self.verified

    def settle(self) -> None:
        """Wake :meth:`wait`: called once what the end implies was done (the device trusted)."""
        self._settled.set()

    def _end(self, phase: Phase) -> None:
        self.phase = phase

    def __repr__(self) -> str:
        return f"<Verification {self.transaction_id} with {self.user_id} {self.device_id}: {self.phase.value}>"


def _strings(content: dict[str, Any], field: str) -> list[str]:
    value = content.get(field)
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise Cancel(INVALID_MESSAGE, f"{field} must be a non-empty list of strings")
    return value


def _string(content: dict[str, Any], field: str) -> str:
    value = content.get(field)
    if not isinstance(value, str) or not value:
        raise Cancel(INVALID_MESSAGE, f"{field} must be a string")
    return value


class Verifications:
    """The bot device's verifications (see the module docstring)."""

    def __init__(self, own: Party, own_keys: Callable[[], dict[str, str]], device_key: Callable[[str, str], str | None],
                 master_key: Callable[[str], str | None], clock: Callable[[], float] = time.time) -> None:
        self.own = own
        self._own_keys = own_keys
        """The keys the bot's MAC vouches for: key ID -> public key (its device key, its master key when it has one)."""
        self._device_key = device_key
        """The Ed25519 key of a device of another user, or None when it is not known."""
        self._master_key = master_key
        """The published master key of a user, or None."""
        self.clock = clock
        self.active: dict[tuple[str, str], Verification] = {}
        self.outbox: list[Message] = []
        self.notices: list[tuple[str, Verification]] = []
        """("request" | "sas" | "verified" | "cancelled", verification), in order, for the bot."""

    # --- the bot's side -------------------------------------------------------------

    def request(self, user_id: str, device_ids: list[str]) -> Verification:
        """Ask ``device_ids`` of ``user_id`` to verify, by to-device messages (one transaction for all of them)."""
        now = self.clock()
        verification = Verification(uuid.uuid4().hex, user_id, device_ids[0] if len(device_ids) == 1 else None, True, now)
        verification.asked_devices = list(device_ids)
        self.active[(user_id, verification.transaction_id)] = verification
        content = {"from_device": self.own.device_id, "methods": [SAS_V1], "timestamp": int(now * 1000)}
        for device_id in device_ids:
            self._send(verification, "request", content, device_id)
        return verification

    def request_content(self, user_id: str) -> dict[str, Any]:
        """The ``m.room.message`` that asks ``user_id`` to verify in a room; :meth:`requested_in_room` once it is sent."""
        return {"msgtype": PREFIX + "request", "body": f"{self.own.user_id} asks to verify your keys (emoji, SAS)",
                "from_device": self.own.device_id, "methods": [SAS_V1], "to": user_id}

    def requested_in_room(self, user_id: str, room_id: str, event_id: str) -> Verification:
        """The verification of the request sent in ``room_id`` as ``event_id`` (any device of ``user_id`` may answer)."""
        verification = Verification(event_id, user_id, None, True, self.clock(), room_id)
        self.active[(user_id, event_id)] = verification
        return verification

    def accept(self, verification: Verification) -> None:
        """The bot accepts a request: ready (or, for a start without request, the accept)."""
        if verification.phase is not Phase.REQUESTED or verification.we_requested:
            return
        pending, verification.pending_start = verification.pending_start, None
        self._step(verification, lambda: self._accept_start(verification, pending) if pending is not None else self._ready(verification))

    def _ready(self, verification: Verification) -> None:
        verification.phase = Phase.READY
        self._send(verification, "ready", {"from_device": self.own.device_id, "methods": [SAS_V1]})

    def decline(self, verification: Verification) -> None:
        self.cancel(verification, USER, "the bot declined the verification")

    def confirm(self, verification: Verification) -> None:
        """The strings match: send the MAC of the bot's keys (and finish if the other side's MAC came and matched)."""
        if verification.phase is not Phase.COMPARING or verification.confirmed:
            return
        verification.confirmed = True
        keys, method = verification.keys, verification.mac_method
        assert keys is not None and method is not None and verification.device_id is not None
        other = Party(verification.user_id, verification.device_id)
        own_keys = self._own_keys()
        mac = {key_id: keys.mac(method, key, mac_info(verification.transaction_id, self.own, other, key_id))
               for key_id, key in own_keys.items()}
        key_ids = keys.mac(method, ",".join(sorted(own_keys)), mac_info(verification.transaction_id, self.own, other, "KEY_IDS"))
        self._send(verification, "mac", {"mac": mac, "keys": key_ids})
        if verification.their_mac_checked:
            self._succeed(verification)

    def mismatch(self, verification: Verification) -> None:
        """The strings differ: cancel with ``m.mismatched_sas``."""
        self.cancel(verification, MISMATCHED_SAS, "the short authentication strings do not match")

    def cancel(self, verification: Verification, code: str, reason: str) -> None:
        if verification.finished:
            return
        verification.cancel_code, verification.cancel_reason = code, reason
        for device_id in self._devices_told(verification):
            self._send(verification, "cancel", {"code": code, "reason": reason}, device_id)
        verification._end(Phase.CANCELLED)
        self.notices.append(("cancelled", verification))
        log.info("verification %s with %s %s cancelled: %s (%s)", verification.transaction_id, verification.user_id,
                 verification.device_id, code, reason)

    def expire(self) -> None:
        """Cancel (``m.timeout``) what ran out of time; forget what ended 10 minutes ago."""
        now = self.clock()
        for key, verification in list(self.active.items()):
            if verification.finished:
                if now - verification.last_activity > TIMEOUT:
                    del self.active[key]
            elif now - verification.began > TIMEOUT or now - verification.last_activity > TIMEOUT:
                self.cancel(verification, TIMED_OUT, "the verification took longer than 10 minutes")

    # --- messages from the other side -----------------------------------------------

    def receive(self, sender: str, event_type: str, content: dict[str, Any], room: tuple[str, str, int] | None = None) -> None:
        """Take one ``m.key.verification.*`` message: to-device (in the clear or decrypted), or, with ``room``
        (room ID, transaction ID, ``origin_server_ts``), a room event (the request being an ``m.room.message``)."""
        kind = event_type.removeprefix(PREFIX)
        transaction_id = content.get("transaction_id") if room is None else room[1]
        if not isinstance(transaction_id, str) or not transaction_id:
            log.info("an %s from %s without transaction_id is ignored", event_type, sender)
            return
        verification = self.active.get((sender, transaction_id))
        if verification is not None and verification.room_id != (room[0] if room else None):
            verification = None  # the same ID in another room, or to-device: not this verification
        if kind == "request":
            if verification is None:
                self._begin(sender, transaction_id, content, room, start=False)
            return
        if verification is None:
            if kind == "start" and room is None:
                self._begin(sender, transaction_id, content, room, start=True)
            elif kind not in ("cancel", "start", "done") and room is None:  # in a room, others' verifications are seen too
                self._cancel_unknown(sender, transaction_id, content)
            return
        if verification.finished:
            return  # a late message (the other side's done, or anything after a cancellation)
        verification.last_activity = self.clock()
        steps: dict[str, Callable[[Verification, dict[str, Any]], None]] = {
            "ready": self._on_ready, "start": self._on_start, "accept": self._on_accept, "key": self._on_key,
            "mac": self._on_mac, "done": self._on_done, "cancel": self._on_cancel,
        }
        step = steps.get(kind)
        if step is None:
            log.info("an %s from %s is not a message of SAS verification: ignored", event_type, sender)
            return
        self._step(verification, lambda: step(verification, content))

    def _step(self, verification: Verification, step: Callable[[], None]) -> None:
        try:
            step()
        except Cancel as cancel:
            self.cancel(verification, cancel.code, cancel.reason)

    def _cancel_unknown(self, sender: str, transaction_id: str, content: dict[str, Any]) -> None:
        """A to-device message for a transaction the bot does not know: cancel it on the device that sent it (all, if unnamed)."""
        device_id = content.get("from_device") if isinstance(content.get("from_device"), str) else "*"
        self.outbox.append(Message(sender, device_id, PREFIX + "cancel", {
            "transaction_id": transaction_id, "code": UNKNOWN_TRANSACTION, "reason": "the bot knows no such verification"}))

    def _begin(self, sender: str, transaction_id: str, content: dict[str, Any], room: tuple[str, str, int] | None,
               start: bool) -> None:
        """A request, or a start without request, from another device: a new verification for the bot to accept."""
        device_id = content.get("from_device")
        if not isinstance(device_id, str) or not device_id:
            log.info("a verification from %s without from_device is ignored", sender)
            return
        now = self.clock()
        verification = Verification(transaction_id, sender, device_id, False, now, room[0] if room else None)
        self.active[(sender, transaction_id)] = verification
        if not start:
            timestamp = content.get("timestamp") if room is None else room[2]
            if not isinstance(timestamp, int) or isinstance(timestamp, bool) or \
                    not now - TIMEOUT <= timestamp / 1000 <= now + FUTURE_LEEWAY:
                log.info("a verification request from %s %s is too old or has no timestamp: ignored", sender, device_id)
                verification._end(Phase.CANCELLED)
                return
            methods = content.get("methods")
            if not isinstance(methods, list) or SAS_V1 not in methods:
                log.info("a verification request from %s %s offers no method the bot knows (%s): ignored", sender, device_id, methods)
                verification._end(Phase.CANCELLED)
                return
        if self._device_key(sender, device_id) is None:
            self.cancel(verification, USER_MISMATCH, f"{device_id} is not a device of {sender}")
            return
        others = [v for v in self.active.values()
                  if v is not verification and (v.user_id, v.device_id) == (sender, device_id) and not v.finished]
        if others:
            for other in [*others, verification]:
                self.cancel(other, UNEXPECTED_MESSAGE, "the device began another verification before this one ended")
            return
        if start:
            verification.pending_start = content
        self.notices.append(("request", verification))

    def _on_ready(self, verification: Verification, content: dict[str, Any]) -> None:
        if not verification.we_requested or verification.phase is not Phase.REQUESTED:
            raise Cancel(UNEXPECTED_MESSAGE, "a ready was not expected now")
        device_id = _string(content, "from_device")
        if verification.room_id is None and device_id not in verification.asked_devices:
            raise Cancel(USER_MISMATCH, f"{device_id} was not asked to verify")
        if self._device_key(verification.user_id, device_id) is None:
            raise Cancel(USER_MISMATCH, f"{device_id} is not a device of {verification.user_id}")
        if SAS_V1 not in _strings(content, "methods"):
            verification.device_id = device_id
            raise Cancel(UNKNOWN_METHOD, "the device is ready for no method the bot knows")
        verification.device_id = device_id
        for other in verification.asked_devices if verification.room_id is None else []:
            if other != device_id:
                self._send(verification, "cancel", {"code": ACCEPTED, "reason": "another device accepted"}, other)
        verification.start_content = {"from_device": self.own.device_id, "method": SAS_V1,
                                      "key_agreement_protocols": [KEY_AGREEMENT], "hashes": [HASH],
                                      "message_authentication_codes": list(MAC_METHODS),
                                      "short_authentication_string": list(SAS_METHODS),
                                      **_reference(verification.transaction_id, verification.room_id)}
        verification.we_started = True
        verification.phase = Phase.STARTED
        self._send(verification, "start", verification.start_content)

    def _on_start(self, verification: Verification, content: dict[str, Any]) -> None:
        if verification.phase is Phase.STARTED and verification.we_started:
            if content.get("method") != SAS_V1:
                raise Cancel(UNEXPECTED_MESSAGE, "both devices started, with different methods")
            ours = (self.own.user_id, self.own.device_id)
            if ours < (verification.user_id, str(verification.device_id)):
                return  # both started: the start of the smaller user (then device) ID counts, this one is ignored
            verification.we_started = False
            verification.start_content = None
        elif verification.phase is not Phase.READY:
            raise Cancel(UNEXPECTED_MESSAGE, "a start was not expected now")
        if _string(content, "from_device") != verification.device_id:
            raise Cancel(USER_MISMATCH, "the start comes from another device than the one verified")
        self._accept_start(verification, content)

    def _accept_start(self, verification: Verification, content: dict[str, Any]) -> None:
        if content.get("method") != SAS_V1:
            raise Cancel(UNKNOWN_METHOD, f"the method {content.get('method')!r} is not one the bot knows")
        agreements, hashes = _strings(content, "key_agreement_protocols"), _strings(content, "hashes")
        macs, strings = _strings(content, "message_authentication_codes"), _strings(content, "short_authentication_string")
        mac_method = next((method for method in MAC_METHODS if method in macs), None)
        sas_methods = [method for method in SAS_METHODS if method in strings]
        if KEY_AGREEMENT not in agreements or HASH not in hashes or mac_method is None or not sas_methods:
            raise Cancel(UNKNOWN_METHOD, "no key agreement, hash, MAC or string in common")
        verification.start_content, verification.we_started = content, False
        verification.mac_method, verification.sas_methods = mac_method, sas_methods
        verification.keys = SasKeys()
        verification.phase = Phase.ACCEPTED
        self._send(verification, "accept", {
            "method": SAS_V1, "key_agreement_protocol": KEY_AGREEMENT, "hash": HASH, "message_authentication_code": mac_method,
            "short_authentication_string": sas_methods, "commitment": commitment(verification.keys.public_key, content)})

    def _on_accept(self, verification: Verification, content: dict[str, Any]) -> None:
        if verification.phase is not Phase.STARTED or not verification.we_started:
            raise Cancel(UNEXPECTED_MESSAGE, "an accept was not expected now")
        strings = _strings(content, "short_authentication_string")
        mac_method = _string(content, "message_authentication_code")
        if content.get("key_agreement_protocol") != KEY_AGREEMENT or content.get("hash") != HASH or \
                mac_method not in MAC_METHODS or not set(strings) <= set(SAS_METHODS):
            raise Cancel(UNKNOWN_METHOD, "the accept chose what the start did not offer")
        verification.their_commitment = _string(content, "commitment")
        verification.mac_method, verification.sas_methods = mac_method, [m for m in SAS_METHODS if m in strings]
        verification.keys = SasKeys()
        verification.phase = Phase.ACCEPTED
        self._send(verification, "key", {"key": verification.keys.public_key})

    def _on_key(self, verification: Verification, content: dict[str, Any]) -> None:
        if verification.phase is not Phase.ACCEPTED or verification.their_key is not None:
            raise Cancel(UNEXPECTED_MESSAGE, "a key was not expected now")
        their_key = _string(content, "key")
        keys = verification.keys
        assert keys is not None and verification.start_content is not None and verification.device_id is not None
        if verification.we_started and commitment(their_key, verification.start_content) != verification.their_commitment:
            raise Cancel(MISMATCHED_COMMITMENT, "the key does not match the commitment of the accept")
        try:
            keys.agree(their_key)
        except SasError as exc:
            raise Cancel(INVALID_MESSAGE, str(exc)) from None
        verification.their_key = their_key
        if not verification.we_started:
            self._send(verification, "key", {"key": keys.public_key})
        other = Party(verification.user_id, verification.device_id)
        if verification.we_started:
            info = sas_info(verification.transaction_id, self.own, keys.public_key, other, their_key)
        else:
            info = sas_info(verification.transaction_id, other, their_key, self.own, keys.public_key)
        verification.short_auth_string = keys.short_auth_string(info)
        verification.phase = Phase.COMPARING
        self.notices.append(("sas", verification))
        early, verification.early_mac = verification.early_mac, None
        if early is not None:
            self._on_mac(verification, early)

    def _on_mac(self, verification: Verification, content: dict[str, Any]) -> None:
        """The other side's MAC of its keys. One that comes while the bot, having started, still awaits
        the other side's key is kept and checked once the key is in: a client may send its key and, as
        soon as its user confirms, its MAC, by two requests that reach the server in either order."""
        if verification.phase is Phase.ACCEPTED and verification.we_started and verification.early_mac is None:
            verification.early_mac = content
            return
        if verification.phase is not Phase.COMPARING or verification.their_mac_checked:
            raise Cancel(UNEXPECTED_MESSAGE, "a MAC was not expected now")
        macs = content.get("mac")
        if not isinstance(macs, dict) or not macs or not all(isinstance(tag, str) for tag in macs.values()):
            raise Cancel(INVALID_MESSAGE, "mac must be an object of strings")
        key_ids_tag = _string(content, "keys")
        keys, method = verification.keys, verification.mac_method
        assert keys is not None and method is not None and verification.device_id is not None
        other = Party(verification.user_id, verification.device_id)
        info = lambda key_id: mac_info(verification.transaction_id, other, self.own, key_id)  # noqa: E731
        if not keys.mac_matches(method, ",".join(sorted(macs)), info("KEY_IDS"), key_ids_tag):
            raise Cancel(KEY_MISMATCH, "the MAC of the key list does not match")
        known = {f"ed25519:{verification.device_id}": self._device_key(verification.user_id, verification.device_id)}
        master = self._master_key(verification.user_id)
        if master is not None:
            known[f"ed25519:{master}"] = master
        proved: dict[str, str] = {}
        for key_id, tag in macs.items():
            key = known.get(key_id)
            if key is None:
                continue  # a key the bot does not know (the spec verifies the keys one has a copy of)
            if not keys.mac_matches(method, key, info(key_id), tag):
                raise Cancel(KEY_MISMATCH, f"the MAC of {key_id} does not match")
            proved[key_id] = key
        if f"ed25519:{verification.device_id}" not in proved:
            raise Cancel(KEY_MISMATCH, "the MAC does not cover the device's key")
        verification.verified_keys = proved
        verification.their_mac_checked = True
        if verification.confirmed:
            self._succeed(verification)

    def _succeed(self, verification: Verification) -> None:
        self._send(verification, "done", {})
        verification._end(Phase.DONE)
        self.notices.append(("verified", verification))
        log.info("verification %s: device %s of %s is verified", verification.transaction_id, verification.device_id,
                 verification.user_id)

    def _on_done(self, verification: Verification, content: dict[str, Any]) -> None:
        """The other side's done, before the bot has finished. Once the bot has sent its MAC, a done that came
        before the other side's MAC is let pass: a client may send its MAC and its done at once, and the two
        requests may reach the server in either order (in a room, the timeline then shows the done first);
        the MAC still decides. A done before the bot's own MAC cannot answer it: unexpected."""
        if verification.phase is not Phase.COMPARING or not verification.confirmed:
            raise Cancel(UNEXPECTED_MESSAGE, "a done came before the bot sent its MAC")

    def _on_cancel(self, verification: Verification, content: dict[str, Any]) -> None:
        code = content.get("code")
        verification.cancel_code = code if isinstance(code, str) else USER
        verification.cancel_reason = content.get("reason") if isinstance(content.get("reason"), str) else None
        verification.cancelled_by_them = True
        if verification.device_id is None and verification.room_id is None:  # asked to every device, one refused: tell the others
            for device_id in verification.asked_devices:
                self._send(verification, "cancel", {"code": USER, "reason": "the request was declined"}, device_id)
        verification._end(Phase.CANCELLED)
        self.notices.append(("cancelled", verification))
        log.info("verification %s cancelled by %s: %s (%s)", verification.transaction_id, verification.user_id,
                 verification.cancel_code, verification.cancel_reason)

    @staticmethod
    def _devices_told(verification: Verification) -> list[str | None]:
        """Where a cancellation goes: the device verified, or every device asked (a room: the room, once)."""
        if verification.device_id is not None or verification.room_id is not None:
            return [verification.device_id]
        return list(verification.asked_devices)

    def _send(self, verification: Verification, kind: str, content: dict[str, Any], device_id: str | None = None) -> None:
        target = device_id if device_id is not None else verification.device_id
        assert target is not None or verification.room_id is not None
        verification.last_activity = self.clock()
        self.outbox.append(Message(verification.user_id, target or "", PREFIX + kind,
                                   {**content, **_reference(verification.transaction_id, verification.room_id)},
                                   verification.room_id))


def _reference(transaction_id: str, room: object) -> dict[str, Any]:
    """How a message names its verification: ``transaction_id`` (to-device), or a reference to the request (in a room)."""
    if room is None:
        return {"transaction_id": transaction_id}
    return {"m.relates_to": {"rel_type": "m.reference", "event_id": transaction_id}}
