"""The room server: the only writer of room events (rooms/writer.py writes them), and what
clients ask of it: sending, membership, creating rooms.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from typing import Any, Awaitable, Callable, Protocol

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.canonical_json import CanonicalJSONError, check_canonical
from ranvier.events.identifiers import InvalidIdentifier, domain_of, parse_user_id
from ranvier.events.model import CREATE, MEMBER, POWER_LEVELS, REDACTION, Event
from ranvier.events.room_versions import ROOM_VERSIONS, RoomVersion
from ranvier.rooms.head import Draft, RoomHead
from ranvier.rooms.input import EventKind
from ranvier.rooms.store import NewRoom
from ranvier.rooms.sending import QueuedSend, RoomSending
from ranvier.rooms.writer import BAN, GUEST_ACCESS, HELD_MEMBERSHIPS, HISTORY_VISIBILITY, INVITE, JOIN, KNOCK, LEAVE, now_ms
from ranvier.storage.engine import UniqueViolation

log = logging.getLogger(__name__)

__all__ = ["BAN", "INVITE", "JOIN", "KNOCK", "LEAVE", "RoomServer"]
#: The state an invitee or knocker is shown of a room (with their own member event).
STRIPPED_STATE_TYPES = (
    "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias",
    "m.room.encryption", "m.room.topic",
)


class RemoteMembership(Protocol):
    """Membership handshakes with other servers (the federation service, handed over by
    the server): joining, leaving and knocking on rooms this server does not hold, and
    inviting other servers' users."""

    async def join(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> str: ...

    async def leave(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> str: ...

    async def knock(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> str: ...

    async def invite(self, event: Event, version: RoomVersion, room_state: list[dict[str, Any]]) -> Event: ...


class RoomServer(RoomSending):
    #: Set by the server when federation is on; None: only local users take part.
    remote: RemoteMembership | None = None
    #: Set by the server when application services are registered: asks the services
    #: whose namespaces hold an unknown local user to create it; whether one did.
    unknown_user: Callable[[str], Awaitable[bool]] | None = None

    async def _local_user_exists(self, user_id: str) -> bool:
        """Whether this server's user exists, once the application services were asked."""
        if await self.users.get_profile(user_id) is not None:
            return True
        return (self.unknown_user is not None and await self.unknown_user(user_id)
                and await self.users.get_profile(user_id) is not None)

    # -- sending -----------------------------------------------------------------------------

    async def send_event(
        self,
        sender: str,
        device_id: str | None,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
        timestamp: int | None = None,
    ) -> str:
        """Send a message or state event; a repeated (device, txn_id) returns the first event.
        The send queues behind the room's others and is written with them (rooms/sending.py).
        `timestamp`: the event's origin_server_ts (an application service's `ts`), else now."""
        check_event_content(event_type, content, state_key)
        if txn_id is not None and device_id:
            earlier = self._txns.get((room_id, sender, device_id, txn_id))
            if earlier is not None:
                return earlier
        if (self.unknown_user is not None and event_type == MEMBER and isinstance(state_key, str)
                and domain_of(state_key) == self.server_name):
            await self._local_user_exists(state_key)  # an application service's user is made before the checks

        async def check(head: RoomHead) -> None:
            if event_type == MEMBER and state_key is not None:
                if room_id in self.blocked_rooms and content.get("membership") in (JOIN, INVITE, KNOCK):
                    raise MatrixError("M_FORBIDDEN", "This room has been blocked on this server")
                await self._check_membership_target(head, state_key, content)
            if event_type == REDACTION:
                await self._check_redaction(head, sender, content)
            for send_check in self.send_checks:
                await send_check(head, sender, event_type, content, state_key)

        send = QueuedSend(sender, device_id, event_type, content, state_key, txn_id, check,
                          asyncio.get_running_loop().create_future(), timestamp)
        self.queue_send(room_id, send)
        event_id = await send.answer
        if event_type == GUEST_ACCESS and state_key == "" and content.get("guest_access") != "can_join":
            await self._remove_guests(room_id)
        return event_id

    async def sent_before(self, room_id: str, sender: str, device_id: str | None, txn_id: str, *,
                          ask_database: bool) -> str | None:
        """The event a (device, txn_id) already sent to the room: from memory, or from the
        database (a send from before a restart) when `ask_database`."""
        if device_id is None:
            return None
        earlier = self._txns.get((room_id, sender, device_id, txn_id))
        if earlier is None and ask_database:
            earlier = await self.store.event_by_txn(room_id, sender, device_id, txn_id)
        return earlier

    async def _remove_guests(self, room_id: str) -> None:
        """The guest access module: a room that stops admitting guests makes its guests leave."""
        head = await self.head(room_id)
        local_members = [user_id for user_id in head.joined if domain_of(user_id) == self.server_name]
        for guest in await self.users.guests_among(local_members):
            try:
                await self.update_membership(guest, room_id, guest, LEAVE)
            except MatrixError as exc:
                log.warning("could not remove guest %s from %s: %s", guest, room_id, exc.message)

    async def _check_redaction(self, head: RoomHead, sender: str, content: dict[str, Any]) -> None:
        """Redacting someone else's event needs the redact power level (the spec's server check)."""
        target_id = content.get("redacts")
        if not isinstance(target_id, str):
            raise MatrixError("M_BAD_JSON", "A redaction must name the event it redacts")
        target = (await self.store.get_event_rows([target_id])).get(target_id)
        if target is None or target.event.room_id != head.room_id:
            raise MatrixError("M_NOT_FOUND", "Unknown event")
        if target.event.sender != sender and (
                auth_rules.get_power_level(head.state, sender) < auth_rules.power_level_setting(head.state, "redact")):
            raise MatrixError("M_FORBIDDEN", "You may not redact other users' events")

    async def _check_membership_target(self, head: RoomHead, target: str, content: dict[str, Any]) -> None:
        try:
            parse_user_id(target)
        except InvalidIdentifier:
            raise MatrixError("M_INVALID_PARAM", "The state key of a membership event must be a user ID") from None
        if domain_of(target) == self.server_name and await self.users.get_profile(target) is None:
            raise MatrixError("M_NOT_FOUND", f"Unknown user {target}")
        if domain_of(target) != self.server_name and content.get("membership") in (JOIN, KNOCK):
            raise MatrixError("M_FORBIDDEN", "Only a user's own server joins them or knocks for them")
        if domain_of(target) != self.server_name and content.get("membership") == INVITE and self.remote is None:
            raise MatrixError("M_FORBIDDEN", "This server does not federate; only local users can take part")

    # -- membership --------------------------------------------------------------------------

    async def member_content(self, user_id: str, membership: str, reason: str | None = None,
                             extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A membership event's content, with the user's profile copied into joins and invites."""
        content: dict[str, Any] = {"membership": membership}
        if membership in (JOIN, INVITE, KNOCK):
            profile = await self.users.get_profile(user_id)
            if profile is not None:
                if profile[0] is not None:
                    content["displayname"] = profile[0]
                if profile[1] is not None:
                    content["avatar_url"] = profile[1]
        if reason:
            content["reason"] = reason
        content.update(extra or {})
        return content

    async def update_membership(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Invite, join, leave, kick, ban, unban or knock: the auth rules decide who may.
        Inviting another server's user needs that server's signature; leaving a room this
        server does not hold (an invite from another server) goes through the inviter's."""
        content = await self.member_content(target, membership, reason, extra)
        if membership == INVITE and domain_of(target) != self.server_name and self.remote is not None:
            return await self._invite_remote(sender, room_id, target, content)
        if membership == LEAVE and sender == target and self.remote is not None:
            head = await self.head_if_known(room_id)
            if head is not None and not head.resident:
                return await self.remote.leave(target, room_id, await self._candidates(room_id, target, [], head),
                                               content)
        return await self.send_event(sender, None, room_id, MEMBER, content, state_key=target, txn_id=txn_id)

    async def knock(self, user_id: str, room_id: str, *, reason: str | None = None, servers: list[str] = ()) -> str:
        """Knock on a room: here, or through the given servers when this server does not hold it."""
        head = await self.head_if_known(room_id)
        if head is None or not head.resident:
            if self.remote is None or head is None and not servers and domain_of(room_id) in (None, self.server_name):
                raise MatrixError("M_NOT_FOUND", "Unknown room")
            self._refuse_blocked(room_id)
            content = await self.member_content(user_id, KNOCK, reason)
            return await self.remote.knock(user_id, room_id, await self._candidates(room_id, user_id, servers, head),
                                           content)
        return await self.update_membership(user_id, room_id, user_id, KNOCK, reason=reason)

    def _refuse_blocked(self, room_id: str) -> None:
        if room_id in self.blocked_rooms:
            raise MatrixError("M_FORBIDDEN", "This room has been blocked on this server")

    async def _candidates(self, room_id: str, user_id: str, servers: list[str], head: RoomHead | None) -> list[str]:
        """Servers to ask for a room this server does not hold (or no longer follows): those
        given, the inviter's, the room ID's (before version 12), and those of its members."""
        candidates = list(servers)
        event_id = await self.store.membership_event_id(room_id, user_id)
        if event_id is not None:
            row = (await self.store.get_event_rows([event_id])).get(event_id)
            if row is not None:
                candidates.append(domain_of(row.event.sender))
        candidates.append(domain_of(room_id))
        if head is not None:
            candidates += [domain_of(member) for member in head.joined]
        return [server for server in dict.fromkeys(candidates) if server and server != self.server_name]

    async def _invite_remote(self, sender: str, room_id: str, target: str, content: dict[str, Any]) -> str:
        """Invite another server's user: the invite is built here, signed by their server
        (which may refuse it), then stored."""
        async with self._lock(room_id):
            head = await self.head(room_id)
            self._refuse_blocked(room_id)
            await self._check_membership_target(head, target, content)
            draft = await self._draft(head)
            event = self._build(draft, sender, MEMBER, content, state_key=target, now=now_ms())
            room_state = self.stripped_state(head, sender)
        if sender in self.shadow_banned:
            return event.event_id
        signed = await self.remote.invite(event, head.version, room_state)
        outcome = (await self.input(room_id, [signed], EventKind.LOCAL))[signed.event_id]
        if outcome.rejected_reason is not None:
            raise MatrixError("M_FORBIDDEN", outcome.rejected_reason)
        return signed.event_id

    def stripped_state(self, head: RoomHead, user_id: str) -> list[dict[str, Any]]:
        """What an invitee or knocker is shown of a room, as PDUs: a few state events (the
        create event first) and the member event of `user_id`."""
        keys = [(event_type, "") for event_type in STRIPPED_STATE_TYPES] + [(MEMBER, user_id)]
        return [head.state[key].pdu for key in keys if key in head.state]

    async def membership_event(self, room_id: str, user_id: str) -> Event | None:
        """The user's membership event: from the room's state, or, for a room this server
        does not hold (an invite or knock through another server), as stored on its own."""
        head = await self.head(room_id)
        event = head.state.get((MEMBER, user_id))
        if event is None and not head.resident:
            event_id = await self.store.membership_event_id(room_id, user_id)
            row = (await self.store.get_event_rows([event_id])).get(event_id) if event_id else None
            event = row.event if row is not None else None
        return event

    async def stripped_state_of_membership(self, room_id: str, user_id: str) -> list[dict[str, Any]]:
        """What an invitee or knocker sees of a room in /sync (type, state_key, content,
        sender): `stripped_state`, or, for a room of another server, what that server sent
        with the invite or knock; their own membership event last."""
        head = await self.head(room_id)
        own = await self.membership_event(room_id, user_id)
        if head.resident:
            events = [head.state[(t, "")].pdu for t in STRIPPED_STATE_TYPES if (t, "") in head.state]
        else:
            sent = (own.unsigned.get("invite_room_state") or own.unsigned.get("knock_room_state")) if own else None
            events = [e for e in sent if isinstance(e, dict)
                      and not (e.get("type") == MEMBER and e.get("state_key") == user_id)] if isinstance(sent, list) else []
        if own is not None:
            events.append(own.pdu)
        return [{"type": e.get("type"), "state_key": e.get("state_key"), "content": e.get("content"),
                 "sender": e.get("sender")} for e in events
                if isinstance(e.get("type"), str) and isinstance(e.get("state_key"), str)
                and isinstance(e.get("content"), dict)]

    async def event_template(self, room_id: str, sender: str, membership: str) -> tuple[dict[str, Any], RoomVersion]:
        """The membership event of another server's user as this server would build it now
        (make_join, make_leave, make_knock): prev and auth events, depth, without hashes or
        signatures; M_FORBIDDEN unless the current state allows it."""
        async with self._lock(room_id):
            head = await self.head(room_id)
            if not head.resident:
                raise MatrixError("M_NOT_FOUND", "This server is not in the room")
            if membership in (JOIN, KNOCK):
                self._refuse_blocked(room_id)
            extra: dict[str, Any] = {}
            current = head.state.get((MEMBER, sender))
            if (membership == JOIN and auth_rules.join_rule_of(head.state) in ("restricted", "knock_restricted")
                    and (current is None or current.membership not in (INVITE, JOIN))):
                authoriser = await self._restricted_join_authoriser(head, sender)
                if authoriser is None:
                    raise MatrixError("M_UNABLE_TO_AUTHORISE_JOIN", "No member here may authorise this join")
                extra["join_authorised_via_users_server"] = authoriser
            draft = await self._draft(head)
            event = self._build(draft, sender, MEMBER, {"membership": membership, **extra}, state_key=sender,
                                now=now_ms())
        return {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures", "unsigned")}, head.version

    async def join(self, user_id: str, room_id: str, *, reason: str | None = None, guest: bool = False,
                   servers: list[str] = ()) -> str:
        """Join a room: here when this server holds it and follows it, else through the given
        servers (or the inviter's, or the room ID's). A restricted room admits members of
        its allowed rooms, and a guest only a room whose `m.room.guest_access` is `can_join`."""
        head = await self.head_if_known(room_id)
        if head is None or not head.resident or (not any(domain_of(u) == self.server_name for u in head.joined)
                                                 and any(domain_of(u) != self.server_name for u in head.joined)):
            candidates = await self._candidates(room_id, user_id, list(servers), head)
            if self.remote is None or not candidates:
                if head is None or not head.resident:
                    raise MatrixError("M_NOT_FOUND", "Unknown room")
            else:
                if guest:
                    raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guests may not join rooms of other servers")
                self._refuse_blocked(room_id)
                await self.remote.join(user_id, room_id, candidates, await self.member_content(user_id, JOIN, reason))
                return room_id
        current = head.state.get((MEMBER, user_id))
        if current is not None and current.membership == JOIN:
            return room_id
        if guest and not guests_may_join(head):
            raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guests may not join this room")
        extra: dict[str, Any] = {}
        join_rule = auth_rules.join_rule_of(head.state)
        if join_rule in ("restricted", "knock_restricted") and (current is None or current.membership != INVITE):
            authoriser = await self._restricted_join_authoriser(head, user_id)
            if authoriser is None:
                raise MatrixError("M_FORBIDDEN", "You are not allowed to join this room")
            extra["join_authorised_via_users_server"] = authoriser
        await self.update_membership(user_id, room_id, user_id, JOIN, reason=reason, extra=extra)
        return room_id

    async def _restricted_join_authoriser(self, head: RoomHead, user_id: str) -> str | None:
        """A local member who may invite, if the user is in one of the rooms the join rule allows."""
        join_rules = head.state.get(("m.room.join_rules", ""))
        allow = join_rules.content.get("allow") if join_rules else None
        if not isinstance(allow, list):
            return None
        allowed_rooms = [entry["room_id"] for entry in allow if isinstance(entry, dict)
                         and entry.get("type") == "m.room_membership" and isinstance(entry.get("room_id"), str)]
        memberships = [await self.store.membership_of(allowed_room, user_id) for allowed_room in allowed_rooms]
        if not any(m is not None and m[0] == JOIN for m in memberships):
            return None
        invite_level = auth_rules.power_level_setting(head.state, "invite")
        for (event_type, state_key), event in head.state.items():
            if (event_type == MEMBER and event.membership == JOIN and domain_of(state_key) == self.server_name
                    and auth_rules.get_power_level(head.state, state_key) >= invite_level):
                return state_key
        return None

    async def leave_all_rooms(self, user_id: str) -> None:
        """Leave every room (invites and knocks withdrawn too): for deactivated accounts."""
        for room_id, (membership, _) in list((await self.user_memberships(user_id)).items()):
            if membership in HELD_MEMBERSHIPS:
                try:
                    await self.update_membership(user_id, room_id, user_id, LEAVE)
                except MatrixError as exc:  # e.g. the room forbids leaving; the account is gone anyway
                    log.warning("could not remove %s from %s: %s", user_id, room_id, exc.message)

    async def deactivated_members(self) -> list[str]:
        """Deactivated accounts still joined, invited or knocking somewhere: those deactivated
        from the command line, which cannot write room events beside a running server."""
        return await self.store.deactivated_members(HELD_MEMBERSHIPS)

    async def forget(self, user_id: str, room_id: str) -> None:
        membership = await self.store.membership_of(room_id, user_id)
        if membership is None:
            raise MatrixError("M_NOT_FOUND", "You have never been in this room")
        if membership[0] in HELD_MEMBERSHIPS:
            raise MatrixError("M_UNKNOWN", "Leave the room before forgetting it")
        await self.store.forget(room_id, user_id)
        entry = self._user_rooms.get(user_id)
        if isinstance(entry, dict):
            entry.pop(room_id, None)

    # -- creating rooms ----------------------------------------------------------------------

    async def create_room(
        self,
        creator: str,
        *,
        room_version: str,
        preset: str,
        is_public: bool,
        alias: str | None,
        name: str | None,
        topic: str | None,
        invite: list[str],
        is_direct: bool,
        initial_state: list[tuple[str, str, dict[str, Any]]],
        power_level_content_override: dict[str, Any] | None,
        creation_content: dict[str, Any],
    ) -> str:
        """Create a room with its events in the order the spec gives, all in one transaction."""
        version = ROOM_VERSIONS.get(room_version)
        if version is None:
            raise MatrixError("M_UNSUPPORTED_ROOM_VERSION", f"Room version {room_version!r} is not supported")
        if alias is not None and await self.store.room_of_alias(alias) is not None:
            raise MatrixError("M_ROOM_IN_USE", "That room alias is already taken")
        for invitee in invite:
            if domain_of(invitee) != self.server_name or not await self._local_user_exists(invitee):
                raise MatrixError("M_NOT_FOUND", f"Unknown user {invitee}")
        now = now_ms()
        create_content = {**creation_content, "room_version": room_version}
        if not version.implicit_room_creator:
            create_content["creator"] = creator
        room_id = None if version.room_id_is_create_event_id else f"!{_random_id()}:{self.server_name}"
        head = RoomHead(room_id or "", version, {}, 0, 0, {})
        draft = Draft(head)
        create = self._add_event(draft, creator, CREATE, create_content, state_key="", now=now)
        if room_id is None:
            head.room_id = create.room_id
        self._add_event(draft, creator, MEMBER, await self.member_content(creator, JOIN), state_key=creator, now=now)

        trusted = preset == "trusted_private_chat"
        power_levels = default_power_levels(creator, version, preset)
        if trusted:
            for invitee in invite:
                if not version.privileged_creators:
                    power_levels["users"][invitee] = 100
        if power_level_content_override:
            power_levels.update(power_level_content_override)
        self._add_event(draft, creator, POWER_LEVELS, power_levels, state_key="", now=now)
        if alias is not None:
            self._add_event(draft, creator, "m.room.canonical_alias", {"alias": alias}, state_key="", now=now)
        join_rule = "public" if preset == "public_chat" else "invite"
        preset_state = [
            ("m.room.join_rules", {"join_rule": join_rule}),
            (HISTORY_VISIBILITY, {"history_visibility": "shared"}),
            (GUEST_ACCESS, {"guest_access": "forbidden" if preset == "public_chat" else "can_join"}),
        ]
        explicit = {(t, sk) for t, sk, _ in initial_state}
        for event_type, content in preset_state:
            if (event_type, "") not in explicit:
                self._add_event(draft, creator, event_type, content, state_key="", now=now)
        for event_type, state_key, content in initial_state:
            self._add_event(draft, creator, event_type, content, state_key=state_key, now=now)
        if name is not None:
            self._add_event(draft, creator, "m.room.name", {"name": name}, state_key="", now=now)
        if topic is not None:
            self._add_event(draft, creator, "m.room.topic", {"topic": topic}, state_key="", now=now)
        for invitee in invite:
            extra = {"is_direct": True} if is_direct else None
            self._add_event(draft, creator, MEMBER, await self.member_content(invitee, INVITE, extra=extra),
                            state_key=invitee, now=now)
        room_type = creation_content.get("type")
        new_room = NewRoom(head.room_id, room_version, creator, now, is_public,
                           room_type if isinstance(room_type, str) else None, [alias] if alias else [])
        async with self._lock(head.room_id):
            batch = await self._input.batch_from_draft(draft)
            batch.new_room = new_room
            try:
                pending = await self._write(batch)
            except UniqueViolation:
                if alias is None:
                    raise
                # Only the alias can clash (room and event IDs are random or hashes): a
                # concurrent createRoom took it after the check above.
                raise MatrixError("M_ROOM_IN_USE", "That room alias is already taken") from None
        await self._announce(pending)
        return head.room_id


def guests_may_join(head: RoomHead) -> bool:
    """The guest access module: guests join only where `m.room.guest_access` is `can_join`."""
    guest_access = head.state.get((GUEST_ACCESS, ""))
    return guest_access is not None and guest_access.content.get("guest_access") == "can_join"


def default_power_levels(creator: str, version: RoomVersion, preset: str) -> dict[str, Any]:
    """Power levels of a new room: the creator at 100 (implicit for v12 creators)."""
    return {
        "users": {} if version.privileged_creators else {creator: 100},
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if version.privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0 if preset in ("private_chat", "trusted_private_chat") else 50,
        "historical": 100,
        "notifications": {"room": 50},
    }


def check_event_content(event_type: str, content: Any, state_key: str | None) -> None:
    """What every client-sent event must satisfy before it is built."""
    if not isinstance(content, dict):
        raise MatrixError("M_BAD_JSON", "Event content must be an object")
    if not event_type or len(event_type.encode()) > 255:
        raise MatrixError("M_INVALID_PARAM", "Event type must be 1 to 255 bytes")
    if state_key is not None and len(state_key.encode()) > 255:
        raise MatrixError("M_INVALID_PARAM", "State key must be at most 255 bytes")
    try:
        check_canonical(content)
    except CanonicalJSONError as exc:
        raise MatrixError("M_BAD_JSON", f"Event content is not valid canonical JSON: {exc}") from None


def _random_id() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(18))
