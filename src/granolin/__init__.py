"""granolin: write Matrix bots in Python, for any homeserver.

    from granolin import Client, TextMessage

    bot = Client("https://matrix.example.org", hardcopy="echo.json")

    @bot.on(TextMessage)
    async def echo(event: TextMessage) -> None:
        await bot.send_notice(event.room_id, event.body)

    bot.run(user="echo", password="...")
"""

from .backoff import Backoff
from .client import Client
from .commands import Command, CommandError, CommandRegistry
from .e2ee import CryptoStoreError
from .errors import AttachmentError, GranolinError, HomeserverError, LoginError, MatrixError, RateLimitedError, UnknownTokenError
from .events import (
    AccountDataEvent,
    AudioMessage,
    EmoteMessage,
    EncryptionInfo,
    EphemeralEvent,
    Event,
    FileMessage,
    ImageMessage,
    InvitationEvent,
    LocationMessage,
    MediaMessage,
    MemberEvent,
    MessageEvent,
    NoticeMessage,
    ReactionEvent,
    RedactionEvent,
    RoomStateEvent,
    TextMessage,
    TimelineEvent,
    VideoMessage,
    current_room_id,
    timeline_event,
)
from .dispatch import derived_txn_id
from .homeserver import Homeserver, parse_homeserver, parse_well_known
from .messaging import Media, parse_mxc
from .plugins import AutoJoiner, MessageLog, ServerDirectory
from .rooms import Member, Room, readable_username
from .syncing import SyncFilter

__all__ = [
    "AccountDataEvent",
    "AttachmentError",
    "AudioMessage",
    "AutoJoiner",
    "Backoff",
    "Client",
    "Command",
    "CommandError",
    "CommandRegistry",
    "CryptoStoreError",
    "EmoteMessage",
    "EncryptionInfo",
    "EphemeralEvent",
    "Event",
    "FileMessage",
    "GranolinError",
    "Homeserver",
    "HomeserverError",
    "ImageMessage",
    "InvitationEvent",
    "LocationMessage",
    "LoginError",
    "MatrixError",
    "Media",
    "MediaMessage",
    "Member",
    "MemberEvent",
    "MessageEvent",
    "MessageLog",
    "NoticeMessage",
    "RateLimitedError",
    "ReactionEvent",
    "RedactionEvent",
    "Room",
    "RoomStateEvent",
    "ServerDirectory",
    "SyncFilter",
    "TextMessage",
    "TimelineEvent",
    "UnknownTokenError",
    "VideoMessage",
    "current_room_id",
    "derived_txn_id",
    "parse_homeserver",
    "parse_mxc",
    "parse_well_known",
    "readable_username",
    "timeline_event",
]
