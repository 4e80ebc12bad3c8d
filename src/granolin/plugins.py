"""The seed's plugins as mixins: combine them with Client in a subclass.

    class MyBot(AutoJoiner, ServerDirectory, MessageLog, Client): ...

Each mixin extends :meth:`Client.handle_event` and the hardcopy methods with
``super()``, so any combination works and every mixin's state is saved.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Literal, TextIO, overload

from .client import Client
from .events import AccountDataEvent, EphemeralEvent, Event, InvitationEvent, MessageEvent, RoomStateEvent, TimelineEvent
from .rooms import Member, Room, readable_username

log = logging.getLogger("granolin")


class MessageLog(Client):
    """Reports every event: one line to the ``granolin.messages`` logger, or a block to ``message_output``."""

    message_log = logging.getLogger("granolin.messages")
    message_output: TextIO | None = None
    """When set (``sys.stdout`` for a terminal), each event is printed there as a block of fields, as the seed's log did."""

    @staticmethod
    def describe(event: Event) -> str:
        """The log line of an event: room, sender, type and, for messages, the body."""
        text = f"{event.room_id or '-'} {event.sender or '-'} {event.type}"
        if isinstance(event, MessageEvent):
            text += f" {event.msgtype}: {event.body}"
        elif isinstance(event, RoomStateEvent | InvitationEvent):
            text += f" [{event.state_key}]"
        return text

    @staticmethod
    def describe_block(event: Event) -> str:
        """The printed block of an event: what kind it is, then one ``field: value`` line each."""
        content = json.dumps(event.content, ensure_ascii=False, sort_keys=True)
        if isinstance(event, RoomStateEvent | InvitationEvent):
            title = "Invitation Event" if isinstance(event, InvitationEvent) else "Joined Room State Event"
            fields = [("room", event.room_id), ("sender", event.sender), ("event type", event.type), ("state key", event.state_key)]
        elif isinstance(event, TimelineEvent):
            title = "Joined Room Message/Timeline Event"
            msgtype, body = (event.msgtype, event.body) if isinstance(event, MessageEvent) else (None, None)
            fields = [("room", event.room_id), ("sender", event.sender), ("event type", event.type),
                      ("message type", msgtype), ("message body", body)]
        elif isinstance(event, AccountDataEvent):
            title, fields = "Account Data Event", [("room", event.room_id), ("type", event.type)]
        else:
            kind = "Ephemeral Event" if isinstance(event, EphemeralEvent) else "Event"
            title, fields = kind, [("room", event.room_id), ("event type", event.type)]
        lines = [title, *(f"{name}: {'' if value is None else value}" for name, value in fields), f"content: {content}"]
        return "\n".join(lines) + "\n"

    async def handle_event(self, event: Event) -> None:
        if self.message_output is not None:
            print(self.describe_block(event), file=self.message_output, flush=True)
        else:
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


def _matches(wanted: str, candidate: str | None, like: bool) -> bool:
    if not candidate:
        return False
    folded = candidate.casefold()
    return folded == wanted or (like and wanted in folded)


class ServerDirectory(Client):
    """Finds rooms and people among the bot's rooms (the room store) and direct rooms (m.direct).

    ``direct`` is the m.direct account data: user ID -> room IDs; it is saved
    in the hardcopy, because an incremental sync does not send it again.
    Names match case-insensitively; with ``like=True`` a substring is enough
    (the seed's ``:like``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.direct: dict[str, list[str]] = {}
        self._direct_lock = asyncio.Lock()
        super().__init__(*args, **kwargs)

    def hardcopy_state(self) -> dict[str, Any]:
        return {**super().hardcopy_state(), "server_directory": {"direct": self.direct}}

    def restore_hardcopy_state(self, state: Mapping[str, Any]) -> None:
        super().restore_hardcopy_state(state)
        saved = state.get("server_directory") or {}
        self.direct = {user: list(rooms) for user, rooms in (saved.get("direct") or {}).items()}

    async def handle_event(self, event: Event) -> None:
        if isinstance(event, AccountDataEvent) and event.room_id is None and event.type == "m.direct":
            self.direct = {user: list(rooms) for user, rooms in event.content.items() if isinstance(rooms, list)}
        await super().handle_event(event)

    def room_name(self, room_id: str) -> str | None:
        """The room's name, if it has one (the seed's ``name-of-room``)."""
        room = self.rooms.get(room_id)
        return room.name if room is not None else None

    def room_members(self, room_id: str) -> dict[str, str | None]:
        """Joined and invited members of a room: user ID -> display name."""
        room = self.rooms.get(room_id)
        return room.current_members() if room is not None else {}

    @overload
    def find_rooms_by_name(self, name: str, *, like: bool = ..., full: Literal[False] = ...) -> list[str]: ...
    @overload
    def find_rooms_by_name(self, name: str, *, like: bool = ..., full: Literal[True]) -> list[Room]: ...

    def find_rooms_by_name(self, name: str, *, like: bool = False, full: bool = False) -> list[str] | list[Room]:
        """The rooms whose name or an alias is ``name`` (contains it, with ``like``): their IDs, or the rooms with ``full``."""
        wanted = name.casefold()
        found = [room for room in self.rooms.values() if any(_matches(wanted, n, like) for n in [room.name, *room.aliases])]
        return found if full else [room.room_id for room in found]

    def client_contacts(self) -> list[str]:
        """Every user the bot knows: the joined and invited members of its rooms, itself excepted."""
        contacts: dict[str, None] = {}
        for room in self.rooms.values():
            contacts |= dict.fromkeys(user_id for user_id in room.current_members() if user_id != self.user_id)
        return list(contacts)

    def _known_contact(self, wanted: str, like: bool) -> str | None:
        for room in self.rooms.values():
            for user_id, displayname in room.current_members().items():
                if user_id != self.user_id and any(
                    _matches(wanted, candidate, like) for candidate in (user_id, readable_username(user_id), displayname)
                ):
                    return user_id
        return None

    async def find_contact(self, name: str, *, like: bool = False) -> str | None:
        """A user ID for ``name``: a user ID, a localpart or a display name.

        The members of the bot's rooms are searched first (exact matches
        before substrings, with ``like``), then the user directory.
        """
        wanted = name.casefold()
        found = self._known_contact(wanted, False) or (self._known_contact(wanted, True) if like else None)
        if found is not None:
            return found
        results = (await self.user_search(name, limit=10)).get("results") or []
        for result in results:
            user_id = result.get("user_id", "")
            if user_id != self.user_id and any(
                _matches(wanted, candidate, like) for candidate in (user_id, readable_username(user_id), result.get("display_name"))
            ):
                return str(user_id)
        others = [result for result in results if result.get("user_id") != self.user_id]
        return str(others[0]["user_id"]) if len(others) == 1 else None

    def direct_rooms_with(self, user_id: str) -> list[str]:
        """The direct rooms with ``user_id`` that the bot is still in and the user has not left."""
        return [room_id for room_id in self.direct.get(user_id, []) if user_id in self.room_members(room_id)]

    async def create_direct_room(self, user_id: str) -> str:
        """Create a direct room with ``user_id``, invite them and record it in m.direct."""
        room_id = await self.create_room(invite=[user_id], is_direct=True, preset="trusted_private_chat")
        room = self.rooms.setdefault(room_id, Room(room_id))
        room.members.setdefault(user_id, Member(user_id, "invite"))
        self.direct.setdefault(user_id, []).append(room_id)
        await self.update_account_data("m.direct", self.direct)
        return room_id

    async def ensure_direct_room(self, user_id: str) -> str:
        """A direct room with ``user_id``: an existing one, else a new one."""
        async with self._direct_lock:
            existing = self.direct_rooms_with(user_id)
            return existing[0] if existing else await self.create_direct_room(user_id)
