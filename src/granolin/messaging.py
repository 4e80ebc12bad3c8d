"""What a bot does in rooms and with its account: send, reply, edit, join, profile, media.

Every send returns the new event ID. Sends are retried after network errors
and 5xx answers (with backoff, ``send_retries`` times) under the same
transaction ID, so the homeserver stores each event once. Inside a handler the
transaction ID is derived from the event being handled and the handler's send
count (see :mod:`granolin.dispatch`): a handler re-run after a crash sends the
same IDs, and the homeserver answers with the events it already has.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from .dispatch import send_scope
from .e2ee import attachment_cipher
from .errors import AttachmentError, GranolinError, MatrixError
from .events import Event, MessageEvent, TimelineEvent, timeline_event
from .transport import CLIENT_V1_MEDIA, CLIENT_V3, MEDIA_V3, Transport, drop_none, log, quote_segment

T = TypeVar("T")


def parse_mxc(uri: str) -> tuple[str, str]:
    """Split ``mxc://server/media_id`` into its server name and media ID."""
    if not uri.startswith("mxc://"):
        raise ValueError(f"not an mxc:// URI: {uri!r}")
    server, _, media_id = uri[len("mxc://") :].partition("/")
    if not server or not media_id or "/" in media_id:
        raise ValueError(f"malformed mxc:// URI: {uri!r}")
    return server, media_id


@dataclass(frozen=True, slots=True)
class Media:
    """Downloaded content: its bytes and what the server said about them."""

    content: bytes
    content_type: str
    filename: str | None = None


def _format(message: str, args: tuple[Any, ...]) -> str:
    return message.format(*args) if args else message


class RoomActions(Transport):
    """Sending into rooms, managing rooms and the account, media."""

    send_retries = 5
    """How many times a send is retried after a network error or a 5xx answer."""
    _SENT_MSGTYPES = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent_msgtypes: OrderedDict[str, str] = OrderedDict()

    def new_txn_id(self) -> str:
        """The transaction ID of the next send: derived inside a handler, else random."""
        scope = send_scope.get()
        return scope.next_txn_id() if scope is not None else uuid.uuid4().hex

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call``, again after a network error or a 5xx (with backoff), up to ``send_retries`` times."""
        attempt = 0
        while True:
            try:
                return await call()
            except (aiohttp.ClientConnectionError, TimeoutError, MatrixError) as exc:
                if isinstance(exc, MatrixError) and exc.status < 500:
                    raise
                attempt += 1
                if attempt > self.send_retries:
                    raise
                wait = self.backoff.delay(attempt)
                log.info("send failed (%s); retry %d in %.1fs", exc, attempt, wait)
                await asyncio.sleep(wait)

    # --- sending ----------------------------------------------------------------

    async def outgoing(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        """The type and content an event is sent as: as given here; the client encrypts in encrypted rooms."""
        return event_type, content

    async def send_event(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> str:
        """Send a room event; returns its event ID (once, whatever the retries).

        The transaction ID is taken before the event is encrypted (in an
        encrypted room): a handler re-run after a crash reuses it, and the
        server answers with the event it stored, whatever the new ciphertext.
        """
        txn_id = self.new_txn_id()
        sent_type, body = await self.outgoing(room_id, event_type, content)
        path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/send/{quote_segment(sent_type)}/{quote_segment(txn_id)}"
        event_id = await self._retrying(lambda: self.api("PUT", path, json=dict(body)))
        sent = str(event_id["event_id"])
        if event_type == "m.room.message" and isinstance(content.get("msgtype"), str):
            self._sent_msgtypes[sent] = content["msgtype"]
            if len(self._sent_msgtypes) > self._SENT_MSGTYPES:
                self._sent_msgtypes.popitem(last=False)
        return sent

    async def send_state_event(self, room_id: str, event_type: str, content: Mapping[str, Any], state_key: str = "") -> str:
        """Set a piece of room state; returns the event ID."""
        path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/state/{quote_segment(event_type)}/{quote_segment(state_key)}"
        return str((await self._retrying(lambda: self.api("PUT", path, json=dict(content))))["event_id"])

    async def send_text_message(
        self, room_id: str, message: str, *args: Any, html: str | None = None, notice: bool = False,
        mentions: Iterable[str] | None = None,
    ) -> str:
        """Send ``message`` (``message.format(*args)`` when args are given) as m.text or m.notice.

        ``html`` sets ``formatted_body``; ``mentions`` lists the user IDs the
        message mentions (``m.mentions``, so their clients notify them).
        """
        content: dict[str, Any] = {"msgtype": "m.notice" if notice else "m.text", "body": _format(message, args)}
        if html is not None:
            content |= {"format": "org.matrix.custom.html", "formatted_body": html}
        if mentions is not None:
            content["m.mentions"] = {"user_ids": list(mentions)}
        return await self.send_event(room_id, "m.room.message", content)

    async def send_notice(self, room_id: str, message: str, *args: Any) -> str:
        """Send an m.notice, the message type bots use so other bots do not answer."""
        return await self.send_text_message(room_id, message, *args, notice=True)

    async def send_media_message(
        self,
        room_id: str,
        alt_text: str,
        mxc_uri: str,
        msgtype: str,
        info: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a message pointing at uploaded content (m.image, m.video, m.audio, m.file)."""
        content: dict[str, Any] = {"msgtype": msgtype, "body": alt_text, "url": mxc_uri}
        if info:
            content["info"] = dict(info)
        content |= extra or {}
        return await self.send_event(room_id, "m.room.message", content)

    async def send_image_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        mimetype: str | None = None, w: int | None = None, h: int | None = None, size: int | None = None,
    ) -> str:
        """Send an m.image; ``info`` wins, else it is built from the other keywords."""
        built = info or drop_none(mimetype=mimetype, w=w, h=h, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.image", built)

    async def send_video_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        duration: int | None = None, w: int | None = None, h: int | None = None, mimetype: str | None = None, size: int | None = None,
    ) -> str:
        """Send an m.video; ``info`` wins, else it is built from the other keywords."""
        built = info or drop_none(duration=duration, w=w, h=h, mimetype=mimetype, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.video", built)

    async def send_audio_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        duration: int | None = None, mimetype: str | None = None, size: int | None = None,
    ) -> str:
        """Send an m.audio; ``info`` wins, else it is built from the other keywords."""
        built = info or drop_none(duration=duration, mimetype=mimetype, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.audio", built)

    async def send_file_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        filename: str | None = None, mimetype: str | None = None, size: int | None = None,
    ) -> str:
        """Send an m.file; ``info`` wins, else it is built from the other keywords."""
        built = info or drop_none(mimetype=mimetype, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.file", built, drop_none(filename=filename))

    async def reply(self, event: MessageEvent, message: str, *args: Any, notice: bool = False) -> str:
        """Answer ``event`` with a rich reply in its room, mentioning its sender."""
        if event.room_id is None or event.event_id is None:
            raise GranolinError("can only reply to a room event with an event ID")
        content: dict[str, Any] = {
            "msgtype": "m.notice" if notice else "m.text",
            "body": _format(message, args),
            "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
        }
        if event.sender and event.sender != self.user_id:
            content["m.mentions"] = {"user_ids": [event.sender]}
        return await self.send_event(event.room_id, "m.room.message", content)

    async def edit(self, room_id: str, event_id: str, message: str, *args: Any, msgtype: str | None = None) -> str:
        """Replace the text of an earlier message (m.replace), keeping its msgtype.

        The msgtype is the original's (a notice stays a notice): known for the
        bot's recent sends, else read from the server; ``msgtype`` overrides it.
        """
        if msgtype is None:
            msgtype = self._sent_msgtypes.get(event_id)
        if msgtype is None:
            original = await self.get_event(room_id, event_id)
            msgtype = original.msgtype if isinstance(original, MessageEvent) and original.msgtype else "m.text"
        text = _format(message, args)
        content = {
            "msgtype": msgtype,
            "body": f"* {text}",
            "m.new_content": {"msgtype": msgtype, "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self.send_event(room_id, "m.room.message", content)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        """Annotate an event with a reaction (usually an emoji)."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send_event(room_id, "m.reaction", content)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Redact (delete the content of) an event; returns the redaction's event ID."""
        path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/redact/{quote_segment(event_id)}/{quote_segment(self.new_txn_id())}"
        return str((await self._retrying(lambda: self.api("PUT", path, json=drop_none(reason=reason))))["event_id"])

    async def set_typing(self, room_id: str, typing: bool = True, timeout: int = 30_000) -> None:
        """Show (or stop showing) that the bot is typing in a room."""
        path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/typing/{quote_segment(self._me())}"
        await self.api("PUT", path, json={"typing": typing, **({"timeout": timeout} if typing else {})})

    async def send_read_receipt(self, room_id: str, event_id: str, receipt_type: str = "m.read") -> None:
        """Mark an event (and everything before it) as read."""
        path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/receipt/{quote_segment(receipt_type)}/{quote_segment(event_id)}"
        await self.api("POST", path, json={})

    # --- reading one event ------------------------------------------------------

    async def get_event(self, room_id: str, event_id: str) -> TimelineEvent:
        """One event of a room, typed."""
        raw = await self.api("GET", f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/event/{quote_segment(event_id)}")
        return timeline_event(raw, room_id)

    # --- rooms ------------------------------------------------------------------

    async def create_room(
        self,
        name: str | None = None,
        *,
        invite: list[str] | tuple[str, ...] = (),
        is_direct: bool = False,
        preset: str | None = None,
        topic: str | None = None,
        visibility: str = "private",
        room_alias_name: str | None = None,
        initial_state: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Create a room; returns its ID. Extra keywords go into the request as they are."""
        body = drop_none(name=name, preset=preset, topic=topic, room_alias_name=room_alias_name, initial_state=initial_state)
        body |= {"visibility": visibility, "invite": list(invite), "is_direct": is_direct, **extra}
        return str((await self.api("POST", f"{CLIENT_V3}/createRoom", json=body))["room_id"])

    async def join_room(self, room_id_or_alias: str) -> str:
        """Join a room by ID or alias; returns the room ID."""
        answer = await self.api("POST", f"{CLIENT_V3}/join/{quote_segment(room_id_or_alias)}", json={})
        return str(answer["room_id"])

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        """Invite a user to a room."""
        body = {"user_id": user_id, **drop_none(reason=reason)}
        await self.api("POST", f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/invite", json=body)

    async def leave_room(self, room_id: str, reason: str | None = None) -> None:
        """Leave a room (or decline an invitation)."""
        await self.api("POST", f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/leave", json=drop_none(reason=reason))

    async def get_joined_rooms(self) -> list[str]:
        """The IDs of the rooms the bot has joined."""
        return list((await self.api("GET", f"{CLIENT_V3}/joined_rooms"))["joined_rooms"])

    async def get_state(self, room_id: str, event_type: str | None = None, state_key: str = "") -> Any:
        """All state events of a room (no ``event_type``), or the content of one."""
        path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/state"
        if event_type is None:
            _, body = await self.request("GET", path)
            return json.loads(body)
        return await self.api("GET", f"{path}/{quote_segment(event_type)}/{quote_segment(state_key)}")

    async def get_room_members(self, room_id: str) -> dict[str, dict[str, Any]]:
        """The joined members of a room: user ID -> display_name and avatar_url."""
        return dict((await self.api("GET", f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/joined_members"))["joined"])

    # --- account and profile ----------------------------------------------------

    def _me(self) -> str:
        if self.user_id is None:
            raise GranolinError("the client has no user ID yet: log in first")
        return self.user_id

    async def update_account_data(self, event_type: str, data: Mapping[str, Any]) -> None:
        """Store ``data`` as the account data of ``event_type`` (e.g. m.direct)."""
        path = f"{CLIENT_V3}/user/{quote_segment(self._me())}/account_data/{quote_segment(event_type)}"
        await self.api("PUT", path, json=dict(data))

    async def get_account_data(self, event_type: str) -> dict[str, Any]:
        """Read the account data of ``event_type``."""
        return await self.api("GET", f"{CLIENT_V3}/user/{quote_segment(self._me())}/account_data/{quote_segment(event_type)}")

    async def user_search(self, query: str, limit: int = 10) -> dict[str, Any]:
        """Search the user directory: ``{"results": [{"user_id", "display_name", "avatar_url"}], "limited"}``."""
        return await self.api("POST", f"{CLIENT_V3}/user_directory/search", json={"search_term": query, "limit": limit})

    async def get_profile(self, user_id: str | None = None) -> dict[str, Any]:
        """A user's profile (``displayname``, ``avatar_url``...); the bot's own by default."""
        return await self.api("GET", f"{CLIENT_V3}/profile/{quote_segment(user_id or self._me())}")

    async def set_display_name(self, name: str) -> None:
        """Set the bot's display name (the server announces it in every joined room)."""
        await self.api("PUT", f"{CLIENT_V3}/profile/{quote_segment(self._me())}/displayname", json={"displayname": name})

    async def set_avatar(self, mxc_uri: str) -> None:
        """Set the bot's avatar to uploaded content (see :meth:`upload`)."""
        parse_mxc(mxc_uri)
        await self.api("PUT", f"{CLIENT_V3}/profile/{quote_segment(self._me())}/avatar_url", json={"avatar_url": mxc_uri})

    # --- media ------------------------------------------------------------------

    async def upload(self, filename: str | None, content: bytes | str, content_type: str | None = None) -> str:
        """Upload content to the media repository; returns its mxc:// URI.

        ``content_type`` defaults to a guess from the file name; a ``None``
        file name is not sent (encrypted attachments keep theirs inside the event).
        """
        data = content.encode() if isinstance(content, str) else content
        kind = content_type or _guess_type(filename)
        answer = await self.api(
            "POST", f"{MEDIA_V3}/upload", data=data, params=drop_none(filename=filename), headers={"Content-Type": kind},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
        )
        return str(answer["content_uri"])

    async def upload_attachment(self, room_id: str, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Upload the file of a message for ``room_id``: ``{"url": mxc_uri}`` here.

        The client's encrypted-rooms part overrides it: in an encrypted room
        the file is uploaded encrypted and the answer is ``{"file": EncryptedFile}``.
        """
        return {"url": await self.upload(filename, data, content_type)}

    async def send_attachment(
        self,
        room_id: str,
        content: bytes,
        filename: str,
        *,
        msgtype: str | None = None,
        content_type: str | None = None,
        caption: str | None = None,
        info: Mapping[str, Any] | None = None,
        thumbnail: bytes | None = None,
        thumbnail_info: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload ``content`` and send the message that shows it; encrypted in an encrypted room.

        ``msgtype`` defaults to m.image, m.audio or m.video after the content
        type (itself guessed from ``filename`` when not given), else m.file.
        The body is ``caption`` or the file name; ``info`` gets ``mimetype``
        and ``size``, then the keys given (``w``, ``h``, ``duration``...).
        ``thumbnail`` (bytes, described by ``thumbnail_info``: ``mimetype``,
        ``w``, ``h``) is uploaded too. In an encrypted room each file is
        encrypted with its own key and the message has ``file`` (and
        ``info.thumbnail_file``) instead of ``url``; without encryption
        support nothing is uploaded there and a GranolinError is raised.
        """
        kind = content_type or _guess_type(filename)
        message: dict[str, Any] = {"msgtype": msgtype or _msgtype_for(kind), "body": caption or filename, "filename": filename}
        message |= await self.upload_attachment(room_id, filename, content, kind)
        described = {"mimetype": kind, "size": len(content), **(info or {})}
        if thumbnail is not None:
            thumbnail_described = {"size": len(thumbnail), **(thumbnail_info or {})}
            thumbnail_kind = str(thumbnail_described.get("mimetype") or "application/octet-stream")
            uploaded = await self.upload_attachment(room_id, f"thumbnail-{filename}", thumbnail, thumbnail_kind)
            described |= {f"thumbnail_{key}": value for key, value in uploaded.items()} | {"thumbnail_info": thumbnail_described}
        message["info"] = described
        return await self.send_event(room_id, "m.room.message", message | dict(extra or {}))

    async def _media(self, kind: str, mxc_uri: str, params: Mapping[str, str]) -> Media:
        server, media_id = parse_mxc(mxc_uri)
        tail = f"/{kind}/{quote_segment(server)}/{quote_segment(media_id)}"
        if not self._legacy_media:
            try:
                headers, body = await self.request("GET", CLIENT_V1_MEDIA + tail, params=params)
                return _media_from(headers, body)
            except MatrixError as exc:
                if not exc.unrecognized:
                    raise
                log.info("the server has no authenticated media endpoints; using %s", MEDIA_V3)
                self._legacy_media = True
        headers, body = await self.request("GET", MEDIA_V3 + tail, params=params)
        return _media_from(headers, body)

    async def download(self, mxc_uri: str) -> Media:
        """Download content (authenticated media, falling back to the old endpoint)."""
        return await self._media("download", mxc_uri, {})

    async def download_attachment(self, message: Event | Mapping[str, Any], *, thumbnail: bool = False) -> Media:
        """The file a media message shows (its ``url``, or its ``file`` downloaded and decrypted); its thumbnail with ``thumbnail``.

        ``message`` is the event or its content. An encrypted file is checked
        against its SHA-256 before it is decrypted (:class:`AttachmentError`
        when it does not match or its ``file`` is malformed); its content type
        is the message's ``info.mimetype``. A message without the file raises
        GranolinError.
        """
        content = message.content if isinstance(message, Event) else message
        info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
        if thumbnail:
            holder, prefix, filename = info, "thumbnail_", None
            described = info.get("thumbnail_info") if isinstance(info.get("thumbnail_info"), Mapping) else {}
        else:
            holder, prefix, filename = content, "", content.get("filename") or content.get("body")
            described = info
        mimetype = described.get("mimetype") if isinstance(described.get("mimetype"), str) else None
        encrypted_file = holder.get(f"{prefix}file")
        if isinstance(encrypted_file, Mapping):
            url = encrypted_file.get("url")
            if not isinstance(url, str):
                raise AttachmentError("the encrypted file has no url")
            cipher = attachment_cipher()  # before downloading: without the cryptography package, nothing can be read
            downloaded = await self.download(url)
            plaintext = cipher.decrypt_attachment(downloaded.content, encrypted_file)
            return Media(content=plaintext, content_type=mimetype or "application/octet-stream", filename=filename)
        url = holder.get(f"{prefix}url")
        if not isinstance(url, str):
            raise GranolinError(f"the message has no {prefix}file and no {prefix}url to download")
        downloaded = await self.download(url)
        return Media(content=downloaded.content, content_type=downloaded.content_type, filename=downloaded.filename or filename)

    async def thumbnail(self, mxc_uri: str, width: int, height: int, method: str = "scale", animated: bool | None = None) -> Media:
        """Download a thumbnail of content, ``method`` being "scale" or "crop"."""
        params = {"width": str(width), "height": str(height), "method": method}
        if animated is not None:
            params["animated"] = "true" if animated else "false"
        return await self._media("thumbnail", mxc_uri, params)


def _guess_type(filename: str | None) -> str:
    return (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"


def _msgtype_for(content_type: str) -> str:
    """The message type that shows a file of this content type (m.file when none fits)."""
    major = content_type.partition("/")[0]
    return {"image": "m.image", "audio": "m.audio", "video": "m.video"}.get(major, "m.file")


def _media_from(headers: CIMultiDictProxy[str], body: bytes) -> Media:
    disposition = headers.get("Content-Disposition", "")
    filename = None
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            filename = value.strip('"')
    return Media(content=body, content_type=headers.get("Content-Type", "application/octet-stream"), filename=filename)
