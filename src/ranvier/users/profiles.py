"""Profiles: displayname, avatar_url and the extended fields of Matrix 1.16.

A change of displayname or avatar_url is announced the way the spec asks: a fresh
m.room.member join event, carrying the new profile, in every room the user is joined to.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Awaitable, Callable

import orjson

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of, is_valid_mxc_uri
from ranvier.events.model import MEMBER
from ranvier.rooms.service import RoomServer
from ranvier.users.personal_store import ProfileStore

log = logging.getLogger("ranvier.profiles")

#: The spec's limits: profile keys up to 255 bytes, the whole profile under 64 KiB.
MAX_KEY_BYTES = 255
MAX_PROFILE_BYTES = 65536
_KEY = re.compile(r"(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)")
#: The fields copied into membership events.
MEMBER_FIELDS = ("displayname", "avatar_url")


def check_key(key: str) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise MatrixError("M_KEY_TOO_LARGE", f"Profile keys are limited to {MAX_KEY_BYTES} bytes")
    if not _KEY.fullmatch(key):
        raise MatrixError("M_INVALID_PARAM", f"Invalid profile key: {key}")


def check_value(key: str, value: Any) -> Any:
    """The value to store for `key`; None clears displayname and avatar_url."""
    if key in MEMBER_FIELDS or key == "m.tz":
        if value is not None and not isinstance(value, str):
            raise MatrixError("M_BAD_JSON", f"{key} must be a string")
        if key == "avatar_url" and value and not is_valid_mxc_uri(value):
            raise MatrixError("M_INVALID_PARAM", "avatar_url must be an mxc://<server-name>/<media-id> URI")
        return value or None if key in MEMBER_FIELDS else value
    return value


class Profiles:
    def __init__(self, store: ProfileStore, rooms: RoomServer) -> None:
        self.store = store
        self.rooms = rooms
        #: Profile writes are rare: one lock makes each size check and write atomic.
        self._write_lock = asyncio.Lock()
        #: Set by the server when federation is on: another server's user's profile.
        self.remote: Callable[[str], Awaitable[dict[str, Any]]] | None = None
        #: Set by the server when application services are registered: asks the services
        #: whose namespaces hold an unknown local user to create it; whether one did.
        self.unknown_user: Callable[[str], Awaitable[bool]] | None = None

    async def get(self, user_id: str) -> dict[str, Any]:
        """A user's profile; another server's user's through their server (with federation);
        an unknown local user in an application service's namespace is asked of the service."""
        if domain_of(user_id) != self.rooms.server_name and self.remote is not None:
            return await self.remote(user_id)
        profile = await self.store.get(user_id)
        if profile is None and self.unknown_user is not None and await self.unknown_user(user_id):
            profile = await self.store.get(user_id)
        if profile is None:
            raise MatrixError("M_NOT_FOUND", "Profile not found")
        return profile

    async def member_fields(self, user_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """(displayname, avatar_url) of many local users in one query; unknown users are left out."""
        return await self.store.member_fields(list(dict.fromkeys(user_ids)))

    async def get_field(self, user_id: str, key: str) -> Any:
        check_key(key)
        profile = await self.get(user_id)
        if key not in profile:
            raise MatrixError("M_NOT_FOUND", f"No {key} in this profile")
        return profile[key]

    async def set_field(self, user_id: str, key: str, value: Any) -> None:
        """Set one field (None clears a member field) and announce member fields to the user's rooms."""
        check_key(key)
        value = check_value(key, value)
        async with self._write_lock:
            profile = await self.get(user_id)
            updated = {k: v for k, v in profile.items() if k != key}
            if value is not None or key not in MEMBER_FIELDS:
                updated[key] = value
            if len(orjson.dumps(updated)) > MAX_PROFILE_BYTES:
                raise MatrixError("M_PROFILE_TOO_LARGE", f"A profile must stay under {MAX_PROFILE_BYTES} bytes")
            await self._write(user_id, key, value)
        if key in MEMBER_FIELDS and profile.get(key) != value:
            await self._announce(user_id, key, value)

    async def delete_field(self, user_id: str, key: str) -> None:
        check_key(key)
        if key in MEMBER_FIELDS:
            await self.set_field(user_id, key, None)
            return
        await self.get(user_id)
        await self.store.delete_field(user_id, key)

    async def _write(self, user_id: str, key: str, value: Any) -> None:
        if key == "displayname":
            await self.store.set_displayname(user_id, value)
        elif key == "avatar_url":
            await self.store.set_avatar_url(user_id, value)
        else:
            await self.store.set_field(user_id, key, value)

    async def _announce(self, user_id: str, key: str, value: str | None) -> None:
        """A new join event with the changed field in each joined room; one room failing
        (e.g. the user may no longer send there) does not stop the others."""
        for room_id, _ in await self.rooms.store.rooms_of_user(user_id, ("join",)):
            head = await self.rooms.head(room_id)
            current = head.joined.get(user_id)
            if current is None:
                continue
            content = {k: v for k, v in current.content.items() if k not in ("reason", "join_authorised_via_users_server")}
            content.pop(key, None)
            if value is not None:
                content[key] = value
            if content == current.content:
                continue
            try:
                await self.rooms.send_event(user_id, None, room_id, MEMBER, content, state_key=user_id)
            except MatrixError as exc:
                log.warning("could not announce the new %s of %s in %s: %s", key, user_id, room_id, exc.message)
