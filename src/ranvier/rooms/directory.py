"""Room aliases and the published room directories.

Aliases live in `room_aliases` (one row per local alias, with the user who made it);
publication in the server's own directory is the `rooms.is_public` flag, in the directory
of an application service's network (one per service and network ID, which bridges fill
with their portal rooms) a row of `appservice_room_list`. `/publicRooms` pages the
server's own directory, one network's (`third_party_instance_id`) or all of them
(`include_all_networks`), as Synapse does. What a directory entry says about a room
(name, topic, members, join rule, ...) is read from the room's current state, which the
room server keeps in memory: one query lists the published rooms with their member
counts, then only the rooms that are shown (or searched) have their heads loaded.
"""

from __future__ import annotations

import base64
import binascii
import logging
from bisect import bisect_left, bisect_right
from typing import Any, Awaitable, Callable

import orjson

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.identifiers import InvalidIdentifier, domain_of, is_valid_room_alias, split_id
from ranvier.events.model import CREATE, MEMBER
from ranvier.rooms.service import JOIN, RoomHead, RoomServer

log = logging.getLogger(__name__)

CANONICAL_ALIAS = "m.room.canonical_alias"
DEFAULT_PAGE = 100
MAX_PAGE = 500


def _string(head: RoomHead, event_type: str, field: str) -> str | None:
    event = head.state.get((event_type, ""))
    value = event.content.get(field) if event is not None else None
    return value if isinstance(value, str) and value else None


def room_type_of(head: RoomHead) -> str | None:
    create = head.state.get((CREATE, ""))
    value = create.content.get("type") if create is not None else None
    return value if isinstance(value, str) else None


def joined_count(head: RoomHead) -> int:
    return sum(1 for (event_type, _), event in head.state.items() if event_type == MEMBER and event.membership == JOIN)


def room_summary(head: RoomHead, num_joined_members: int | None = None) -> dict[str, Any]:
    """The spec's PublishedRoomsChunk of a room, from its current state."""
    summary: dict[str, Any] = {
        "room_id": head.room_id,
        "num_joined_members": joined_count(head) if num_joined_members is None else num_joined_members,
        "world_readable": _string(head, "m.room.history_visibility", "history_visibility") == "world_readable",
        "guest_can_join": _string(head, "m.room.guest_access", "guest_access") == "can_join",
        "join_rule": auth_rules.join_rule_of(head.state),
    }
    for key, (event_type, field) in {
        "name": ("m.room.name", "name"),
        "topic": ("m.room.topic", "topic"),
        "avatar_url": ("m.room.avatar", "url"),
        "canonical_alias": (CANONICAL_ALIAS, "alias"),
    }.items():
        value = _string(head, event_type, field)
        if value is not None:
            summary[key] = value
    room_type = room_type_of(head)
    if room_type is not None:
        summary["room_type"] = room_type
    return summary


def _matches(summary: dict[str, Any], term: str) -> bool:
    return any(term in summary[key].casefold() for key in ("name", "topic", "canonical_alias") if key in summary)


def _token(direction: str, key: tuple[int, str]) -> str:
    raw = orjson.dumps([direction, -key[0], key[1]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_token(token: str) -> tuple[str, tuple[int, str]]:
    try:
        direction, count, room_id = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if direction not in ("n", "p") or type(count) is not int or not isinstance(room_id, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise MatrixError("M_INVALID_PARAM", "since is not a pagination token of this server") from None
    return direction, (-count, room_id)


class RoomDirectory:
    """Aliases (create, resolve, delete, list) and the published room directory."""

    def __init__(self, rooms: RoomServer) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.server_name = rooms.server_name
        #: Set by the server when federation is on: another server's alias, its room and servers.
        self.remote_alias: Callable[[str], Awaitable[dict[str, Any]]] | None = None
        #: ... and a page of another server's room directory: remote_public_rooms(server, request body).
        self.remote_public_rooms: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
        #: Set by the server when application services are registered: asks the services
        #: whose namespaces hold an unknown local alias to create it; whether one did.
        self.unknown_alias: Callable[[str], Awaitable[bool]] | None = None
        #: Set by the server: the (service ID, network ID) a `third_party_instance_id`
        #: names, None for one no registered service made (raises for a malformed one).
        self.instance_network: Callable[[str], tuple[str, str] | None] | None = None

    # -- who may -------------------------------------------------------------------------

    async def _is_admin(self, user_id: str) -> bool:
        account = await self.rooms.users.get_account(user_id)
        return account is not None and account.is_admin

    def _may_send_state(self, head: RoomHead, user_id: str, event_type: str) -> bool:
        """A joined member with the power to send `event_type` as state."""
        if auth_rules.membership_of(head.state, user_id) != JOIN:
            return False
        needed = auth_rules.required_power_level(head.state, event_type, True)
        return auth_rules.get_power_level(head.state, user_id) >= needed

    # -- aliases -------------------------------------------------------------------------

    def check_alias(self, alias: str, *, local: bool) -> None:
        """M_INVALID_PARAM unless `alias` is `#localpart:domain` (of this server when `local`)."""
        try:
            localpart, domain = split_id(alias, "#")
        except InvalidIdentifier as exc:
            raise MatrixError("M_INVALID_PARAM", f"Room alias invalid: {exc}") from None
        if not localpart or not is_valid_room_alias(alias) or any(c.isspace() for c in localpart):
            raise MatrixError("M_INVALID_PARAM", "Room alias invalid")
        if local and domain != self.server_name:
            raise MatrixError("M_INVALID_PARAM", f"Room aliases must end with :{self.server_name} on this server")

    async def check_canonical_alias(self, head: RoomHead, sender: str, event_type: str, content: dict[str, Any],
                                    state_key: str | None) -> None:
        """A send check of the room server: the aliases an `m.room.canonical_alias` event
        adds must be valid (M_INVALID_PARAM) and point to the room (M_BAD_ALIAS; remote
        aliases cannot be checked without federation, so they are refused too). Aliases
        the previous event already had are not checked again."""
        if event_type != CANONICAL_ALIAS or state_key != "":
            return
        previous = head.state.get((CANONICAL_ALIAS, ""))
        old_alias = previous.content.get("alias") if previous is not None else None
        old_alt = previous.content.get("alt_aliases") if previous is not None else None
        old_alt = set(a for a in old_alt if isinstance(a, str)) if isinstance(old_alt, list) else set()
        alias = content.get("alias")
        if alias is not None and not isinstance(alias, str):
            raise MatrixError("M_INVALID_PARAM", "alias must be a string")
        alt_aliases = content.get("alt_aliases", [])
        if not isinstance(alt_aliases, list) or not all(isinstance(a, str) for a in alt_aliases):
            raise MatrixError("M_INVALID_PARAM", "alt_aliases must be a list of room aliases")
        added = [a for a in alt_aliases if a not in old_alt]
        if alias and alias != old_alias:
            added.insert(0, alias)
        for new_alias in added:
            self.check_alias(new_alias, local=False)
        for new_alias in added:
            local = split_id(new_alias, "#")[1] == self.server_name
            if not local or await self.store.room_of_alias(new_alias) != head.room_id:
                raise MatrixError("M_BAD_ALIAS", f"The alias {new_alias} does not point to this room")

    async def resolve(self, alias: str) -> dict[str, Any]:
        """The room of an alias and servers to join it through: this server's aliases here
        (an unknown one in an application service's namespace is asked of the service
        first), others' through their server (with federation)."""
        self.check_alias(alias, local=False)
        local = split_id(alias, "#")[1] == self.server_name
        if not local and self.remote_alias is not None:
            return await self.remote_alias(alias)
        room_id = await self.store.room_of_alias(alias) if local else None
        if room_id is None and local and self.unknown_alias is not None and await self.unknown_alias(alias):
            room_id = await self.store.room_of_alias(alias)
        if room_id is None:
            raise MatrixError("M_NOT_FOUND", f"Room alias {alias} not found")
        head = await self.rooms.head(room_id)
        others = sorted({domain_of(user_id) for user_id in head.joined} - {self.server_name, None})
        return {"room_id": room_id, "servers": [self.server_name, *others]}

    async def create_alias(self, user_id: str, alias: str, room_id: str) -> None:
        """Map a local alias to a room the user is joined to (server admins: any room)."""
        self.check_alias(alias, local=True)
        if not await self.rooms.room_exists(room_id):
            raise MatrixError("M_NOT_FOUND", "Unknown room")
        head = await self.rooms.head(room_id)
        if auth_rules.membership_of(head.state, user_id) != JOIN and not await self._is_admin(user_id):
            raise MatrixError("M_FORBIDDEN", "You must be joined to the room to give it an alias")
        if not await self.store.create_alias(alias, room_id, user_id):
            raise MatrixError("M_UNKNOWN", f"Room alias {alias} already exists", status=409)

    async def delete_alias(self, user_id: str, alias: str) -> None:
        """Its creator, a member who may set the room's canonical alias, or a server admin may
        delete an alias. A canonical alias event naming it is updated when the user may."""
        self.check_alias(alias, local=False)
        entry = await self.store.alias_entry(alias)
        if entry is None:
            raise MatrixError("M_NOT_FOUND", f"Room alias {alias} not found")
        room_id, creator = entry
        head = await self.rooms.head(room_id)
        if (user_id != creator and not self._may_send_state(head, user_id, CANONICAL_ALIAS)
                and not await self._is_admin(user_id)):
            raise MatrixError("M_FORBIDDEN", "You may not delete this alias")
        if not await self.store.delete_alias(alias):
            raise MatrixError("M_NOT_FOUND", f"Room alias {alias} not found")
        await self._drop_from_canonical_alias(user_id, head, alias)

    async def _drop_from_canonical_alias(self, user_id: str, head: RoomHead, alias: str) -> None:
        event = head.state.get((CANONICAL_ALIAS, ""))
        if event is None:
            return
        content = dict(event.content)
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and alias in alt:
            content["alt_aliases"] = [a for a in alt if a != alias]
            changed = True
        if changed and self._may_send_state(head, user_id, CANONICAL_ALIAS):
            try:
                await self.rooms.send_event(user_id, None, head.room_id, CANONICAL_ALIAS, content, state_key="")
            except MatrixError as exc:  # the alias is gone all the same
                log.warning("alias %s deleted, but the canonical alias event of %s could not drop it: %s %s", alias,
                            head.room_id, exc.errcode, exc.message)

    async def local_aliases(self, user_id: str, room_id: str) -> list[str]:
        """The room's local aliases, for its members, anyone if it is world-readable, and admins."""
        if not await self.rooms.room_exists(room_id):
            if await self._is_admin(user_id):
                raise MatrixError("M_NOT_FOUND", "Unknown room")
            raise MatrixError("M_FORBIDDEN", "You are not a member of the room")
        head = await self.rooms.head(room_id)
        world_readable = _string(head, "m.room.history_visibility", "history_visibility") == "world_readable"
        if (not world_readable and auth_rules.membership_of(head.state, user_id) != JOIN
                and not await self._is_admin(user_id)):
            raise MatrixError("M_FORBIDDEN", "You are not a member of the room")
        return await self.store.aliases_of_room(room_id)

    # -- publication ---------------------------------------------------------------------

    async def visibility(self, room_id: str) -> str:
        row = await self.store.get_room(room_id)
        if row is None:
            raise MatrixError("M_NOT_FOUND", "Room not found")
        return "public" if row.is_public else "private"

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        """Publish or hide a room: members who may set its canonical alias, and server admins."""
        if visibility not in ("public", "private"):
            raise MatrixError("M_INVALID_PARAM", "visibility must be public or private")
        if not await self.rooms.room_exists(room_id):
            raise MatrixError("M_NOT_FOUND", "Room not found")
        head = await self.rooms.head(room_id)
        if not self._may_send_state(head, user_id, CANONICAL_ALIAS) and not await self._is_admin(user_id):
            raise MatrixError("M_FORBIDDEN", "You may not change this room's visibility in the directory")
        await self.store.set_public(room_id, visibility == "public")

    async def set_network_visibility(self, service_id: str, network_id: str, room_id: str, visibility: str) -> None:
        """Publish or hide a room in the directory of a service's network (the caller has
        checked that the request is the service's): 400 M_INVALID_PARAM for a visibility
        other than public or private, 404 M_NOT_FOUND for a room this server does not know."""
        if visibility not in ("public", "private"):
            raise MatrixError("M_INVALID_PARAM", "visibility must be public or private")
        if not await self.rooms.room_exists(room_id):
            raise MatrixError("M_NOT_FOUND", "Room not found")
        await self.store.set_network_public(room_id, service_id, network_id, visibility == "public")

    async def _listed(self, include_all_networks: bool,
                      third_party_instance_id: str | None) -> list[tuple[str, str | None, int]]:
        """The rows of the directory a /publicRooms request pages: the server's own, all of
        them, or one network's (none for an instance no registered service made). 400
        M_INVALID_PARAM for both at once, as Synapse refuses them."""
        if third_party_instance_id is None:
            return await self.store.public_rooms(all_networks=include_all_networks)
        if include_all_networks:
            raise MatrixError("M_INVALID_PARAM", "include_all_networks and third_party_instance_id exclude each other")
        network = self.instance_network(third_party_instance_id) if self.instance_network is not None else None
        return [] if network is None else await self.store.public_rooms(network)

    async def published_oldest_first(self) -> list[tuple[str, int]]:
        """(room_id, joined member count) of the published rooms someone is joined to,
        oldest first: an order that only grows at its end, for index-paged lists."""
        return [(room_id, count) for room_id, _, count in await self.store.public_rooms() if count > 0]

    async def public_rooms(
        self,
        *,
        limit: int | None = None,
        since: str | None = None,
        search_term: str | None = None,
        room_types: list[str | None] | None = None,
        include_all_networks: bool = False,
        third_party_instance_id: str | None = None,
    ) -> dict[str, Any]:
        """A page of the published rooms, most joined members first, then by room ID: of the
        server's own directory, of all the networks' too (`include_all_networks`), or of
        one network's (`third_party_instance_id`).

        `since` is a token of an earlier page (next_batch or prev_batch). Rooms nobody is
        joined to any more are left out.
        """
        limit = min(limit or DEFAULT_PAGE, MAX_PAGE)
        direction, anchor = _parse_token(since) if since else ("n", None)
        listed = [(room_id, room_type, count)
                  for room_id, room_type, count in await self._listed(include_all_networks, third_party_instance_id)
                  if count > 0 and (room_types is None or room_type in room_types)]
        listed.sort(key=lambda entry: (-entry[2], entry[0]))
        term = search_term.casefold().strip() if search_term else ""
        if term:
            matching = []
            for room_id, _, count in listed:
                summary = room_summary(await self.rooms.head(room_id), count)
                if _matches(summary, term):
                    matching.append(summary)
            keyed = [((-s["num_joined_members"], s["room_id"]), s) for s in matching]
        else:
            keyed = [((-count, room_id), None) for room_id, _, count in listed]
        keys = [key for key, _ in keyed]
        if anchor is None:
            start, end = 0, limit
        elif direction == "n":
            start = bisect_right(keys, anchor)
            end = start + limit
        else:
            end = bisect_left(keys, anchor)
            start = max(0, end - limit)
        page = keyed[start:end]
        chunk = []
        for key, summary in page:
            if summary is None:
                summary = room_summary(await self.rooms.head(key[1]), -key[0])
            chunk.append(summary)
        response: dict[str, Any] = {"chunk": chunk, "total_room_count_estimate": len(keyed)}
        if page and end < len(keyed):
            response["next_batch"] = _token("n", page[-1][0])
        if page and start > 0:
            response["prev_batch"] = _token("p", page[0][0])
        return response

