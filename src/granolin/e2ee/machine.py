"""End-to-end encryption for a bot: the device's keys, decrypting what arrives, encrypting what it sends.

``Encryption`` joins the pieces (the Olm account, the Megolm sessions, the
device registry, the cross-signing keys, all kept in the crypto store) to the
client's requests:

- before each sync, the device keys are uploaded once with one-time and
  fallback keys, and the bot cross-signs its device;
- each sync's to-device events are decrypted (``m.room_key`` adds a room key,
  ``m.room_key_request`` from one of the bot's own verified devices is
  answered with ``m.forwarded_room_key``), ``device_lists`` marks whose devices
  to look up again, and the one-time keys are topped up from
  ``device_one_time_keys_count``;
- ``m.room.encrypted`` events are decrypted before dispatch; one whose room key
  has not arrived is held (in the store) and handed over when its
  ``m.room_key`` comes, or reported after ``undecryptable_timeout`` seconds;
- a send into an encrypted room is encrypted with the room's outbound Megolm
  session, rotated when it must be, after sharing its key over Olm with every
  device of every joined member (and invited ones unless the history
  visibility is "joined"), claiming one-time keys for new devices.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GranolinError, MatrixError
from ..events import EncryptionInfo, TimelineEvent, timeline_event
from ..rooms import Room
from ..transport import CLIENT_V3, log, quote_segment
from .cross_signing import CrossSigningKeys
from .devices import Device, DeviceRegistry
from .megolm import MegolmError, MegolmSessions, OutboundSession
from .olm import MEGOLM, SIGNED_CURVE25519, OlmAccount, OlmError, signature_is_valid
from .store import CryptoStore
from .verification import Verification
from .verifying import Verifier, is_verification

if TYPE_CHECKING:
    from ..client import Client

TO_DEVICE_CHUNK = 100
"""Devices per /sendToDevice request when a room key is shared."""


class Encryption:
    """The bot device's end-to-end encryption (see the module docstring)."""

    def __init__(self, client: Client, store_path: Path | None, crypto_key: bytes | str | None) -> None:
        self.client = client
        self.store_path = store_path
        self._crypto_key = crypto_key
        self.store: CryptoStore | None = None
        self._account: OlmAccount | None = None
        self._megolm: MegolmSessions | None = None
        self._devices: DeviceRegistry | None = None
        self._cross_signing: CrossSigningKeys | None = None
        self._verifier: Verifier | None = None
        self._cross_signing_tried = False
        self._held: dict[str, dict[str, Any]] = {}
        self._decrypted: list[TimelineEvent] = []
        self._failed: list[tuple[TimelineEvent, str]] = []
        self._members_loaded: set[str] = set()
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._olm_lock = asyncio.Lock()

    # --- opening and publishing -------------------------------------------------

    @property
    def account(self) -> OlmAccount:
        """The device's Olm account (the crypto store is opened on first use)."""
        self.open()
        assert self._account is not None
        return self._account

    @property
    def devices(self) -> DeviceRegistry:
        self.open()
        assert self._devices is not None
        return self._devices

    @property
    def megolm(self) -> MegolmSessions:
        self.open()
        assert self._megolm is not None
        return self._megolm

    @property
    def cross_signing(self) -> CrossSigningKeys:
        self.open()
        assert self._cross_signing is not None
        return self._cross_signing

    @property
    def verifier(self) -> Verifier:
        """Interactive (SAS) verification with other devices (see :mod:`granolin.e2ee.verifying`)."""
        if self._verifier is None:
            self._verifier = Verifier(self)
        return self._verifier

    @property
    def identity_keys(self) -> dict[str, str]:
        """The device's public identity keys (the Ed25519 one is what a person compares to verify it)."""
        return {"curve25519": self.account.curve25519, "ed25519": self.account.ed25519}

    def open(self) -> None:
        """Open the crypto store (no request): the account, sessions and devices it holds.

        A store made for another user or device (the bot logged in anew) is moved
        aside (``<store>.<old device ID>.old``) and a new one begins.
        """
        if self._account is not None:
            return
        user_id, device_id = self.client.user_id, self.client.device_id
        if user_id is None or device_id is None:
            raise GranolinError("encryption needs the user and device IDs: log in first")
        store = CryptoStore(self.store_path, self._crypto_key)
        owner = store.get("meta", "owner")
        if owner is not None and owner != {"user_id": user_id, "device_id": device_id}:
            store.close()
            assert self.store_path is not None
            aside = self.store_path.with_name(f"{self.store_path.name}.{owner['device_id']}.old")
            os.replace(self.store_path, aside)
            log.warning("the crypto store belonged to device %s of %s; it was moved to %s and a new one begins",
                        owner["device_id"], owner["user_id"], aside)
            store = CryptoStore(self.store_path, self._crypto_key)
        with store.transaction():
            store.put("meta", "owner", {"user_id": user_id, "device_id": device_id})
            self._account = OlmAccount(store, user_id, device_id)
        self.store = store
        self._megolm = MegolmSessions(store)
        self._devices = DeviceRegistry(store)
        self._cross_signing = CrossSigningKeys(store, user_id)
        self._held = store.load("undecrypted")

    async def prepare(self) -> None:
        """Open the store, upload the device's keys the first time, and cross-sign the device."""
        self.open()
        account = self.account
        if not account.published:
            body = {"device_keys": account.device_keys(), "one_time_keys": account.one_time_keys(account.one_time_key_target),
                    "fallback_keys": account.fallback_key()}
            account.save()  # the keys exist before the server has them: a retry sends the same ones
            await self.client.api("POST", f"{CLIENT_V3}/keys/upload", json=body)
            account.mark_published()
            log.info("device %s published its encryption keys (ed25519 %s)", account.device_id, account.ed25519)
        if not self._cross_signing_tried:
            try:
                await self._bootstrap_cross_signing()
            except (MatrixError, GranolinError) as exc:  # encryption works without it: warn, try again at the next start
                log.warning("cross-signing of device %s was not set up: %s", account.device_id, exc)
            self._cross_signing_tried = True  # (a network error above is raised instead: tried again at the next sync)

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()
        if self.store is not None:
            self.store.close()

    # --- cross-signing ----------------------------------------------------------

    async def _bootstrap_cross_signing(self) -> None:
        keys = self.cross_signing
        if keys.uploaded:
            return
        if keys.master is None:
            await self._query([self.account.user_id])
            if self.devices.master_key(self.account.user_id) is not None:
                log.warning("%s already has cross-signing keys that this bot does not hold: its device stays "
                            "un-cross-signed (encryption.reset_cross_signing() replaces them)", self.account.user_id)
                return
            keys.generate()
        await self._upload_cross_signing()

    async def reset_cross_signing(self) -> None:
        """Make new master and self-signing keys, upload them (with the password) and sign this device."""
        self.cross_signing.generate()
        await self._upload_cross_signing()

    async def _upload_cross_signing(self) -> None:
        keys = self.cross_signing
        await self._with_password(f"{CLIENT_V3}/keys/device_signing/upload", keys.upload_body())
        await self._upload_signature(keys.sign_device(self.account.device_keys()))
        keys.mark_uploaded()
        log.info("%s cross-signed device %s (master key %s)", self.account.user_id, self.account.device_id, keys.master_public)

    async def _upload_signature(self, signed_device: dict[str, Any]) -> None:
        body = {signed_device["user_id"]: {signed_device["device_id"]: signed_device}}
        answer = await self.client.api("POST", f"{CLIENT_V3}/keys/signatures/upload", json=body)
        if answer.get("failures"):
            raise GranolinError(f"the server refused the signature of device {signed_device['device_id']}: {answer['failures']}")

    async def _with_password(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with user-interactive auth by the bot's password when the server asks for it."""
        try:
            return await self.client.api("POST", path, json=body)
        except MatrixError as exc:
            flows = exc.body.get("flows") if isinstance(exc.body.get("flows"), list) else []
            if exc.status != 401 or "session" not in exc.body:
                raise
            if not any(isinstance(f, dict) and f.get("stages") == ["m.login.password"] for f in flows):
                raise GranolinError(f"{path} asks for an authentication other than the password") from None
            login = self.client._password_login
            if login is None:
                raise GranolinError(f"{path} asks for the password, and the bot was not given it (run(user, password))") from None
            auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": login[0]}, "password": login[1],
                    "session": exc.body["session"]}
            return await self.client.api("POST", path, json={**body, "auth": auth})

    # --- trust ------------------------------------------------------------------

    def is_verified(self, device: Device) -> bool:
        """The bot's own device; a device it was told to trust or verified interactively; one of its user's
        devices signed by its self-signing key; a device cross-signed by a master key verified interactively."""
        account = self.account
        if device.user_id == account.user_id and device.device_id == account.device_id:
            return device.ed25519 == account.ed25519
        if self.devices.is_trusted(device):
            return True
        if device.user_id == account.user_id:
            return self.cross_signing.signed_device(device.keys)
        master = self.devices.trusted_master(device.user_id)
        return master is not None and self.devices.cross_signed(device, master)

    async def trust_device(self, user_id: str, device_id: str) -> Device:
        """Trust a device (after checking its Ed25519 key with its owner, out of band).

        A device of the bot's own user is also cross-signed with the bot's
        self-signing key, so that other clients see it verified too.
        """
        await self._query([user_id])
        device = self.devices.device(user_id, device_id)
        if device is None:
            raise GranolinError(f"{user_id} has no device {device_id} with valid keys")
        await self._trust(device)
        return device

    async def _trust(self, device: Device) -> None:
        self.devices.trust(device)
        if device.user_id == self.account.user_id and self.cross_signing.uploaded:
            await self._upload_signature(self.cross_signing.sign_device(device.keys))

    async def verify(self, user_id: str, device_id: str | None = None, room_id: str | None = None) -> Verification:
        """Begin a SAS verification with a device of ``user_id`` (all of them when ``device_id`` is None; in
        ``room_id`` when given). The client's ``on_sas`` hook compares the strings; ``await verification.wait()``
        tells how it ended.
        """
        return await self.verifier.request(user_id, device_id, room_id)

    async def trust_verified(self, verification: Verification) -> None:
        """Trust what a successful verification proved: the device, and the master key of another user when its MAC covered it."""
        device = self.devices.device(verification.user_id, str(verification.device_id))
        if device is None or f"ed25519:{device.device_id}" not in verification.verified_keys \
                or verification.verified_keys[f"ed25519:{device.device_id}"] != device.ed25519:
            return
        await self._trust(device)
        master = self.devices.published_master_key(device.user_id)
        if device.user_id != self.account.user_id and master is not None and f"ed25519:{master}" in verification.verified_keys:
            self.devices.trust_master(device.user_id, master)

    # --- devices and Olm sessions -----------------------------------------------

    async def _query(self, user_ids: Iterable[str]) -> None:
        users = sorted(set(user_ids))
        if users:
            answer = await self.client.api("POST", f"{CLIENT_V3}/keys/query", json={"device_keys": {u: [] for u in users}})
            self.devices.apply_query(answer, users)

    async def _refresh(self, user_ids: Iterable[str]) -> None:
        """Query the devices of those of ``user_ids`` not known or outdated (one request)."""
        await self._query(self.devices.needing_query(user_ids))

    async def _establish_sessions(self, devices: list[Device]) -> None:
        """Claim a one-time key of each device the bot has no Olm session with, and start one."""
        async with self._olm_lock:
            account = self.account
            needed = [d for d in devices if not account.has_session(d.curve25519)]
            if not needed:
                return
            wanted: dict[str, dict[str, str]] = {}
            for device in needed:
                wanted.setdefault(device.user_id, {})[device.device_id] = SIGNED_CURVE25519
            answer = await self.client.api("POST", f"{CLIENT_V3}/keys/claim", json={"one_time_keys": wanted})
            claimed = answer.get("one_time_keys") if isinstance(answer.get("one_time_keys"), dict) else {}
            with self.account.store.transaction():
                for device in needed:
                    keys = (claimed.get(device.user_id) or {}).get(device.device_id) or {}
                    good = [key["key"] for key_id, key in keys.items()
                            if key_id.startswith(f"{SIGNED_CURVE25519}:") and isinstance(key, dict) and isinstance(key.get("key"), str)
                            and signature_is_valid(key, device.user_id, f"ed25519:{device.device_id}", device.ed25519)]
                    if good:
                        account.start_session(device.curve25519, good[0])
                    else:
                        log.warning("no usable one-time key for device %s of %s: it gets no room key", device.device_id, device.user_id)

    async def _send_to_device(self, event_type: str, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Send (user ID, device ID, content) messages, ``TO_DEVICE_CHUNK`` per request."""
        for start in range(0, len(messages), TO_DEVICE_CHUNK):
            body: dict[str, dict[str, Any]] = {}
            for user_id, device_id, content in messages[start : start + TO_DEVICE_CHUNK]:
                body.setdefault(user_id, {})[device_id] = content
            path = f"{CLIENT_V3}/sendToDevice/{quote_segment(event_type)}/{uuid.uuid4().hex}"
            await self.client._retrying(lambda path=path, body=body: self.client.api("PUT", path, json={"messages": body}))

    async def _send_olm(self, devices: list[Device], event_type: str, content: dict[str, Any]) -> list[Device]:
        """Encrypt ``content`` to each device over Olm and send it; returns the devices reached."""
        await self._establish_sessions(devices)
        account = self.account
        messages = []
        with account.store.transaction():
            for device in devices:
                if account.has_session(device.curve25519):
                    messages.append((device, account.encrypt(device.recipient, event_type, content)))
        await self._send_to_device("m.room.encrypted", [(device.user_id, device.device_id, sent) for device, sent in messages])
        return [device for device, _ in messages]

    # --- receiving --------------------------------------------------------------

    async def receive_sync(self, response: Mapping[str, Any]) -> None:
        """Take a sync's to-device events, device list changes and key counts (before its rooms are dispatched)."""
        account = self.account
        new_sessions: set[tuple[str, str]] = set()
        key_requests: list[dict[str, Any]] = []
        verifying: list[tuple[str, str, dict[str, Any]]] = []
        with account.store.transaction():
            for raw in (response.get("to_device") or {}).get("events") or []:
                if not isinstance(raw, dict) or not isinstance(raw.get("content"), dict) or not isinstance(raw.get("sender"), str):
                    continue
                if raw.get("type") == "m.room.encrypted":
                    self._receive_olm(raw["sender"], raw["content"], new_sessions, verifying)
                elif raw.get("type") == "m.room_key_request":
                    key_requests.append(raw)
                elif is_verification(raw.get("type")):
                    verifying.append((raw["sender"], raw["type"], raw["content"]))
            lists = response.get("device_lists") if isinstance(response.get("device_lists"), dict) else {}
            self.devices.changed(user for user in lists.get("changed") or [] if isinstance(user, str))
            self.devices.left(user for user in lists.get("left") or [] if isinstance(user, str) and user != account.user_id)
            self._watch_rooms(response)
        await self._top_up(response)
        if new_sessions:
            await self._retry_held(new_sessions)
        for request in key_requests:
            await self._answer_key_request(request)
        await self.verifier.receive(verifying)

    def _receive_olm(self, sender: str, content: dict[str, Any], new_sessions: set[tuple[str, str]],
                     verifying: list[tuple[str, str, dict[str, Any]]]) -> None:
        try:
            sender_key, payload = self.account.decrypt(sender, content)
        except OlmError as exc:
            log.info("a to-device message from %s was not decrypted: %s", sender, exc)
            return
        known = self.devices.by_curve25519(sender, sender_key)
        if known is not None and known.ed25519 != payload["keys"]["ed25519"]:
            log.warning("an Olm message from %s claims another Ed25519 key than its device %s: ignored", sender, known.device_id)
            return
        inner = payload["content"]
        if payload.get("type") == "m.room_key":
            room_id, session_id, session_key = inner.get("room_id"), inner.get("session_id"), inner.get("session_key")
            if inner.get("algorithm") != MEGOLM or not all(isinstance(v, str) for v in (room_id, session_id, session_key)):
                log.info("an m.room_key from %s is not a Megolm key: ignored", sender)
            elif self.megolm.add_inbound(room_id, session_id, session_key, sender_key, payload["keys"]["ed25519"]):
                new_sessions.add((room_id, session_id))
        elif is_verification(payload.get("type")) and isinstance(inner, dict):
            verifying.append((sender, payload["type"], inner))
        elif payload.get("type") == "m.forwarded_room_key":
            log.info("an m.forwarded_room_key from %s is ignored (the bot requests no room keys)", sender)

    def _watch_rooms(self, response: Mapping[str, Any]) -> None:
        """Rotate the room key where someone left; look the members up again after a limited timeline."""
        for room_id, section in ((response.get("rooms") or {}).get("join") or {}).items():
            if not isinstance(section, dict):
                continue
            timeline = section.get("timeline") if isinstance(section.get("timeline"), dict) else {}
            if timeline.get("limited"):
                self._members_loaded.discard(room_id)
                self.megolm.discard_outbound(room_id)
                continue
            state = (section.get("state") or {}).get("events") or []
            for raw in [*state, *(timeline.get("events") or [])]:
                if isinstance(raw, dict) and raw.get("type") == "m.room.member" and \
                        (raw.get("content") or {}).get("membership") in ("leave", "ban"):
                    self.megolm.discard_outbound(room_id)
        for room_id in (response.get("rooms") or {}).get("leave") or {}:
            self._members_loaded.discard(room_id)
            self.megolm.discard_outbound(room_id)

    async def _top_up(self, response: Mapping[str, Any]) -> None:
        account = self.account
        counts = response.get("device_one_time_keys_count")
        fallback_types = response.get("device_unused_fallback_key_types")
        body: dict[str, Any] = {}
        if isinstance(counts, dict):
            count = counts.get(SIGNED_CURVE25519, 0)
            if isinstance(count, int) and count < account.one_time_key_target:
                body["one_time_keys"] = account.one_time_keys(account.one_time_key_target - count)
        if isinstance(fallback_types, list) and SIGNED_CURVE25519 not in fallback_types:
            body["fallback_keys"] = account.fallback_key()
        if body:
            account.save()
            await self.client.api("POST", f"{CLIENT_V3}/keys/upload", json=body)
            account.mark_published()

    async def _answer_key_request(self, raw: dict[str, Any]) -> None:
        """Forward a room key to one of the bot's own verified devices that asked for it."""
        content, account = raw["content"], self.account
        requested = content.get("body") if isinstance(content.get("body"), dict) else {}
        device_id = content.get("requesting_device_id")
        if content.get("action") != "request" or raw["sender"] != account.user_id or device_id == account.device_id:
            return
        if not isinstance(device_id, str) or requested.get("algorithm") != MEGOLM:
            return
        session = self.megolm.inbound(str(requested.get("room_id")), str(requested.get("session_id")))
        if session is None:
            log.info("device %s asked for a room key the bot does not have", device_id)
            return
        device = self.devices.device(account.user_id, device_id)
        if device is None:
            await self._query([account.user_id])
            device = self.devices.device(account.user_id, device_id)
        if device is None or not self.is_verified(device):
            log.info("a room key request from device %s of %s is refused: the device is not verified", device_id, account.user_id)
            return
        forwarded = {
            "algorithm": MEGOLM, "room_id": session.room_id, "session_id": session.session_id,
            "session_key": self.megolm.export(session), "sender_key": session.sender_key,
            "sender_claimed_ed25519_key": session.signing_key, "forwarding_curve25519_key_chain": [],
        }
        if await self._send_olm([device], "m.forwarded_room_key", forwarded):
            log.info("forwarded room key %s to device %s", session.session_id, device_id)

    # --- decrypting room events -------------------------------------------------

    async def decrypt_timelines(self, response: Mapping[str, Any]) -> dict[str, TimelineEvent | None]:
        """Decrypt the ``m.room.encrypted`` events of the joined rooms' timelines.

        Returns event ID -> the decrypted event, or None for an event held until
        its room key arrives (or reported, when it cannot be decrypted at all).
        """
        found: list[tuple[str, dict[str, Any]]] = []
        for room_id, section in ((response.get("rooms") or {}).get("join") or {}).items():
            for raw in ((section or {}).get("timeline") or {}).get("events") or []:
                if isinstance(raw, dict) and raw.get("type") == "m.room.encrypted" and isinstance(raw.get("event_id"), str):
                    found.append((room_id, raw))
        if not found:
            return {}
        await self._refresh({str(raw.get("sender")) for _, raw in found})
        results: dict[str, TimelineEvent | None] = {}
        with self.account.store.transaction():
            for room_id, raw in found:
                outcome = self.decrypt(raw, room_id)
                if isinstance(outcome, TimelineEvent):
                    results[raw["event_id"]] = outcome
                    continue
                results[raw["event_id"]] = None
                if outcome is None:
                    self._hold(room_id, raw)
                else:
                    self._failed.append((timeline_event(raw, room_id), outcome))
        return results

    def decrypt(self, raw: dict[str, Any], room_id: str) -> TimelineEvent | str | None:
        """One room event: decrypted, None when its room key is missing, or why it cannot be decrypted."""
        content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
        if content.get("algorithm") != MEGOLM:
            return f"the algorithm {content.get('algorithm')!r} is not supported"
        session_id, ciphertext = content.get("session_id"), content.get("ciphertext")
        if not isinstance(session_id, str) or not isinstance(ciphertext, str):
            return "the event has no session ID or ciphertext"
        session = self.megolm.inbound(room_id, session_id)
        if session is None:
            return None
        try:
            payload = self.megolm.decrypt(session, str(raw.get("event_id")), ciphertext)
        except MegolmError as exc:
            return str(exc)
        clear_content = {k: v for k, v in payload["content"].items() if k != "m.relates_to"}
        if isinstance(content.get("m.relates_to"), dict):
            clear_content["m.relates_to"] = content["m.relates_to"]  # the cleartext relation is the one that counts
        clear = {key: raw[key] for key in ("event_id", "sender", "origin_server_ts", "unsigned") if key in raw}
        clear |= {"type": payload["type"], "content": clear_content, "room_id": room_id}
        return timeline_event(clear, room_id, self._info(raw, session_id, session.sender_key, session.signing_key))

    def _info(self, raw: dict[str, Any], session_id: str, sender_key: str, signing_key: str) -> EncryptionInfo:
        account, sender = self.account, str(raw.get("sender"))
        if sender == account.user_id and (sender_key, signing_key) == (account.curve25519, account.ed25519):
            return EncryptionInfo(MEGOLM, session_id, sender_key, account.device_id, True, raw)
        device = self.devices.by_curve25519(sender, sender_key)
        if device is None or device.ed25519 != signing_key:
            return EncryptionInfo(MEGOLM, session_id, sender_key, None, False, raw)
        return EncryptionInfo(MEGOLM, session_id, sender_key, device.device_id, self.is_verified(device), raw)

    def _hold(self, room_id: str, raw: dict[str, Any]) -> None:
        held = {"room_id": room_id, "event": raw, "since": time.time()}
        self._held[raw["event_id"]] = held
        self.account.store.put("undecrypted", raw["event_id"], held)
        log.info("event %s in %s waits for its room key", raw["event_id"], room_id)

    async def _retry_held(self, sessions: set[tuple[str, str]]) -> None:
        ready = [(event_id, held) for event_id, held in self._held.items()
                 if (held["room_id"], held["event"]["content"].get("session_id")) in sessions]
        if not ready:
            return
        await self._refresh({str(held["event"].get("sender")) for _, held in ready})
        with self.account.store.transaction():
            for event_id, held in ready:
                outcome = self.decrypt(held["event"], held["room_id"])
                del self._held[event_id]
                self.account.store.delete("undecrypted", event_id)
                if isinstance(outcome, TimelineEvent):
                    self._decrypted.append(outcome)
                else:
                    self._failed.append((timeline_event(held["event"], held["room_id"]), outcome or "the room key does not decrypt it"))

    def take_decrypted(self) -> list[TimelineEvent]:
        """The held events whose room key arrived since the last call, in the order they came."""
        taken, self._decrypted = self._decrypted, []
        return taken

    def take_undecryptable(self, timeout: float) -> list[tuple[TimelineEvent, str]]:
        """The events that cannot be decrypted, and those held longer than ``timeout`` seconds, with the reason."""
        taken, self._failed = self._failed, []
        limit = time.time() - timeout
        expired = [event_id for event_id, held in self._held.items() if held["since"] <= limit]
        if expired:
            with self.account.store.transaction():
                for event_id in expired:
                    held = self._held.pop(event_id)
                    self.account.store.delete("undecrypted", event_id)
                    taken.append((timeline_event(held["event"], held["room_id"]), f"its room key did not arrive within {timeout:g} s"))
        return taken

    # --- sending ----------------------------------------------------------------

    async def encrypt(self, room: Room, event_type: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """The ``m.room.encrypted`` content of an event for ``room``, after sharing the room key as needed."""
        settings = room.encryption or {}
        if settings.get("algorithm") != MEGOLM:
            raise GranolinError(f"room {room.room_id} is encrypted with {settings.get('algorithm')!r}, which granolin does not support")
        lock = self._room_locks.setdefault(room.room_id, asyncio.Lock())
        async with lock:
            account = self.account
            visibility = room.state.get("m.room.history_visibility", {}).get("history_visibility", "shared")
            devices = await self._recipients(room, visibility)
            shared_history = visibility in ("shared", "world_readable")
            session = self.megolm.outbound(room.room_id)
            if session is not None and self._must_rotate(session, settings, shared_history, devices):
                self.megolm.discard_outbound(room.room_id)
                session = None
            if session is None:
                session = self.megolm.new_outbound(room.room_id, shared_history, account.curve25519, account.ed25519)
            missing = [d for d in devices if not session.is_shared_with(d.user_id, d.device_id, d.ed25519)]
            if missing:
                await self._share(session, missing)
            ciphertext = self.megolm.encrypt(session, event_type, {k: v for k, v in content.items() if k != "m.relates_to"})
        encrypted = {"algorithm": MEGOLM, "sender_key": account.curve25519, "device_id": account.device_id,
                     "session_id": session.session_id, "ciphertext": ciphertext}
        if isinstance(content.get("m.relates_to"), dict):
            encrypted["m.relates_to"] = content["m.relates_to"]  # in the clear, so the server can relate the events
        return encrypted

    async def _recipients(self, room: Room, visibility: str) -> list[Device]:
        """Every device of the members who get the room key (joined; invited too unless history is "joined")."""
        if room.room_id not in self._members_loaded:
            await self.client.load_members(room.room_id)
            self._members_loaded.add(room.room_id)
        memberships = ("join",) if visibility == "joined" else ("join", "invite")
        users = [user_id for user_id, member in room.members.items() if member.membership in memberships]
        await self._refresh(users)
        own = (self.account.user_id, self.account.device_id)
        return [d for user_id in users for d in self.devices.devices(user_id) if (d.user_id, d.device_id) != own]

    @staticmethod
    def _must_rotate(session: OutboundSession, settings: Mapping[str, Any], shared_history: bool, devices: list[Device]) -> bool:
        if session.expired(settings) or session.shared_history != shared_history:
            return True
        current = {(d.user_id, d.device_id) for d in devices}
        return any((user_id, device_id) not in current
                   for user_id, shared in session.shared_with.items() for device_id in shared)

    async def _share(self, session: OutboundSession, devices: list[Device]) -> None:
        key = {"algorithm": MEGOLM, "room_id": session.room_id, "session_id": session.session_id,
               "session_key": session.session.session_key.to_base64(), "shared_history": session.shared_history}
        reached = await self._send_olm(devices, "m.room_key", key)
        for device in reached:
            session.shared_with.setdefault(device.user_id, {})[device.device_id] = device.ed25519
        self.megolm.save_outbound(session)
        log.info("room key %s of %s shared with %d devices", session.session_id, session.room_id, len(reached))
