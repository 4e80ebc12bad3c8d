"""Membership handshakes with other servers (server-server API, "Joining Rooms", "Leaving
Rooms", "Inviting to a room", "Knocking upon a room").

Outbound (`RemoteMembership` of the room server): a local user joins, leaves or knocks on
a room this server does not hold by asking a server in it for a template (`make_*`),
signing it and sending it back (`send_*`); a join stores the room's state and auth chain
the resident server returns (each event checked) and starts the room here from them. An
invite of another server's user is signed by that server before it is stored.

Inbound: this server is the resident for other servers' users (`make_*`, `send_*`) and
countersigns invites of its own users.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.events.model import MEMBER, Event, build_event
from ranvier.events.redaction import redact
from ranvier.events.room_versions import ROOM_VERSIONS, RoomVersion
from ranvier.events.signing import SignatureError, sign_event
from ranvier.federation.acl import server_allowed
from ranvier.federation.client import FederationClient, FederationError, Unreachable, path_segment
from ranvier.federation.keys import ServerKeys
from ranvier.federation.pdus import InvalidPdu, checked_event, parse_pdu
from ranvier.federation.receiver import PduReceiver
from ranvier.federation.sender import PduSender
from ranvier.rooms.head import RoomHead
from ranvier.rooms.input import EventKind
from ranvier.rooms.service import INVITE, JOIN, KNOCK, LEAVE, RoomServer
from ranvier.rooms.store import EventRow

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = list(ROOM_VERSIONS)
_MAKE = {JOIN: "make_join", LEAVE: "make_leave", KNOCK: "make_knock"}
_SEND = {JOIN: "v2/send_join", LEAVE: "v2/send_leave", KNOCK: "v1/send_knock"}


def now_ms() -> int:
    return int(time.time() * 1000)


def federation_pdu(row: EventRow) -> dict[str, Any]:
    """An event as other servers are given it: redacted once redacted, without local data."""
    pdu = redact(row.event.pdu, row.event.room_version) if row.redacted_by else row.event.pdu
    return {key: value for key, value in pdu.items() if key != "unsigned"}



async def resident_room(rooms: RoomServer, room_id: str, origin: str) -> RoomHead:
    """The room's head, if this server is in the room and its server ACL lets the origin in
    (404 M_NOT_FOUND, 403 M_FORBIDDEN otherwise)."""
    head = await rooms.head_if_known(room_id)
    if head is None or not head.resident:
        raise MatrixError("M_NOT_FOUND", "This server is not in the room")
    if not server_allowed(head.state, origin):
        raise MatrixError("M_FORBIDDEN", "The room's server ACL forbids this server")
    return head


class Memberships:
    def __init__(self, rooms: RoomServer, keys: ServerKeys, client: FederationClient, receiver: PduReceiver,
                 sender: PduSender) -> None:
        self.rooms = rooms
        self.keys = keys
        self.client = client
        self.receiver = receiver
        self.sender = sender
        self.server_name = rooms.server_name

    # -- outbound: this server's users ----------------------------------------------------

    async def _template(self, membership: str, user_id: str, room_id: str,
                        servers: list[str]) -> tuple[str, dict[str, Any], RoomVersion]:
        """(server, template, version) from the first server that gives one."""
        error: MatrixError = MatrixError("M_NOT_FOUND", "No server in the room could be reached")
        query = {"ver": SUPPORTED_VERSIONS} if membership in (JOIN, KNOCK) else None
        for server in servers:
            try:
                answer = await self.client.get(
                    server, f"/_matrix/federation/v1/{_MAKE[membership]}/{path_segment(room_id)}/{path_segment(user_id)}",
                    query=query)
            except FederationError as exc:
                if exc.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
                    raise MatrixError("M_INCOMPATIBLE_ROOM_VERSION", "The room's version is not supported here",
                                      room_version=exc.body.get("room_version")) from None
                error = MatrixError("M_FORBIDDEN", f"{server} refused: {exc.body.get('error', exc.status)}")
                continue
            except Unreachable as exc:
                log.info("%s of %s in %s through %s failed: %s", _MAKE[membership], user_id, room_id, server, exc)
                continue
            template = answer.get("event") if isinstance(answer, dict) else None
            version = ROOM_VERSIONS.get(answer.get("room_version", "1")) if isinstance(answer, dict) else None
            if version is None:
                raise MatrixError("M_INCOMPATIBLE_ROOM_VERSION", "The room's version is not supported here")
            if not _template_fits(template, membership, user_id, room_id):
                error = MatrixError("M_UNKNOWN", f"{server} gave a template that is not this {membership}")
                continue
            return server, template, version
        raise error

    async def _handshake(self, membership: str, user_id: str, room_id: str, servers: list[str],
                         content: dict[str, Any]) -> tuple[str, Event, RoomVersion, Any]:
        server, template, version = await self._template(membership, user_id, room_id, servers)
        merged = {**content, **{k: v for k, v in template["content"].items() if k == "join_authorised_via_users_server"},
                  "membership": membership}
        event = build_event(
            version, room_id=room_id, sender=user_id, type=MEMBER, content=merged, state_key=user_id,
            prev_event_ids=_references(template.get("prev_events")), auth_event_ids=_references(template.get("auth_events")),
            depth=template.get("depth", 0) if isinstance(template.get("depth"), int) else 0,
            origin_server_ts=now_ms(), signing_key=self.rooms.signing_key, server_name=self.server_name,
        )
        try:
            answer = await self.client.put(
                server, f"/_matrix/federation/{_SEND[membership]}/{path_segment(room_id)}/{path_segment(event.event_id)}",
                event.pdu)
        except FederationError as exc:
            raise MatrixError("M_FORBIDDEN", f"{server} refused the {membership}: {exc.body.get('error', exc.status)}") from None
        except Unreachable as exc:
            raise MatrixError("M_UNKNOWN", f"{server} could not be reached: {exc}") from None
        return server, event, version, answer

    async def join(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> str:
        """Join through the first of `servers` that takes the join; the room's state it
        returns, checked, becomes the state before the join here."""
        server, event, version, answer = await self._handshake(JOIN, user_id, room_id, servers, content)
        if not isinstance(answer, dict):
            raise MatrixError("M_UNKNOWN", f"{server} answered the join with something else than an object")
        countersigned = answer.get("event")
        if isinstance(countersigned, dict):  # a restricted join, signed by the authorising server too
            try:
                signed = await checked_event(self.keys, countersigned, version)
            except InvalidPdu as exc:
                raise MatrixError("M_UNKNOWN", f"{server} returned a join that fails the checks: {exc}") from None
            if signed.event_id == event.event_id:
                event = signed
        auth_chain = await self.receiver.checked_all(answer.get("auth_chain"), version, room_id)
        state = await self.receiver.checked_all(answer.get("state"), version, room_id)
        outcomes = await self.receiver.store_outliers(room_id, [*auth_chain, *state], version)
        state_ids = {(e.type, e.state_key): e.event_id for e in state
                     if e.state_key is not None and outcomes.get(e.event_id) is not None
                     and outcomes[e.event_id].rejected_reason is None}
        if ("m.room.create", "") not in state_ids:
            raise MatrixError("M_UNKNOWN", f"{server} returned a room state without its create event")
        outcome = (await self.rooms.input(room_id, [event], EventKind.LOCAL, state_before={event.event_id: state_ids},
                                          room_version=version))[event.event_id]
        if outcome.rejected_reason is not None:
            raise MatrixError("M_FORBIDDEN", f"The join is not allowed by the room's state: {outcome.rejected_reason}")
        return event.event_id

    async def leave(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> str:
        """Reject an invite (or withdraw a knock) of a room this server does not hold."""
        _, event, version, _ = await self._handshake(LEAVE, user_id, room_id, servers, content)
        await self.rooms.record_out_of_band_membership(event, version)
        return event.event_id

    async def knock(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> str:
        _, event, version, answer = await self._handshake(KNOCK, user_id, room_id, servers, content)
        room_state = answer.get("knock_room_state") if isinstance(answer, dict) else None
        if isinstance(room_state, list):
            event = Event({**event.pdu, "unsigned": {"knock_room_state": room_state}}, version, event.event_id)
        await self.rooms.record_out_of_band_membership(event, version)
        return event.event_id

    async def invite(self, event: Event, version: RoomVersion, room_state: list[dict[str, Any]]) -> Event:
        """Have the invitee's server sign an invite (M_FORBIDDEN if it refuses)."""
        server = domain_of(event.state_key)
        try:
            answer = await self.client.put(
                server, f"/_matrix/federation/v2/invite/{path_segment(event.room_id)}/{path_segment(event.event_id)}",
                {"room_version": version.identifier, "event": event.pdu, "invite_room_state": room_state})
        except FederationError as exc:
            raise MatrixError("M_FORBIDDEN", f"{server} refused the invite: {exc.body.get('error', exc.status)}") from None
        except Unreachable as exc:
            raise MatrixError("M_FORBIDDEN", f"{server} could not be reached: {exc}") from None
        pdu = answer.get("event") if isinstance(answer, dict) else None
        try:
            signed = parse_pdu(pdu, version)
            await self.keys.verify_json(redact(signed.pdu, version), server)
        except (InvalidPdu, SignatureError) as exc:
            raise MatrixError("M_FORBIDDEN", f"{server} did not sign the invite: {exc}") from None
        if signed.event_id != event.event_id:
            raise MatrixError("M_FORBIDDEN", f"{server} returned another event than the invite")
        return signed

    # -- inbound: other servers' users ----------------------------------------------------

    async def make(self, origin: str, membership: str, room_id: str, user_id: str,
                   versions: list[str] | None) -> dict[str, Any]:
        """make_join, make_leave, make_knock: a template for another server's user."""
        if domain_of(user_id) != origin:
            raise MatrixError("M_FORBIDDEN", "A server asks only for its own users")
        head = await resident_room(self.rooms, room_id, origin)
        if versions is not None and head.version.identifier not in versions:
            raise MatrixError("M_INCOMPATIBLE_ROOM_VERSION", "The room's version is not among those given",
                              room_version=head.version.identifier)
        template, version = await self.rooms.event_template(room_id, user_id, membership)
        return {"room_version": version.identifier, "event": template}

    async def send(self, origin: str, membership: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
        """send_join, send_leave, send_knock: take another server's signed event; it is
        sent on to the other servers in the room."""
        head = await resident_room(self.rooms, room_id, origin)
        event = await self._checked_membership(origin, membership, head.version, room_id, event_id, pdu)
        if membership == JOIN and isinstance(event.content.get("join_authorised_via_users_server"), str) \
                and domain_of(event.content["join_authorised_via_users_server"]) == self.server_name:
            event = Event(sign_event(event.pdu, head.version, self.server_name, self.rooms.signing_key),
                          head.version, event.event_id)
        outcome = (await self.rooms.input(room_id, [event], EventKind.REMOTE))[event.event_id]
        if not outcome.known and (outcome.rejected_reason is not None or outcome.soft_failed):
            raise MatrixError("M_FORBIDDEN", outcome.rejected_reason or "The room's current state does not allow it")
        head = await self.rooms.head(room_id)
        if not outcome.known and outcome.stream_ordering > 0:
            await self.sender.forward(outcome.stream_ordering,
                                      self.sender.destinations_of(room_id, head.joined, event) - {origin})
        if membership == KNOCK:
            return {"knock_room_state": self.rooms.stripped_state(head, event.sender)[:-1]}
        if membership == LEAVE:
            return {}
        return await self._join_answer(head, event)

    async def _join_answer(self, head, event: Event) -> dict[str, Any]:
        """The state before a join and the auth chain of it and the join (send_join v2)."""
        row = (await self.rooms.store.get_event_rows([event.event_id]))[event.event_id]
        state_ids = await self.rooms.states.ids(row.state_group_before)
        state_rows = await self.rooms.store.get_event_rows(state_ids.values())
        chain_ids = await self.rooms.graph.auth_chain_of([event, *(r.event for r in state_rows.values())])
        chain_rows = await self.rooms.store.get_event_rows(chain_ids)
        return {
            "origin": self.server_name,
            "state": [federation_pdu(r) for r in state_rows.values()],
            "auth_chain": [federation_pdu(r) for r in chain_rows.values()],
            "event": federation_pdu(row),
            "members_omitted": False,
            "servers_in_room": sorted({domain_of(user_id) for user_id in head.joined} - {None}),
        }

    async def _checked_membership(self, origin: str, membership: str, version: RoomVersion, room_id: str,
                                  event_id: str, pdu: Any) -> Event:
        try:
            event = await checked_event(self.keys, pdu, version, signing_here=membership == JOIN)
        except InvalidPdu as exc:
            raise MatrixError("M_BAD_JSON", f"The event fails the checks: {exc}") from None
        if event.event_id != event_id or event.room_id != room_id:
            raise MatrixError("M_BAD_JSON", "The event is not the one the path names")
        if (event.type != MEMBER or event.membership != membership or event.state_key != event.sender
                or domain_of(event.sender) != origin):
            raise MatrixError("M_BAD_JSON", f"The event is not a {membership} of one of the origin's users")
        return event

    async def receive_invite(self, origin: str, room_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /invite v2: countersign an invite of a local user, and tell them of it."""
        version = ROOM_VERSIONS.get(body.get("room_version")) if isinstance(body.get("room_version"), str) else None
        if version is None:
            raise MatrixError("M_INCOMPATIBLE_ROOM_VERSION", "This server does not support that room version",
                              room_version=body.get("room_version"))
        try:
            event = await checked_event(self.keys, body.get("event"), version)
        except InvalidPdu as exc:
            raise MatrixError("M_BAD_JSON", f"The invite fails the checks: {exc}") from None
        invitee = event.state_key
        if (event.event_id != event_id or event.room_id != room_id or event.type != MEMBER
                or event.membership != INVITE or domain_of(event.sender) != origin
                or not isinstance(invitee, str) or domain_of(invitee) != self.server_name):
            raise MatrixError("M_BAD_JSON", "The event is not an invite of this server's user by the origin's")
        if room_id in self.rooms.blocked_rooms:
            raise MatrixError("M_FORBIDDEN", "This room has been blocked on this server")
        if await self.rooms.users.get_profile(invitee) is None:
            raise MatrixError("M_NOT_FOUND", f"Unknown user {invitee}")
        head = await self.rooms.head_if_known(room_id)
        if head is not None and head.resident and not server_allowed(head.state, origin):
            raise MatrixError("M_FORBIDDEN", "The room's server ACL forbids this server")
        signed_pdu = sign_event(event.pdu, version, self.server_name, self.rooms.signing_key)
        room_state = body.get("invite_room_state")
        stored = {**signed_pdu, "unsigned": {"invite_room_state": room_state}} if isinstance(room_state, list) else signed_pdu
        if head is None or not head.resident:
            await self.rooms.record_out_of_band_membership(Event(stored, version, event.event_id), version)
        return {"event": signed_pdu}


def _template_fits(template: Any, membership: str, user_id: str, room_id: str) -> bool:
    """The checks the spec asks of a template before it is signed."""
    return (isinstance(template, dict) and template.get("type") == MEMBER and template.get("room_id") == room_id
            and template.get("sender") == user_id and template.get("state_key") == user_id
            and isinstance(template.get("content"), dict) and template["content"].get("membership") == membership
            and isinstance(template.get("prev_events"), list) and isinstance(template.get("auth_events"), list))


def _references(value: Any) -> list:
    """prev_events/auth_events of a template as build_event takes them (IDs or (ID, hashes))."""
    references: list = []
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, str):
            references.append(entry)
        elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], dict):
            references.append((entry[0], entry[1]))
    return references
