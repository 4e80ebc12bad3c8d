"""EDUs both ways: typing, receipts, presence, device list updates, direct to-device
messages and signing key updates.

Outbound, the services tell this module of their local users' changes (narrow callables
the server hands them) and it queues one EDU per server that should know: the servers with
members in the room (typing, receipts), or sharing a room with the user (presence, device
lists, signing keys), or of the recipients (to-device). Inbound, each EDU is checked
against its origin (a server speaks only for its own users) and the room's server ACL, then
handed to the service that owns it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ranvier.events.identifiers import domain_of
from ranvier.federation.acl import server_allowed
from ranvier.federation.sender import EduSender, PduSender
from ranvier.rooms.service import RoomServer

log = logging.getLogger(__name__)

TYPING, RECEIPT, PRESENCE = "m.typing", "m.receipt", "m.presence"
DEVICE_LIST_UPDATE, DIRECT_TO_DEVICE, SIGNING_KEY_UPDATE = (
    "m.device_list_update", "m.direct_to_device", "m.signing_key_update")
#: How long a typing notification received from another server lasts without renewal.
REMOTE_TYPING_TIMEOUT_MS = 30_000


class Edus:
    def __init__(self, rooms: RoomServer, sender: EduSender, pdus: PduSender, services: Any) -> None:
        self.rooms = rooms
        self.sender = sender
        self.pdus = pdus
        self.server_name = rooms.server_name
        #: The homeserver: typing, receipts, presence, keys, to_device (those it has).
        self.services = services

    # -- who should know ------------------------------------------------------------------

    async def _servers_in_room(self, room_id: str) -> set[str]:
        head = await self.rooms.head(room_id)
        return self.pdus.servers_of(room_id, head.joined)

    async def _servers_sharing_rooms(self, user_id: str) -> set[str]:
        servers: set[str] = set()
        for room_id, (membership, _) in (await self.rooms.user_memberships(user_id)).items():
            if membership == "join":
                servers |= await self._servers_in_room(room_id)
        return servers

    # -- outbound -------------------------------------------------------------------------

    async def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        await self.sender.send(await self._servers_in_room(room_id), TYPING,
                               {"room_id": room_id, "user_id": user_id, "typing": typing})

    async def receipt_sent(self, room_id: str, user_id: str, receipt_type: str, event_id: str,
                           thread_id: str | None, ts: int) -> None:
        data: dict[str, Any] = {"ts": ts}
        if thread_id:
            data["thread_id"] = thread_id
        await self.sender.send(await self._servers_in_room(room_id), RECEIPT,
                               {room_id: {receipt_type: {user_id: {"event_ids": [event_id], "data": data}}}})

    async def presence_changed(self, rows: list[Any]) -> None:
        presence = self.services.presence
        now = _now_ms()
        edus = []
        for row in rows:
            if domain_of(row.user_id) != self.server_name:
                continue
            content = {"user_id": row.user_id, **presence.content(row, now)}
            edus += [(server, PRESENCE, {"push": [content]}) for server in await self._servers_sharing_rooms(row.user_id)]
        await self.sender.send_each(edus)

    async def device_list_changed(self, user_id: str, stream_id: int, devices: dict[str, Any]) -> None:
        """A local user's devices or keys changed: one update per device (each with its
        keys, so another server can apply it without asking back) and their cross-signing
        keys, to every server sharing a room with them."""
        servers = await self._servers_sharing_rooms(user_id)
        updates = [{"user_id": user_id, "device_id": device["device_id"], "stream_id": stream_id, "prev_id": [],
                    "keys": device["keys"], **({"device_display_name": device["device_display_name"]}
                                               if "device_display_name" in device else {})}
                   for device in devices["devices"]]
        signing = {key: devices[key] for key in ("master_key", "self_signing_key") if key in devices}
        edus = [(server, DEVICE_LIST_UPDATE, update) for server in servers for update in updates]
        if signing:
            edus += [(server, SIGNING_KEY_UPDATE, {"user_id": user_id, **signing}) for server in servers]
        await self.sender.send_each(edus)

    async def to_device(self, sender: str, event_type: str, message_id: str,
                        messages: dict[str, dict[str, Any]]) -> None:
        """Direct to-device messages to users of other servers, one EDU per server."""
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, devices in messages.items():
            server = domain_of(user_id)
            if server and server != self.server_name:
                by_server.setdefault(server, {})[user_id] = devices
        await self.sender.send_each([
            (server, DIRECT_TO_DEVICE, {"sender": sender, "type": event_type, "message_id": message_id,
                                        "messages": messages_of_server})
            for server, messages_of_server in by_server.items()
        ])

    # -- inbound ---------------------------------------------------------------------------

    async def receive(self, origin: str, edus: list[Any]) -> None:
        """The EDUs of a transaction; a malformed or refused one is dropped (and logged)."""
        handlers = {TYPING: self._typing, RECEIPT: self._receipts, PRESENCE: self._presence,
                    DEVICE_LIST_UPDATE: self._device_list_update, DIRECT_TO_DEVICE: self._direct_to_device,
                    SIGNING_KEY_UPDATE: self._signing_key_update}
        for edu in edus:
            if not isinstance(edu, dict) or not isinstance(edu.get("content"), dict):
                continue
            handler = handlers.get(edu.get("edu_type"))
            if handler is None:
                continue
            try:
                await handler(origin, edu["content"])
            except Exception as exc:  # one bad EDU must not lose the others
                log.info("%s EDU from %s dropped: %s", edu.get("edu_type"), origin, exc)

    async def _room_allows(self, origin: str, room_id: Any, user_id: Any) -> bool:
        """The user is the origin's and joined to a room this server holds whose ACL
        lets the origin in."""
        if not isinstance(room_id, str) or not isinstance(user_id, str) or domain_of(user_id) != origin:
            return False
        head = await self.rooms.head_if_known(room_id)
        return head is not None and head.resident and user_id in head.joined and server_allowed(head.state, origin)

    async def _typing(self, origin: str, content: dict[str, Any]) -> None:
        room_id, user_id = content.get("room_id"), content.get("user_id")
        if await self._room_allows(origin, room_id, user_id) and self.services.typing is not None:
            await self.services.typing.set_typing(user_id, room_id, content.get("typing") is True,
                                                  REMOTE_TYPING_TIMEOUT_MS)

    async def _receipts(self, origin: str, content: dict[str, Any]) -> None:
        receipts = self.services.receipts
        for room_id, by_type in content.items():
            if not isinstance(by_type, dict):
                continue
            for receipt_type, by_user in by_type.items():
                if receipt_type != "m.read" or not isinstance(by_user, dict):
                    continue
                for user_id, receipt in by_user.items():
                    if not isinstance(receipt, dict) or not await self._room_allows(origin, room_id, user_id):
                        continue
                    event_ids = receipt.get("event_ids")
                    data = receipt.get("data") if isinstance(receipt.get("data"), dict) else {}
                    thread_id = data.get("thread_id") if isinstance(data.get("thread_id"), str) else None
                    for event_id in event_ids if isinstance(event_ids, list) else []:
                        if isinstance(event_id, str):
                            await receipts.receive_remote(user_id, room_id, receipt_type, event_id, thread_id)

    async def _presence(self, origin: str, content: dict[str, Any]) -> None:
        for update in content.get("push", []) if isinstance(content.get("push"), list) else []:
            if not isinstance(update, dict) or domain_of(update.get("user_id")) != origin:
                continue
            status_msg = update.get("status_msg")
            last_active_ago = update.get("last_active_ago")
            await self.services.presence.set_remote(
                update["user_id"], update.get("presence"), status_msg if isinstance(status_msg, str) else None,
                last_active_ago if isinstance(last_active_ago, int) and last_active_ago >= 0 else 0)

    async def _device_list_update(self, origin: str, content: dict[str, Any]) -> None:
        user_id = content.get("user_id")
        if isinstance(user_id, str) and domain_of(user_id) == origin and self.services.keys is not None:
            await self.services.keys.device_list_changed(user_id)

    async def _signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        await self._device_list_update(origin, content)

    async def _direct_to_device(self, origin: str, content: dict[str, Any]) -> None:
        sender, event_type, messages = content.get("sender"), content.get("type"), content.get("messages")
        message_id = content.get("message_id")
        if (not isinstance(sender, str) or domain_of(sender) != origin or not isinstance(event_type, str)
                or not isinstance(messages, dict) or self.services.to_device is None):
            return
        local = {user_id: devices for user_id, devices in messages.items()
                 if domain_of(user_id) == self.server_name and isinstance(devices, dict)}
        if local:
            await self.services.to_device.send(sender, "", f"{origin} {message_id}", event_type, local)


def _now_ms() -> int:
    return int(time.time() * 1000)
