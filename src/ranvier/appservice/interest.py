"""Which events, rooms and users an application service is interested in (the Application
Service API's rules, read as Synapse reads them):

- an event its sender or a user of its namespaces sent, or a membership event whose
  target is such a user;
- any event of a room whose ID is in its room namespaces, one of whose aliases is in its
  alias namespaces (the room's local aliases, and the `alias` and `alt_aliases` of its
  canonical alias event), or where a local user it claims is joined (the room's current
  state; only this server's users can be a service's);
- (for presence) a user it claims, or one joined to a room it is interested in.

A room is judged once per batch of events, never once per event; the part its members
and canonical aliases decide is worked out once per state of the room and kept on the
room's head.
"""

from __future__ import annotations

from typing import Iterable

from ranvier.appservice.registration import Registration
from ranvier.events.identifiers import domain_of
from ranvier.events.model import MEMBER, Event
from ranvier.rooms.directory import CANONICAL_ALIAS
from ranvier.rooms.head import JOIN, State, joined_members
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import EventRow


def canonical_aliases(state: State) -> list[str]:
    """The aliases the room's canonical alias event names."""
    event = state.get((CANONICAL_ALIAS, ""))
    if event is None:
        return []
    content = event.content
    named = [content.get("alias"), *(content.get("alt_aliases") if isinstance(content.get("alt_aliases"), list) else ())]
    return [alias for alias in named if isinstance(alias, str)]


def claims_event(registration: Registration, event: Event) -> bool:
    """Whether the event is the service's for its sender or, a membership, for its target."""
    return registration.claims_user(event.sender) or (
        event.type == MEMBER and isinstance(event.state_key, str) and registration.claims_user(event.state_key))


class Interest:
    def __init__(self, rooms: RoomServer, registrations: list[Registration]) -> None:
        self.rooms = rooms
        self.registrations = registrations

    def _by_state(self, state: State) -> frozenset[str]:
        """The IDs of the services a room's state interests: a local member they claim is
        joined, or its canonical alias event names an alias of theirs."""
        server_name = self.rooms.server_name
        members = [user_id for user_id in joined_members(state) if domain_of(user_id) == server_name]
        aliases = canonical_aliases(state)
        return frozenset(registration.id for registration in self.registrations
                         if any(registration.claims_user(user_id) for user_id in members)
                         or any(registration.claims_alias(alias) for alias in aliases))

    async def rooms_of(self, registration: Registration, room_ids: Iterable[str]) -> set[str]:
        """The rooms among these that interest the service (a few queries in all)."""
        room_ids = list(dict.fromkeys(room_ids))
        interested = {room_id for room_id in room_ids if registration.claims_room(room_id)}
        rest = [room_id for room_id in room_ids if room_id not in interested]
        if rest:
            for room_id, head in (await self.rooms.heads(rest)).items():
                if registration.id in head.derived(self._by_state):
                    interested.add(room_id)
            rest = [room_id for room_id in rest if room_id not in interested]
        if rest and registration.aliases:
            for room_id, aliases in (await self.rooms.store.aliases_of_rooms(rest)).items():
                if any(registration.claims_alias(alias) for alias in aliases):
                    interested.add(room_id)
        return interested

    async def events(self, registration: Registration, rows: list[EventRow]) -> list[EventRow]:
        """The rows (of any rooms) whose events interest the service, in their order."""
        direct = [claims_event(registration, row.event) for row in rows]
        rooms = await self.rooms_of(registration, [row.event.room_id for row, claimed in zip(rows, direct)
                                                   if not claimed])
        return [row for row, claimed in zip(rows, direct) if claimed or row.event.room_id in rooms]

    async def user(self, registration: Registration, user_id: str) -> bool:
        """Whether the service claims the user or is interested in a room they are joined to."""
        if registration.claims_user(user_id):
            return True
        memberships = await self.rooms.user_memberships(user_id)
        joined = [room_id for room_id, (membership, _) in memberships.items() if membership == JOIN]
        return bool(joined) and bool(await self.rooms_of(registration, joined))
