"""Sliding sync extensions.

Account data, receipts and typing apply to the rooms within the ranges of the lists they
name (`lists`, every list when absent or `*`) and to the room subscriptions they name
(`rooms`, every subscription when absent or `*`); receipts and typing to joined rooms
only. A room whose data for the extension was current in the previous response gets what
changed since; any other room (new in scope, or back in it) gets its current data in
full. Global account data is sent in full on a connection's first response with the
extension, then as it changes.

The device's own extensions come from end-to-end encryption: `to_device` (MSC3885) hands
the device its to-device messages after the `since` the client passes back (the
`next_batch` of the previous answer, whose messages are then deleted), at most `limit`
(100); `e2ee` (MSC3884) gives its one-time key counts, unused fallback key types and, on
a connection's later responses, the users whose devices changed or who no longer share a
room with it since the `pos`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ranvier.requester import Requester
from ranvier.sync.service import SyncService
from ranvier.sync.sliding_connections import ConnectionState
from ranvier.sync.sliding_request import WILDCARD, ExtensionConfig
from ranvier.notify.tokens import SyncToken

ACCOUNT_DATA, RECEIPTS, TYPING, TO_DEVICE, E2EE = "account_data", "receipts", "typing", "to_device", "e2ee"
#: The most to-device messages one answer carries when the request sets no `limit`.
MAX_TO_DEVICE = 100


@dataclass
class ExtensionResults:
    body: dict[str, Any]
    #: Extension name -> the rooms whose data is current as of this response.
    rooms: dict[str, frozenset[str]]
    started: frozenset[str]
    has_news: bool


def rooms_in_scope(config: ExtensionConfig, windows: Mapping[str, list[str]], subscribed: list[str]) -> set[str]:
    """The rooms an extension applies to: those of the lists and subscriptions it names."""
    rooms: set[str] = set()
    for name, room_ids in windows.items():
        if config.lists is None or WILDCARD in config.lists or name in config.lists:
            rooms.update(room_ids)
    rooms.update(room_id for room_id in subscribed
                 if config.rooms is None or WILDCARD in config.rooms or room_id in config.rooms)
    return rooms


class Extensions:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync

    async def compute(self, requester: Requester, configs: Mapping[str, ExtensionConfig],
                      windows: Mapping[str, list[str]], subscribed: list[str], memberships: Mapping[str, tuple[str, int]],
                      base: ConnectionState, now: SyncToken) -> ExtensionResults:
        user_id = requester.user_id
        body: dict[str, Any] = {}
        current: dict[str, frozenset[str]] = {}
        news = False
        for name in (ACCOUNT_DATA, RECEIPTS, TYPING):
            config = configs.get(name)
            stream = self.sync._stream(name)
            if config is None or stream is None:
                continue
            scope = rooms_in_scope(config, windows, subscribed)
            if name != ACCOUNT_DATA:
                scope = {room_id for room_id in scope if memberships.get(room_id, ("",))[0] == "join"}
            before = base.extension_rooms.get(name, frozenset()) if base.token is not None else frozenset()
            full, delta = sorted(scope - before), sorted(scope & before)
            if name == ACCOUNT_DATA:
                body[name] = await self._account_data(user_id, name not in base.extensions_started, full, delta, base, now)
                news = news or bool(body[name]["global"] or body[name]["rooms"])
            else:
                events = await self._ephemeral(name, user_id, full, delta, base, now)
                body[name] = {"rooms": events}
                news = news or bool(events)
            current[name] = frozenset(scope)
        if TO_DEVICE in configs and self.sync._stream(TO_DEVICE) is not None:
            body[TO_DEVICE] = await self._to_device(requester, configs[TO_DEVICE], now)
            news = news or bool(body[TO_DEVICE]["events"])
        if E2EE in configs and self.sync._stream("keys") is not None:
            body[E2EE] = await self._e2ee(requester, memberships, base, now)
            news = news or bool(body[E2EE]["device_lists"]["changed"] or body[E2EE]["device_lists"]["left"])
        # An extension left out of a request starts over (in full) when it is asked for again.
        started = frozenset({ACCOUNT_DATA}) if ACCOUNT_DATA in body else frozenset()
        return ExtensionResults(body, current, started, news)

    async def _to_device(self, requester: Requester, config: ExtensionConfig, now: SyncToken) -> dict[str, Any]:
        """The messages after `since` (all those stored without it); those up to `since`,
        which the client has, are deleted first."""
        to_device = self.sync._stream(TO_DEVICE)
        since = int(config.since) if config.since is not None else None
        if since is not None:
            await to_device.confirm(requester.user_id, requester.device_id, since)
        limit = MAX_TO_DEVICE if config.limit is None else config.limit
        if limit == 0:
            return {"next_batch": str(since or 0), "events": []}
        events, upto = await to_device.messages_for(requester.user_id, requester.device_id, since, now.to_device,
                                                    limit)
        return {"next_batch": str(upto), "events": events}

    async def _e2ee(self, requester: Requester, memberships: Mapping[str, tuple[str, int]], base: ConnectionState,
                    now: SyncToken) -> dict[str, Any]:
        """Key counts, and the device-list changes since the `pos` (none on a first response)."""
        fields = await self.sync._key_counts(requester)
        changes = {"changed": [], "left": []}
        device_lists = self.sync._stream("device_lists")
        if device_lists is not None and base.token is not None:
            joined = [room_id for room_id, (membership, _) in memberships.items() if membership == "join"]
            own_changes = {room_id: membership for room_id, (membership, stream) in memberships.items()
                           if base.token.events < stream}
            changes = await device_lists.changes(requester.user_id, base.token, now, joined, own_changes)
        return {"device_lists": changes, **fields}

    async def _account_data(self, user_id: str, first: bool, full: list[str], delta: list[str],
                            base: ConnectionState, now: SyncToken) -> dict[str, Any]:
        account_data = self.sync._stream(ACCOUNT_DATA)
        global_events: list[dict] = []
        room_events: dict[str, list[dict]] = {}
        if first or full:
            everything, by_room = await account_data.changes(user_id, 0, now.account_data)
            if first:
                global_events = everything
            room_events.update({room_id: by_room[room_id] for room_id in full if room_id in by_room})
        moved = base.token is not None and base.token.account_data < now.account_data
        if moved and (delta or not first):
            changed, by_room = await account_data.changes(user_id, base.token.account_data, now.account_data)
            if not first:
                global_events = changed
            room_events.update({room_id: by_room[room_id] for room_id in delta if room_id in by_room})
        return {"global": global_events, "rooms": room_events}

    async def _ephemeral(self, name: str, user_id: str, full: list[str], delta: list[str],
                         base: ConnectionState, now: SyncToken) -> dict[str, dict]:
        """m.receipt or m.typing events per room: current ones for `full`, changes for `delta`."""
        stream = self.sync._stream(name)
        since = getattr(base.token, name, 0) if base.token is not None else 0
        moved = since < getattr(now, name)
        events: dict[str, dict] = {}
        if name == TYPING:
            if full:
                events.update(stream.events(full, 0))
            if delta and moved:
                events.update(stream.events(delta, since))
        else:
            if full:
                events.update(await stream.events(user_id, full, 0, now.receipts))
            if delta and moved:
                events.update(await stream.events(user_id, delta, since, now.receipts))
        return events
