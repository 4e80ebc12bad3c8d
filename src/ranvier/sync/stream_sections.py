"""The parts of a /sync answer that come from the other services' streams rather than from
the rooms: typing and receipts (ephemeral), presence, unread counts, and the device's
encryption fields (to-device messages, device-list changes, key counts). Each reads its
stream in (since, now] of one sync's `_Window`; a stream the server lacks stays empty.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ranvier.notify.tokens import SyncToken
from ranvier.requester import Requester
from ranvier.sync.filters import SyncFilter

#: Rooms whose unread counts one query reads (an initial sync of 10,000 rooms: ten).
_COUNTED_PER_QUERY = 1_000


@dataclass
class _Window:
    """One sync's view: who, from where (None = initial), up to where, with which filter."""

    requester: Requester
    since: SyncToken | None
    now: SyncToken
    sync_filter: SyncFilter
    full_state: bool
    ignored: set[str]
    #: Room events as ClientEvent dicts (with their room ID) rather than /sync's encoded form.
    room_ids_in_events: bool = False

    @property
    def user_id(self) -> str:
        return self.requester.user_id



class StreamSections:
    """The stream-fed sections of SyncService (its base class); `streams` is the homeserver,
    holding the optional services (account data, receipts, typing, presence, push counts,
    keys, to-device, device lists)."""

    streams: Any

    def _stream(self, name: str):
        return getattr(self.streams, name, None)

    async def _ephemeral(self, window: _Window, joined: list[str]) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = {}
        typing = self._stream("typing")
        if typing is not None and (window.since is None or window.since.typing < window.now.typing):
            for room_id, event in typing.events(joined, window.since.typing if window.since else 0).items():
                result.setdefault(room_id, []).append(event)
        receipts = self._stream("receipts")
        if receipts is not None and (window.since is None or window.since.receipts < window.now.receipts):
            since = window.since.receipts if window.since else 0
            for room_id, event in (await receipts.events(window.user_id, joined, since, window.now.receipts)).items():
                result.setdefault(room_id, []).append(event)
        ephemeral_filter = window.sync_filter.room.ephemeral
        return {room: [e for e in events if ephemeral_filter.allows_type(e["type"])] for room, events in result.items()}

    async def _presence(self, window: _Window) -> list[dict[str, Any]]:
        presence = self._stream("presence")
        presence_filter = window.sync_filter.presence
        if presence is None or presence_filter.allows_no_type or (
                window.since is not None and window.since.presence >= window.now.presence):
            return []
        events = await presence.events(window.user_id, window.since.presence if window.since else 0, window.now.presence)
        return [e for e in events if presence_filter.allows_type(e["type"]) and presence_filter.allows_sender(e["sender"])]

    async def _add_counts(self, window: _Window, joined_rooms: dict[str, dict[str, Any]]) -> None:
        """Unread counts per room; per thread too when the filter asks for them, and then the
        room's own counts cover only the main timeline (the spec's threaded notifications)."""
        push = self._stream("push")
        if push is None or not joined_rooms:
            return
        threaded = window.sync_filter.room.timeline.unread_thread_notifications
        room_ids = list(joined_rooms)
        counts: dict[str, dict[str, Any]] = {}
        for start in range(0, len(room_ids), _COUNTED_PER_QUERY):  # a statement's parameters are bounded
            counts.update(await push.counts(window.user_id, room_ids[start:start + _COUNTED_PER_QUERY]))
        for room_id, section in joined_rooms.items():
            room_counts = counts.get(room_id, {})
            main = room_counts.get("main", room_counts) if threaded else room_counts
            section["unread_notifications"] = {
                "notification_count": main.get("notification_count", 0),
                "highlight_count": main.get("highlight_count", 0),
            }
            if threaded:
                section["unread_thread_notifications"] = room_counts.get("threads", {})

    async def _encryption(self, window: _Window, joined: list[str],
                          changed_membership: dict[str, str]) -> tuple[dict[str, Any], SyncToken]:
        """The device's to-device messages, device-list changes (incremental syncs only) and
        key counts; and the token to answer with, whose to-device position stops at the
        last message sent when more are waiting."""
        fields = await self._key_counts(window.requester)
        next_token = window.now
        to_device = self._stream("to_device")
        if to_device is not None:
            events, upto = await to_device.messages_for(window.user_id, window.requester.device_id,
                                                        window.since.to_device if window.since else None,
                                                        window.now.to_device)
            fields["to_device"] = {"events": events}
            if upto != next_token.to_device:
                next_token = replace(next_token, to_device=upto)
        device_lists = self._stream("device_lists")
        if device_lists is not None and window.since is not None:
            fields["device_lists"] = await device_lists.changes(window.user_id, window.since, window.now, joined,
                                                                changed_membership)
        return fields, next_token

    async def _key_counts(self, requester: Requester) -> dict[str, Any]:
        keys = self._stream("keys")
        if keys is None:
            return {}
        counts, fallback = await keys.key_counts(requester.user_id, requester.device_id)
        return {"device_one_time_keys_count": counts, "device_unused_fallback_key_types": fallback}
