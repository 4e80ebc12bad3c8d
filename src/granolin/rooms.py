"""What the bot knows about its rooms, kept from /sync.

A :class:`Room` holds the state a bot needs: members with their display names
and avatars, power levels, join rules, encryption, name, topic and aliases. The
client updates it from every state event of every sync (the room's state
section and the state events of its timeline, in order) and saves it in the
hardcopy, because an incremental sync does not send it again after a restart.
With lazy-loaded members (the default filter), ``members`` holds the members
the bot has seen: those who spoke, and those the server sent; see
:meth:`granolin.Client.load_members` for all of them.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

TRACKED_STATE = frozenset(
    {
        "m.room.create",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.encryption",
        "m.room.name",
        "m.room.topic",
        "m.room.canonical_alias",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.avatar",
    }
)
"""The state event types a :class:`Room` keeps (besides members)."""

ADMIN_LEVEL = 100
"""The power level :meth:`Room.is_admin` asks for (Element's "Admin")."""


def readable_username(user_id: str) -> str:
    """The localpart of a user ID (``@bob:example.org`` -> ``bob``); anything else as given."""
    if user_id.startswith("@") and ":" in user_id:
        return user_id[1 : user_id.index(":")]
    return user_id


@dataclass(slots=True)
class Member:
    """One member of a room, as its latest m.room.member event says."""

    user_id: str
    membership: str
    displayname: str | None = None
    avatar_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"membership": self.membership, "displayname": self.displayname, "avatar_url": self.avatar_url}


@dataclass(slots=True)
class Room:
    """A joined room's state, as far as the bot has seen it."""

    room_id: str
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Content of each tracked state event, by type (state key "")."""
    members: dict[str, Member] = field(default_factory=dict)
    """Every member the bot has seen, by user ID, whatever the membership."""
    creator: str | None = None
    """The sender of the m.room.create event."""

    # --- updating ---------------------------------------------------------------

    def apply(self, event_type: str, state_key: str, content: dict[str, Any], sender: str | None = None) -> None:
        """Take one state event into account."""
        if event_type == "m.room.create" and sender:
            self.creator = sender
        if event_type == "m.room.member":
            membership = content.get("membership")
            if isinstance(membership, str):
                self.members[state_key] = Member(
                    state_key, membership, _text(content.get("displayname")), _text(content.get("avatar_url"))
                )
        elif event_type in TRACKED_STATE and state_key == "":
            self.state[event_type] = dict(content)

    def to_json(self) -> dict[str, Any]:
        members = {user_id: member.to_json() for user_id, member in self.members.items()}
        return {"state": self.state, "members": members, "creator": self.creator}

    @classmethod
    def from_json(cls, room_id: str, data: dict[str, Any]) -> Room:
        state = {k: dict(v) for k, v in (data.get("state") or {}).items() if isinstance(v, dict)}
        room = cls(room_id, state=state, creator=_text(data.get("creator")))
        for user_id, member in (data.get("members") or {}).items():
            if isinstance(member, dict) and isinstance(member.get("membership"), str):
                room.members[user_id] = Member(user_id, member["membership"], member.get("displayname"), member.get("avatar_url"))
        return room

    # --- reading ----------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return _text(self.state.get("m.room.name", {}).get("name"))

    @property
    def topic(self) -> str | None:
        return _text(self.state.get("m.room.topic", {}).get("topic"))

    @property
    def canonical_alias(self) -> str | None:
        return _text(self.state.get("m.room.canonical_alias", {}).get("alias"))

    @property
    def aliases(self) -> list[str]:
        """The canonical alias first, then the alternative ones."""
        content = self.state.get("m.room.canonical_alias", {})
        alternatives = [alias for alias in content.get("alt_aliases") or [] if isinstance(alias, str)]
        return ([self.canonical_alias] if self.canonical_alias else []) + alternatives

    @property
    def join_rule(self) -> str | None:
        return _text(self.state.get("m.room.join_rules", {}).get("join_rule"))

    @property
    def encryption(self) -> dict[str, Any] | None:
        """The m.room.encryption content (its algorithm...), or None for a room in the clear."""
        return self.state.get("m.room.encryption")

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def power_levels(self) -> dict[str, Any]:
        return self.state.get("m.room.power_levels", {})

    @property
    def room_version(self) -> str:
        return str(self.state.get("m.room.create", {}).get("room_version", "1"))

    @property
    def creators(self) -> set[str]:
        """Who created the room (and, in version 12 rooms, the additional creators)."""
        content = self.state.get("m.room.create", {})
        creators = {content["creator"]} if isinstance(content.get("creator"), str) else set()
        creators |= {self.creator} if self.creator else set()
        creators |= {user for user in content.get("additional_creators") or [] if isinstance(user, str)}
        return creators

    def joined(self) -> list[str]:
        """The user IDs of the joined members (that the bot has seen)."""
        return [user_id for user_id, member in self.members.items() if member.membership == "join"]

    def current_members(self) -> dict[str, str | None]:
        """Joined and invited members: user ID -> display name."""
        return {user_id: m.displayname for user_id, m in self.members.items() if m.membership in ("join", "invite")}

    def power_level(self, user_id: str) -> int | float:
        """The power level of ``user_id``; creators of a version 12 room outrank everyone (infinity)."""
        if _creators_are_privileged(self.room_version) and user_id in self.creators:
            return math.inf
        levels = self.power_levels
        if not levels:
            return ADMIN_LEVEL if user_id in self.creators else 0
        users = levels.get("users") or {}
        value = users.get(user_id, levels.get("users_default", 0))
        return _int(value)

    def is_admin(self, user_id: str) -> bool:
        """True when ``user_id`` has power level 100 or more (or created a version 12 room)."""
        return self.power_level(user_id) >= ADMIN_LEVEL

    def display_name(self, user_id: str) -> str:
        """The name to show for ``user_id``, as the spec computes it.

        The member's display name; followed by the user ID when another member
        has the same one; the user ID when the member has none.
        """
        member = self.members.get(user_id)
        name = member.displayname if member is not None else None
        if not name:
            return user_id
        for other_id, other in self.members.items():
            if other_id != user_id and other.displayname == name and other.membership in ("join", "invite"):
                return f"{name} ({user_id})"
        return name

    def mention(self, user_id: str) -> tuple[str, str]:
        """A mention of ``user_id``: its plain text and its HTML (a matrix.to link clients show as a pill)."""
        name = self.display_name(user_id)
        return name, f'<a href="https://matrix.to/#/{html.escape(user_id)}">{html.escape(name)}</a>'


def _creators_are_privileged(room_version: str) -> bool:
    return room_version.isdigit() and int(room_version) >= 12


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)  # old rooms may hold power levels as strings
    return 0
