"""Sliding sync extensions: account data, receipts and typing, for the rooms a request names.

An extension applies to the rooms within the ranges of the lists it names (`lists`, every
list when absent or `*`) and to the room subscriptions it names (`rooms`, every
subscription when absent or `*`); receipts and typing to joined rooms only. A room whose
data for the extension was current in the previous response gets what changed since;
any other room (new in scope, or back in it) gets its current data in full. Global
account data is sent in full on a connection's first response with the extension, then
as it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ranvier.sync.service import SyncService
from ranvier.sync.sliding_connections import ConnectionState
from ranvier.sync.sliding_request import WILDCARD, ExtensionConfig
from ranvier.sync.tokens import SyncToken

ACCOUNT_DATA, RECEIPTS, TYPING = "account_data", "receipts", "typing"


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

    async def compute(self, user_id: str, configs: Mapping[str, ExtensionConfig], windows: Mapping[str, list[str]],
                      subscribed: list[str], memberships: Mapping[str, tuple[str, int]], base: ConnectionState,
                      now: SyncToken) -> ExtensionResults:
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
        # An extension left out of a request starts over (in full) when it is asked for again.
        started = frozenset({ACCOUNT_DATA}) if ACCOUNT_DATA in body else frozenset()
        return ExtensionResults(body, current, started, news)

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
