"""The client's side of encrypted rooms: when to encrypt a send, when to publish keys, what to report.

The cryptography itself is in :mod:`granolin.e2ee` (the ``e2e`` extra). This
mixin of :class:`granolin.Client` decides: it encrypts a send when the room is
encrypted (asking the server when the room was not synced yet, never sending
in the clear into an encrypted room), uploads attachments encrypted there,
decrypts the pending handlers' events saved encrypted in the hardcopy, and
calls :meth:`on_undecryptable` for events that never decrypt. Without the
extra (or with ``encryption=False``) it warns once per encrypted room instead,
and refuses to send an event or upload an attachment into an encrypted room.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dispatch import WorkQueue
from .e2ee import attachment_cipher, encryption_class, store_path_for
from .errors import GranolinError, MatrixError
from .events import Event, TimelineEvent
from .history import History
from .rooms import Room
from .transport import log

VERIFICATION_PREFIX = "m.key.verification."

if TYPE_CHECKING:
    from .e2ee.machine import Encryption
    from .e2ee.verification import Verification


class EncryptedRooms(History):
    """End-to-end encryption as the client uses it (see the module docstring)."""

    undecryptable_timeout = 600.0
    """Seconds an encrypted event waits for its room key before :meth:`on_undecryptable` is called."""

    rooms: dict[str, Room]
    hardcopy: Path | None
    _work: WorkQueue

    def setup_encryption(self, enabled: bool, crypto_store: str | os.PathLike[str] | None, crypto_key: bytes | str | None) -> None:
        """Turn encryption on when the extra is installed: the crypto store beside the hardcopy, or
        ``crypto_store``, or in memory for a client without a hardcopy."""
        self._warned_encrypted: set[str] = set()
        self.encryption: Encryption | None = None
        """End-to-end encryption (see :mod:`granolin.e2ee`): None without the ``e2e`` extra or with ``encryption=False``."""
        support = encryption_class() if enabled else None
        if support is not None:
            store = crypto_store if crypto_store is not None else store_path_for(self.hardcopy) if self.hardcopy is not None else None
            self.encryption = support(self, Path(store) if store is not None else None, crypto_key)  # type: ignore[arg-type]

    def warn_encrypted(self, room_id: str) -> None:
        """Say once per room that its encrypted messages cannot be read by this bot (encryption is off)."""
        if room_id not in self._warned_encrypted:
            self._warned_encrypted.add(room_id)
            log.warning(
                "room %s is end-to-end encrypted and granolin cannot decrypt (no encryption support is installed: "
                "install granolin[e2e], which brings vodozemac): the bot does not see the messages sent there",
                room_id,
            )

    # --- encrypted rooms --------------------------------------------------------

    async def prepare_encryption(self) -> None:
        """Publish the device's keys (once) and cross-sign it; called before each sync.

        A server without the encryption endpoints (404) or that refuses the
        keys (another 4xx) turns encryption off, with a warning.
        """
        if self.encryption is None:
            return
        if self.user_id is None or self.device_id is None:
            log.warning("end-to-end encryption is off: the session has no device ID")
            self.encryption = None
            return
        try:
            await self.encryption.prepare()
        except MatrixError as exc:
            if exc.status >= 500 or exc.status == 429:
                raise
            log.warning("end-to-end encryption is off for %s: %s", self.device_id, exc)
            self.encryption = None

    async def encrypted_room(self, room_id: str) -> Room | None:
        """The room when it is encrypted, else None; a room not synced yet is asked about (``m.room.encryption``)."""
        room = self.rooms.get(room_id)
        if room is None or "m.room.create" not in room.state:
            try:
                settings = await self.get_state(room_id, "m.room.encryption")
            except MatrixError as exc:
                if exc.status != 404:
                    raise
            else:
                room = self.rooms.setdefault(room_id, Room(room_id))
                room.apply("m.room.encryption", "", settings)
        return room if room is not None and room.encrypted else None

    async def outgoing(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        """Encrypt the event when the room is encrypted. With encryption off (no ``e2e``
        extra, ``encryption=False``, or keys the server refused) nothing is sent into a
        room the client knows to be encrypted: a GranolinError says why, since the server
        could read it (a room not synced yet is looked up only when encryption is on)."""
        if event_type == "m.room.encrypted":
            return event_type, content
        if self.encryption is None:
            known = self.rooms.get(room_id)
            room = known if known is not None and known.encrypted else None
        else:
            room = await self.encrypted_room(room_id)
        if room is None:
            return event_type, content
        if self.encryption is not None:
            await self.prepare_encryption()
        if self.encryption is None:
            raise GranolinError(f"room {room_id} is encrypted and encryption is off (granolin[e2e] brings it): "
                                f"the {event_type} event is not sent in the clear")
        return "m.room.encrypted", await self.encryption.encrypt(room, event_type, content)

    async def upload_attachment(self, room_id: str, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
        """In an encrypted room, upload the file encrypted: ``{"file": EncryptedFile}`` (see :mod:`granolin.e2ee.attachments`).

        The ciphertext is uploaded as application/octet-stream without its
        file name. With encryption off (no ``e2e`` extra, ``encryption=False``,
        or keys the server refused), nothing is uploaded: a GranolinError says
        why, since the file would be readable by the server.
        """
        if await self.encrypted_room(room_id) is None:
            return await super().upload_attachment(room_id, filename, data, content_type)
        if self.encryption is None:
            raise GranolinError(f"room {room_id} is encrypted and encryption is off (granolin[e2e] brings it): "
                                f"{filename} is not uploaded in the clear")
        ciphertext, encrypted_file = attachment_cipher().encrypt_attachment(data)
        return {"file": {**encrypted_file, "url": await self.upload(None, ciphertext, "application/octet-stream")}}

    async def on_undecryptable(self, event: TimelineEvent, reason: str) -> None:
        """Called for an encrypted event that cannot be decrypted: its room key did not arrive within
        ``undecryptable_timeout`` seconds, or it is not a Megolm event granolin can read. The default logs a warning."""
        log.warning("event %s of %s in %s cannot be decrypted: %s", event.event_id, event.sender, event.room_id, reason)

    # --- interactive verification ----------------------------------------------

    async def verify_device(self, user_id: str, device_id: str | None = None, *, room_id: str | None = None) -> Verification:
        """Ask a device of ``user_id`` (every device when ``device_id`` is None) to verify with emoji (SAS),
        by to-device messages; with ``room_id`` (a direct chat with the user), by a request in that room,
        which any of their devices may answer (how clients verify another user).

        :meth:`on_sas` then compares the strings; ``await verification.wait()``
        is True once the device is verified (and trusted), False when the
        verification was cancelled (``verification.cancel_code`` says why).
        """
        if self.encryption is None:
            raise GranolinError("verification needs end-to-end encryption (granolin[e2e])")
        await self.prepare_encryption()
        return await self.encryption.verify(user_id, device_id, room_id)

    async def room_verifications(self, events: list[Event]) -> None:
        """Hand the verification events among a sync's dispatched events to the verifier (requests in a room
        name the bot in ``to``; the other messages reference the request)."""
        if self.encryption is None or self.encryption.store is None:
            return
        found = [event for event in events if isinstance(event, TimelineEvent) and (
            event.type.startswith(VERIFICATION_PREFIX)
            or (event.type == "m.room.message" and event.content.get("msgtype") == f"{VERIFICATION_PREFIX}request"))]
        await self.encryption.verifier.receive_room(found)

    async def on_verification_request(self, verification: Verification) -> bool:
        """Called when another device asks to verify with the bot (``verification.user_id``,
        ``verification.device_id``): return True to go on, False to decline. The default declines."""
        log.info("a verification request from %s %s is declined (override on_verification_request to accept)",
                 verification.user_id, verification.device_id)
        return False

    async def on_sas(self, verification: Verification) -> bool | None:
        """Called with the short authentication strings (``verification.emoji``, ``verification.decimals``) to compare
        with the other device: True when they match, False when they differ (the verification is cancelled with
        ``m.mismatched_sas``), None when they cannot be compared (cancelled with ``m.user``). The default returns None.
        It may take up to the 10 minutes a verification lasts (an operator's answer): the bot keeps syncing."""
        log.warning("verification with %s %s: nothing compares the emoji (override on_sas): cancelled",
                    verification.user_id, verification.device_id)
        return None

    def _decrypt_pending(self) -> None:
        """Decrypt the events of the pending jobs of the hardcopy (saved as they arrived, encrypted)."""
        encrypted = [job for job in self._work.waiting_jobs() if job.event.type == "m.room.encrypted" and job.event.room_id]
        if self.encryption is None or not encrypted or self.user_id is None or self.device_id is None:
            return
        self.encryption.open()
        for job in encrypted:
            outcome = self.encryption.decrypt(job.event.raw, str(job.event.room_id))
            if isinstance(outcome, TimelineEvent):
                job.event = outcome
            else:
                log.warning("pending event %s can no longer be decrypted (%s): its handlers do not run again",
                            job.event.raw.get("event_id"), outcome or "no room key")
                self._work.discard(job)

