"""The bot's side of interactive verification: messages in and out, the client's hooks, trust at the end.

:class:`Verifier` feeds the ``m.key.verification.*`` to-device messages of
each sync (in the clear, or decrypted from Olm), and the verification events
of its rooms' timelines (decrypted; a request is an ``m.room.message`` naming
the bot in ``to``; the bot's own events are its echoes, skipped), to the state
machine of :mod:`granolin.e2ee.verification`, sends what it answers in the
order it was queued (to-device messages in the clear, room events as any
send, so encrypted in an encrypted room), and asks the client:

- ``await client.on_verification_request(verification) -> bool``: accept a
  request (or a start without request) from another device, or decline it
  (``m.user``);
- ``await client.on_sas(verification) -> bool | None``: the strings
  (``verification.emoji``, ``verification.decimals``) match (True), differ
  (False, ``m.mismatched_sas``), or cannot be compared (None, ``m.user``).

Each hook runs in a task of its own, so an operator may take minutes to
answer while the bot keeps syncing; a verification cancelled or timed out
meanwhile cancels its task. A verified device is then trusted by the bot
(see :meth:`granolin.e2ee.machine.Encryption.is_verified`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import GranolinError
from ..events import TimelineEvent
from ..transport import log
from .sas import Party
from .verification import PREFIX, USER, Verification, Verifications

if TYPE_CHECKING:
    from .machine import Encryption


class Verifier:
    """The verifications of the bot's device (see the module docstring)."""

    def __init__(self, encryption: Encryption) -> None:
        self.encryption = encryption
        account = encryption.account
        devices = encryption.devices

        def device_key(user_id: str, device_id: str) -> str | None:
            device = devices.device(user_id, device_id)
            return device.ed25519 if device is not None else None

        self.verifications = Verifications(Party(account.user_id, account.device_id), self._own_keys, device_key,
                                           devices.published_master_key)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._sending = asyncio.Lock()

    def _own_keys(self) -> dict[str, str]:
        account, cross_signing = self.encryption.account, self.encryption.cross_signing
        keys = {f"ed25519:{account.device_id}": account.ed25519}
        if cross_signing.uploaded and cross_signing.master_public is not None:
            keys[f"ed25519:{cross_signing.master_public}"] = cross_signing.master_public
        return keys

    async def request(self, user_id: str, device_id: str | None = None, room_id: str | None = None) -> Verification:
        """Ask a device of ``user_id`` (or all of them but the bot's own) to verify with SAS; with ``room_id``,
        by a request in that room (a direct chat with the user), which any of their devices may answer."""
        await self.encryption._query([user_id])
        if room_id is not None:
            async with self._sending:
                event_id = await self.encryption.client.send_event(
                    room_id, "m.room.message", self.verifications.request_content(user_id))
            return self.verifications.requested_in_room(user_id, room_id, event_id)
        own = self.encryption.account.device_id
        device_ids = [d.device_id for d in self.encryption.devices.devices(user_id)
                      if (device_id is None or d.device_id == device_id) and not (user_id == self.encryption.account.user_id
                                                                                   and d.device_id == own)]
        if not device_ids:
            which = f"device {device_id}" if device_id is not None else "other device"
            raise GranolinError(f"{user_id} has no {which} with valid keys to verify")
        verification = self.verifications.request(user_id, device_ids)
        await self.flush()
        return verification

    async def receive(self, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Take a sync's to-device verification messages (sender, type, content); expire what ran out of time."""
        await self._take([(sender, event_type, content, None) for sender, event_type, content in messages])
        self.verifications.expire()
        await self.flush()

    async def _take(self, messages: list[tuple[str, str, dict[str, Any], tuple[str, str, int] | None]]) -> None:
        """Look up the devices the messages name that are not known yet (one query), then feed the messages."""
        unknown = {sender for sender, _, content, _ in messages if isinstance(content.get("from_device"), str)
                   and self.encryption.devices.device(sender, content["from_device"]) is None}
        if unknown:
            await self.encryption._query(unknown)
        for sender, event_type, content, room in messages:
            self.verifications.receive(sender, event_type, content, room)

    async def receive_room(self, events: list[TimelineEvent]) -> None:
        """Take the verification events of a sync's timelines (others are skipped)."""
        own = self.encryption.account.user_id
        taken: list[tuple[str, str, dict[str, Any], tuple[str, str, int] | None]] = []
        for event in events:
            content, sender = event.content, event.raw.get("sender")
            if event.room_id is None or not isinstance(sender, str) or sender == own or not isinstance(event.event_id, str):
                continue
            if event.type == "m.room.message" and content.get("msgtype") == PREFIX + "request":
                if content.get("to") == own:
                    taken.append((sender, PREFIX + "request", content, (event.room_id, event.event_id, event.origin_server_ts or 0)))
            elif is_verification(event.type):
                relation = content.get("m.relates_to")
                if isinstance(relation, dict) and relation.get("rel_type") == "m.reference" and isinstance(relation.get("event_id"), str):
                    taken.append((sender, event.type, content, (event.room_id, relation["event_id"], event.origin_server_ts or 0)))
        if taken:
            await self._take(taken)
            await self.flush()

    async def flush(self) -> None:
        """Send what the verifications queued, then act on what they noticed."""
        async with self._sending:
            outbox, self.verifications.outbox = self.verifications.outbox, []
            for message in outbox:
                if message.room_id is not None:
                    await self.encryption.client.send_event(message.room_id, message.event_type, message.content)
                else:
                    await self.encryption._send_to_device(message.event_type, [(message.user_id, message.device_id, message.content)])
        notices, self.verifications.notices = self.verifications.notices, []
        client = self.encryption.client
        for kind, verification in notices:
            if kind == "request":
                self._spawn(verification, self._decide(verification, client.on_verification_request, self._accept_or_decline))
            elif kind == "sas":
                self._spawn(verification, self._decide(verification, client.on_sas, self._compare))
            elif kind == "verified":
                await self.encryption.trust_verified(verification)
                verification.settle()
            elif kind == "cancelled":
                task = self._tasks.pop(id(verification), None)
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
                verification.settle()

    def _accept_or_decline(self, verification: Verification, accepted: object) -> None:
        if accepted is True:
            self.verifications.accept(verification)
        else:
            self.verifications.decline(verification)

    def _compare(self, verification: Verification, matched: object) -> None:
        if matched is True:
            self.verifications.confirm(verification)
        elif matched is False:
            self.verifications.mismatch(verification)
        else:
            self.verifications.cancel(verification, USER, "the bot could not compare the short authentication strings")

    async def _decide(self, verification: Verification, hook: Callable[[Verification], Awaitable[object]],
                      act: Callable[[Verification, object], None]) -> None:
        try:
            answer = await hook(verification)
        except Exception:
            log.exception("%s failed on %r", getattr(hook, "__qualname__", hook), verification)
            answer = None
        if not verification.finished:
            act(verification, answer)
            await self.flush()

    def _spawn(self, verification: Verification, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks[id(verification)] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(id(verification)) is done:  # not a later task of the same verification
                del self._tasks[id(verification)]

        task.add_done_callback(forget)

    def close(self) -> None:
        """Stop the hooks still running; a ``wait()`` on an unfinished verification returns False."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        for verification in self.verifications.active.values():
            verification.settle()


def is_verification(event_type: object) -> bool:
    return isinstance(event_type, str) and event_type.startswith(PREFIX)
