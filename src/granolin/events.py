"""Typed Matrix events.

Every event handed to a handler is a fresh object (handlers may keep it) that
wraps the event's JSON: ``event.raw`` is always the untouched dict, and the
properties read from it. Unknown event types and message types fall back to the
most specific class that still applies (``TimelineEvent``, ``MessageEvent``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

current_room_id: ContextVar[str | None] = ContextVar("current_room_id", default=None)
"""The room of the event being handled (the seed's ``*room-id*``)."""


@dataclass(frozen=True, slots=True)
class EncryptionInfo:
    """How an event that arrived end-to-end encrypted was decrypted, and who sent it.

    ``verified`` is true when the sending device is known (its keys, signed by
    itself, match the keys the room key came with) and trusted: the bot's own
    device, one of its user's devices cross-signed by the bot's self-signing
    key, or a device the bot was told to trust (``encryption.trust_device``).
    """

    algorithm: str
    session_id: str
    sender_key: str
    """The Curve25519 identity key of the device that created the Megolm session."""
    device_id: str | None
    """The sending device, when its published keys match the session's; None when unknown."""
    verified: bool
    original: dict[str, Any] = field(repr=False)
    """The ``m.room.encrypted`` event as the server sent it."""


@dataclass(frozen=True, eq=False)
class Event:
    """Any event: its JSON and, when it belongs to one, its room.

    For an event that arrived encrypted, ``raw`` is the decrypted event (its
    type and content are the plaintext's) and ``encryption`` says how it was
    decrypted; ``encryption`` is None for an event that arrived in the clear.
    """

    raw: dict[str, Any]
    room_id: str | None = None
    encryption: EncryptionInfo | None = field(default=None, repr=False)

    @property
    def encrypted(self) -> bool:
        """True when the event arrived end-to-end encrypted (and was decrypted)."""
        return self.encryption is not None

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))

    @property
    def content(self) -> dict[str, Any]:
        content = self.raw.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def sender(self) -> str | None:
        return self.raw.get("sender")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(type={self.type!r}, room_id={self.room_id!r}, sender={self.sender!r})"


@dataclass(frozen=True, eq=False, repr=False)
class TimelineEvent(Event):
    """An event of a room's timeline whose type granolin has no class for."""

    @property
    def event_id(self) -> str | None:
        return self.raw.get("event_id")

    @property
    def origin_server_ts(self) -> int | None:
        return self.raw.get("origin_server_ts")

    @property
    def unsigned(self) -> dict[str, Any]:
        unsigned = self.raw.get("unsigned")
        return unsigned if isinstance(unsigned, dict) else {}

    @property
    def relates_to(self) -> dict[str, Any]:
        relation = self.content.get("m.relates_to")
        return relation if isinstance(relation, dict) else {}

    @property
    def redacted(self) -> bool:
        return "redacted_because" in self.unsigned


@dataclass(frozen=True, eq=False, repr=False)
class MessageEvent(TimelineEvent):
    """An ``m.room.message`` (the fallback for unknown msgtypes)."""

    @property
    def msgtype(self) -> str | None:
        return self.content.get("msgtype")

    @property
    def body(self) -> str:
        body = self.content.get("body")
        return body if isinstance(body, str) else ""

    @property
    def formatted_body(self) -> str | None:
        return self.content.get("formatted_body")

    @property
    def in_reply_to(self) -> str | None:
        """The event ID this message replies to, if it is a rich reply."""
        reply = self.relates_to.get("m.in_reply_to")
        return reply.get("event_id") if isinstance(reply, dict) else None

    @property
    def replaces(self) -> str | None:
        """The event ID this message edits, if it is an edit (m.replace)."""
        if self.relates_to.get("rel_type") == "m.replace":
            return self.relates_to.get("event_id")
        return None


@dataclass(frozen=True, eq=False, repr=False)
class TextMessage(MessageEvent):
    """``m.text``"""


@dataclass(frozen=True, eq=False, repr=False)
class EmoteMessage(MessageEvent):
    """``m.emote``"""


@dataclass(frozen=True, eq=False, repr=False)
class NoticeMessage(MessageEvent):
    """``m.notice``: what bots send, and what bots should not answer."""


@dataclass(frozen=True, eq=False, repr=False)
class MediaMessage(MessageEvent):
    """A message pointing at uploaded content (image, audio, video, file)."""

    @property
    def url(self) -> str | None:
        """The content's mxc:// URI; None for an encrypted attachment (see :attr:`file`)."""
        return self.content.get("url")

    @property
    def file(self) -> dict[str, Any] | None:
        """The ``EncryptedFile`` of an attachment sent into an encrypted room (``Client.download_attachment`` decrypts it)."""
        encrypted_file = self.content.get("file")
        return encrypted_file if isinstance(encrypted_file, dict) else None

    @property
    def info(self) -> dict[str, Any]:
        info = self.content.get("info")
        return info if isinstance(info, dict) else {}

    @property
    def filename(self) -> str:
        return self.content.get("filename") or self.body


@dataclass(frozen=True, eq=False, repr=False)
class ImageMessage(MediaMessage):
    """``m.image``"""


@dataclass(frozen=True, eq=False, repr=False)
class AudioMessage(MediaMessage):
    """``m.audio``"""


@dataclass(frozen=True, eq=False, repr=False)
class VideoMessage(MediaMessage):
    """``m.video``"""


@dataclass(frozen=True, eq=False, repr=False)
class FileMessage(MediaMessage):
    """``m.file``"""


@dataclass(frozen=True, eq=False, repr=False)
class LocationMessage(MessageEvent):
    """``m.location``"""

    @property
    def geo_uri(self) -> str | None:
        return self.content.get("geo_uri")


@dataclass(frozen=True, eq=False, repr=False)
class ReactionEvent(TimelineEvent):
    """``m.reaction``: an annotation (usually an emoji) on another event."""

    @property
    def key(self) -> str | None:
        return self.relates_to.get("key")

    @property
    def reacts_to(self) -> str | None:
        return self.relates_to.get("event_id")


@dataclass(frozen=True, eq=False, repr=False)
class RedactionEvent(TimelineEvent):
    """``m.room.redaction``"""

    @property
    def redacts(self) -> str | None:
        return self.content.get("redacts") or self.raw.get("redacts")


@dataclass(frozen=True, eq=False, repr=False)
class RoomStateEvent(TimelineEvent):
    """A state event, from the room's state or from its timeline."""

    @property
    def state_key(self) -> str:
        return str(self.raw.get("state_key", ""))

    @property
    def prev_content(self) -> dict[str, Any] | None:
        prev = self.raw.get("prev_content", self.unsigned.get("prev_content"))
        return prev if isinstance(prev, dict) else None

    @property
    def room_name(self) -> str | None:
        """The name, on an ``m.room.name`` event."""
        return self.content.get("name") if self.type == "m.room.name" else None

    @property
    def room_aliases(self) -> list[str]:
        """The aliases, on ``m.room.aliases`` and ``m.room.canonical_alias`` events."""
        if self.type == "m.room.aliases":
            return list(self.content.get("aliases") or [])
        if self.type == "m.room.canonical_alias":
            alias = self.content.get("alias")
            return [alias, *(self.content.get("alt_aliases") or [])] if alias else list(self.content.get("alt_aliases") or [])
        return []


@dataclass(frozen=True, eq=False, repr=False)
class MemberEvent(RoomStateEvent):
    """``m.room.member``: ``state_key`` is the user whose membership changed."""

    @property
    def membership(self) -> str | None:
        return self.content.get("membership")

    @property
    def displayname(self) -> str | None:
        return self.content.get("displayname")

    @property
    def is_direct(self) -> bool:
        return bool(self.content.get("is_direct"))


@dataclass(frozen=True, eq=False, repr=False)
class InvitationEvent(Event):
    """A stripped state event of a room we are invited to."""

    @property
    def state_key(self) -> str:
        return str(self.raw.get("state_key", ""))

    @property
    def membership(self) -> str | None:
        return self.content.get("membership") if self.type == "m.room.member" else None


@dataclass(frozen=True, eq=False, repr=False)
class AccountDataEvent(Event):
    """Account data: global when ``room_id`` is None, else for that room."""


@dataclass(frozen=True, eq=False, repr=False)
class EphemeralEvent(Event):
    """Typing notifications and receipts of a joined room."""


_MESSAGE_CLASSES: dict[str, type[MessageEvent]] = {
    "m.text": TextMessage,
    "m.emote": EmoteMessage,
    "m.notice": NoticeMessage,
    "m.image": ImageMessage,
    "m.audio": AudioMessage,
    "m.video": VideoMessage,
    "m.file": FileMessage,
    "m.location": LocationMessage,
}
_TIMELINE_CLASSES: dict[str, type[TimelineEvent]] = {
    "m.reaction": ReactionEvent,
    "m.room.redaction": RedactionEvent,
}


def timeline_event(raw: dict[str, Any], room_id: str | None = None, encryption: EncryptionInfo | None = None) -> TimelineEvent:
    """Classify one event of a room's timeline or state into its typed class.

    ``encryption`` is given for an event decrypted from ``m.room.encrypted``.
    """
    event_type = raw.get("type")
    if "state_key" in raw:
        return (MemberEvent if event_type == "m.room.member" else RoomStateEvent)(raw, room_id)
    if event_type == "m.room.message":
        content = raw.get("content")
        msgtype = content.get("msgtype") if isinstance(content, dict) else None
        return _MESSAGE_CLASSES.get(msgtype, MessageEvent)(raw, room_id, encryption)  # type: ignore[arg-type]
    return _TIMELINE_CLASSES.get(event_type, TimelineEvent)(raw, room_id, encryption)  # type: ignore[arg-type]
