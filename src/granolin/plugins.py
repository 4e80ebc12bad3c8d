"""The seed's plugins as mixins: combine them with Client in a subclass.

    class MyBot(AutoJoiner, ServerDirectory, MessageLog, Client): ...

Each mixin extends :meth:`Client.handle_event` and the hardcopy methods with
``super()``, so any combination works and every mixin's state is saved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .client import Client
from .events import AccountDataEvent, Event, InvitationEvent, MemberEvent, MessageEvent, RoomStateEvent

log = logging.getLogger("granolin")


class MessageLog(Client):
    """Logs one line per event to the ``granolin.messages`` logger."""

    message_log = logging.getLogger("granolin.messages")

    @staticmethod
    def describe(event: Event) -> str:
        """The log line of an event: room, sender, type and, for messages, the body."""
        text = f"{event.room_id or '-'} {event.sender or '-'} {event.type}"
        if isinstance(event, MessageEvent):
            text += f" {event.msgtype}: {event.body}"
        elif isinstance(event, RoomStateEvent | InvitationEvent):
            text += f" [{event.state_key}]"
        return text

    async def handle_event(self, event: Event) -> None:
        self.message_log.info("%s", self.describe(event))
        await super().handle_event(event)


class AutoJoiner(Client):
    """Joins every room it is invited to (override :meth:`should_join` to choose)."""

    def should_join(self, invitation: InvitationEvent) -> bool:
        """Whether to accept this invitation; by default, always."""
        return True

    async def handle_event(self, event: Event) -> None:
        if (
            isinstance(event, InvitationEvent)
            and event.room_id is not None
            and event.membership == "invite"
            and event.state_key == self.user_id
            and self.should_join(event)
        ):
            await self.join_room(event.room_id)
            log.info("joined %s on the invitation of %s", event.room_id, event.sender)
        await super().handle_event(event)


class ServerDirectory(Client):
    """Knows the bot's rooms: names, aliases, members and direct rooms (m.direct).

    ``rooms`` maps a room ID to ``{"name", "aliases", "members"}`` (members:
    user ID -> display name, joined or invited). ``direct`` is the m.direct
    account data: user ID -> room IDs. Both are saved in the hardcopy, because
    an incremental sync does not send them again after a restart.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.rooms: dict[str, dict[str, Any]] = {}
        self.direct: dict[str, list[str]] = {}
        self._direct_lock = asyncio.Lock()
        super().__init__(*args, **kwargs)

    def hardcopy_state(self) -> dict[str, Any]:
        return {**super().hardcopy_state(), "server_directory": {"rooms": self.rooms, "direct": self.direct}}

    def restore_hardcopy_state(self, state: Mapping[str, Any]) -> None:
        super().restore_hardcopy_state(state)
        saved = state.get("server_directory") or {}
        self.rooms = dict(saved.get("rooms") or {})
        self.direct = {user: list(rooms) for user, rooms in (saved.get("direct") or {}).items()}

    def _room(self, room_id: str) -> dict[str, Any]:
        return self.rooms.setdefault(room_id, {"name": None, "aliases": [], "members": {}})

    def _track(self, room_id: str, event: RoomStateEvent) -> None:
        if isinstance(event, MemberEvent):
            if event.state_key == self.user_id and event.membership in ("leave", "ban"):
                self.rooms.pop(room_id, None)
                return
            members = self._room(room_id)["members"]
            if event.membership in ("join", "invite"):
                members[event.state_key] = event.displayname
            else:
                members.pop(event.state_key, None)
        elif event.type == "m.room.name":
            self._room(room_id)["name"] = event.room_name
        elif event.type in ("m.room.canonical_alias", "m.room.aliases"):
            self._room(room_id)["aliases"] = event.room_aliases

    async def handle_event(self, event: Event) -> None:
        if isinstance(event, RoomStateEvent) and event.room_id is not None:
            self._track(event.room_id, event)
        elif isinstance(event, AccountDataEvent) and event.room_id is None and event.type == "m.direct":
            self.direct = {user: list(rooms) for user, rooms in event.content.items() if isinstance(rooms, list)}
        await super().handle_event(event)

    def room_name(self, room_id: str) -> str | None:
        """The room's name, if it has one."""
        return self.rooms.get(room_id, {}).get("name")

    def room_members(self, room_id: str) -> dict[str, str | None]:
        """Joined and invited members of a room: user ID -> display name."""
        return dict(self.rooms.get(room_id, {}).get("members", {}))

    def find_rooms_by_name(self, name: str) -> list[str]:
        """IDs of the rooms whose name or alias matches ``name`` (case-insensitive)."""
        wanted = name.casefold()
        return [
            room_id
            for room_id, room in self.rooms.items()
            if (room["name"] or "").casefold() == wanted or any(alias.casefold() == wanted for alias in room["aliases"])
        ]

    async def find_contact(self, name: str) -> str | None:
        """A user ID for ``name`` (a user ID, a display name or a localpart).

        Members of the bot's rooms are searched first, then the user directory.
        """
        wanted = name.casefold()
        for room in self.rooms.values():
            for user_id, displayname in room["members"].items():
                if user_id == self.user_id:
                    continue
                localpart = user_id[1:].split(":", 1)[0]
                if wanted in (user_id.casefold(), localpart.casefold(), (displayname or "").casefold()):
                    return str(user_id)
        results = (await self.user_search(name, limit=10)).get("results") or []
        for result in results:
            if wanted in (result.get("user_id", "").casefold(), (result.get("display_name") or "").casefold()):
                return str(result["user_id"])
        return str(results[0]["user_id"]) if len(results) == 1 else None

    def direct_rooms_with(self, user_id: str) -> list[str]:
        """The direct rooms with ``user_id`` that the bot is still in and the user has not left."""
        return [room_id for room_id in self.direct.get(user_id, []) if user_id in self.rooms.get(room_id, {}).get("members", {})]

    async def create_direct_room(self, user_id: str) -> str:
        """Create a direct room with ``user_id``, invite them and record it in m.direct."""
        room_id = await self.create_room(invite=[user_id], is_direct=True, preset="trusted_private_chat")
        self._room(room_id)["members"].setdefault(user_id, None)
        self.direct.setdefault(user_id, []).append(room_id)
        await self.update_account_data("m.direct", self.direct)
        return room_id

    async def ensure_direct_room(self, user_id: str) -> str:
        """A direct room with ``user_id``: an existing one, else a new one."""
        async with self._direct_lock:
            existing = self.direct_rooms_with(user_id)
            return existing[0] if existing else await self.create_direct_room(user_id)
