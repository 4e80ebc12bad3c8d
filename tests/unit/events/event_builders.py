"""Builds real (hashed, signed) events in rooms of any version, with forks, for the
auth-rule and state-resolution tests."""

from __future__ import annotations

from unpaddedbase64 import decode_base64

from ranvier.events.auth import auth_types_for_event, check_auth
from ranvier.events.identifiers import domain_of
from ranvier.events.model import CREATE, Event, build_event
from ranvier.events.room_versions import ROOM_VERSIONS
from ranvier.events.signing import SigningKey

ALL_VERSIONS = list(ROOM_VERSIONS)
CREATOR = "@alice:a.example"
BOB = "@bob:b.example"
CHARLIE = "@charlie:c.example"

_KEYS: dict[str, SigningKey] = {}


def key_for(server_name: str) -> SigningKey:
    """One deterministic signing key per server, so runs are reproducible."""
    if server_name not in _KEYS:
        seed = server_name.encode().ljust(32, b"\0")[:32]
        _KEYS[server_name] = SigningKey(seed, "1")
    return _KEYS[server_name]


SPEC_TEST_KEY = SigningKey(decode_base64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"), "1")


class Room:
    """A room's event graph plus one fork's view of it (state and forward extremity).

    `fork()` gives another view sharing the same events, so that conflicting
    branches can be built and resolved.
    """

    def __init__(self, version: str, creator: str = CREATOR, create_content: dict | None = None) -> None:
        self.room_version = ROOM_VERSIONS[version]
        self.events: dict[str, Event] = {}
        self.state: dict[tuple[str, str], Event] = {}
        self.last: list[str] = []
        self.clock = 1000
        self.depth = 0
        content = {"room_version": version}
        if not self.room_version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        self.room_id = "!room:a.example"
        self.create = self.send(CREATE, creator, content, state_key="", check=True)
        self.room_id = self.create.room_id

    def fork(self) -> Room:
        other = object.__new__(Room)
        other.room_version = self.room_version
        other.events = self.events
        other.state = dict(self.state)
        other.last = list(self.last)
        other.clock = self.clock
        other.depth = self.depth
        other.room_id = self.room_id
        other.create = self.create
        return other

    def make(
        self,
        type: str,
        sender: str,
        content: dict,
        *,
        state_key: str | None = None,
        ts: int | None = None,
        auth_event_ids: list[str] | None = None,
        prev_event_ids: list[str] | None = None,
        redacts: str | None = None,
        extra_signers: tuple[str, ...] = (),
    ) -> Event:
        """Build an event on this fork without checking or applying it."""
        if auth_event_ids is None:
            keys = auth_types_for_event(self.room_version, type, sender, state_key, content)
            auth_event_ids = [self.state[key].event_id for key in keys if key in self.state]
        self.clock += 1
        self.depth += 1
        server_name = domain_of(sender)
        event = build_event(
            self.room_version,
            room_id=self.room_id,
            sender=sender,
            type=type,
            content=content,
            state_key=state_key,
            prev_event_ids=self.last if prev_event_ids is None else prev_event_ids,
            auth_event_ids=auth_event_ids,
            depth=self.depth,
            origin_server_ts=self.clock if ts is None else ts,
            signing_key=key_for(server_name),
            server_name=server_name,
            redacts=redacts,
        )
        for signer in extra_signers:
            event.pdu["signatures"][signer] = {"ed25519:1": "unchecked"}
        self.events[event.event_id] = event
        return event

    def check(self, event: Event) -> None:
        """Check `event` against this fork's current state (raises AuthError)."""
        check_auth(self.room_version, event, self.state)

    def apply(self, event: Event) -> Event:
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        self.last = [event.event_id]
        return event

    def send(self, type: str, sender: str, content: dict, *, check: bool = True, **kwargs) -> Event:
        """Build, check (unless told not to) and apply an event on this fork."""
        event = self.make(type, sender, content, **kwargs)
        if check:
            self.check(event)
        return self.apply(event)

    def member(self, user_id: str, membership: str, *, sender: str | None = None, **content) -> Event:
        return self.send(
            "m.room.member", sender or user_id, {"membership": membership, **content}, state_key=user_id
        )

    def state_ids(self) -> dict[tuple[str, str], str]:
        return {key: event.event_id for key, event in self.state.items()}


def basic_room(version: str, join_rule: str = "invite", users: dict | None = None) -> Room:
    """A room where the creator joined, set power levels (creator 100 unless v12) and a join rule."""
    room = Room(version)
    room.member(CREATOR, "join")
    levels = dict(users or {})
    if not room.room_version.privileged_creators:
        levels.setdefault(CREATOR, 100)
    room.send("m.room.power_levels", CREATOR, {"users": levels}, state_key="")
    room.send("m.room.join_rules", CREATOR, {"join_rule": join_rule}, state_key="")
    return room
