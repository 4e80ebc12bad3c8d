"""The media service: uploads, asynchronous uploads, downloads, thumbnails, URL previews.

API modules call this with the caller's user ID and a stream of body chunks; it never
sees HTTP. Bytes go to `FileStore` (content-addressed files), metadata to `MediaStore`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from ranvier.config import Config
from ranvier.errors import MatrixError, not_found
from ranvier.events.identifiers import MEDIA_ID_RE, is_valid_server_name
from ranvier.media.files import ContentTooLarge, FileStore
from ranvier.media.store import Content, Media, MediaStore, StoredThumbnail
from ranvier.media.renderer import ThumbnailRenderer
from ranvier.media.sizes import CannotThumbnail, ImageTooLarge, Size, choose_size
from ranvier.storage.engine import Database
from ranvier.users.tokens import now_ms

_MEDIA_ID_ALPHABET = string.ascii_letters + string.digits
_MEDIA_ID_LENGTH = 24
_CONTENT_TYPE_PATTERN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_UPLOAD_NAME = 255

#: Longest wait for a pending upload, whatever timeout_ms asks (the spec wants a maximum).
MAX_WAIT_MS = 60_000
#: How often a waiter looks at the database, for uploads finished by another process.
WAIT_POLL_SECONDS = 1.0
#: Thumbnails rendered at once, each by a worker process of its own that may hold a decoded
#: image of up to max_image_pixels.
THUMBNAIL_WORKERS = 2


def new_media_id() -> str:
    return "".join(secrets.choice(_MEDIA_ID_ALPHABET) for _ in range(_MEDIA_ID_LENGTH))


def clean_content_type(header: str | None) -> str:
    """The uploader's Content-Type if it is a well-formed media type, else octet-stream."""
    if header and len(header) <= 255 and _CONTENT_TYPE_PATTERN.fullmatch(header.strip()):
        return header.strip()
    return DEFAULT_CONTENT_TYPE


@dataclass(frozen=True, slots=True)
class Servable:
    """A file to send: where it is on disk, its type, size and (for downloads) its name."""

    path: str
    content_type: str
    size: int
    upload_name: str | None = None


def _previewer(config):
    """URL previews are off by default; their HTTP client is loaded only when they are on."""
    from ranvier.media.preview import UrlPreviewer

    return UrlPreviewer(config.url_preview)


class MediaService:
    def __init__(self, db: Database, config: Config) -> None:
        self.config = config.media
        self.server_name = config.server_name
        self.store = MediaStore(db)
        self.files = FileStore(config.media_dir)
        self.previewer = _previewer(self.config) if self.config.url_preview.enabled else None
        # Replaced at every finished upload; waiters for pending media wake on it.
        self._upload_finished = asyncio.Event()
        self.renderer = ThumbnailRenderer(THUMBNAIL_WORKERS)
        #: Set by the server when federation is on: another server's media,
        #: remote(server_name, media_id) -> (bytes, content type, file name).
        self.remote: Callable[[str, str], Awaitable[tuple[bytes, str | None, str | None]]] | None = None
        self._fetching: dict[tuple[str, str], asyncio.Future] = {}

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    async def close(self) -> None:
        """Stop the thumbnail render workers."""
        await self.renderer.close()

    def public_config(self) -> dict[str, Any]:
        return {"m.upload.size": self.config.max_upload_bytes}

    # -- uploads -----------------------------------------------------------------------

    async def upload(
        self, user_id: str, chunks: AsyncIterator[bytes], *, content_length: int | None,
        content_type: str | None, upload_name: str | None,
    ) -> str:
        """Store an upload under a new media ID; returns its mxc:// URI."""
        content = await self._receive(user_id, chunks, content_length, content_type, upload_name)
        media_id = new_media_id()
        await self.store.add_uploaded(media_id, user_id, content, now_ms())
        return self.mxc(media_id)

    async def create(self, user_id: str) -> dict[str, Any]:
        """Reserve an mxc:// URI whose content comes later (POST /_matrix/media/v1/create)."""
        now = now_ms()
        expires = now + self.config.unused_upload_lifetime_ms
        media_id = new_media_id()
        if not await self.store.add_pending(media_id, user_id, now, expires, self.config.max_pending_uploads):
            raise MatrixError("M_LIMIT_EXCEEDED", "Too many pending uploads; finish or let some expire first")
        return {"content_uri": self.mxc(media_id), "unused_expires_at": expires}

    async def upload_to(
        self, user_id: str, server_name: str, media_id: str, chunks: AsyncIterator[bytes], *,
        content_length: int | None, content_type: str | None, upload_name: str | None,
    ) -> None:
        """Give a reserved media ID its content; only its creator may, and only once."""
        media = await self._reserved(server_name, media_id)
        if media.user_id != user_id:
            raise MatrixError("M_FORBIDDEN", "This media ID was created by another user")
        if media.uploaded_ts is not None:
            raise MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        content = await self._receive(user_id, chunks, content_length, content_type, upload_name)
        if not await self.store.complete_pending(media_id, content, now_ms()):
            await self._reserved(server_name, media_id)  # M_NOT_FOUND if it expired meanwhile
            raise MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        finished, self._upload_finished = self._upload_finished, asyncio.Event()
        finished.set()

    async def _reserved(self, server_name: str, media_id: str) -> Media:
        media = await self._lookup(server_name, media_id)
        if media.uploaded_ts is None and media.expires_ts is not None and media.expires_ts < now_ms():
            raise not_found("This media ID has expired")
        return media

    async def _receive(
        self, user_id: str, chunks: AsyncIterator[bytes], content_length: int | None,
        content_type: str | None, upload_name: str | None,
    ) -> Content:
        """Check the limits (before reading when the length is declared) and store the body."""
        if upload_name is not None and len(upload_name) > MAX_UPLOAD_NAME:
            raise MatrixError("M_INVALID_PARAM", f"filename must be at most {MAX_UPLOAD_NAME} characters")
        size_limit = self.config.max_upload_bytes
        quota_left = None
        if self.config.user_quota_bytes:
            quota_left = max(0, self.config.user_quota_bytes - await self.store.used_bytes(user_id))
        if content_length is not None:
            if content_length > size_limit:
                raise _too_large(size_limit)
            if quota_left is not None and content_length > quota_left:
                raise _over_quota()
        limit = size_limit if quota_left is None else min(size_limit, quota_left)
        try:
            content_hash, size = await self.files.write_stream(chunks, limit)
        except ContentTooLarge:
            raise _too_large(size_limit) if limit == size_limit else _over_quota() from None
        return Content(content_hash, size, clean_content_type(content_type), upload_name or None)

    # -- downloads and thumbnails --------------------------------------------------------

    async def download(self, server_name: str, media_id: str, *, timeout_ms: int, legacy: bool) -> Servable:
        media = await self._available(server_name, media_id, timeout_ms, legacy)
        return Servable(
            self.files.path(media.content_hash), media.content_type or DEFAULT_CONTENT_TYPE, media.size,
            media.upload_name,
        )

    async def thumbnail(
        self, server_name: str, media_id: str, width: int, height: int, method: str, *,
        animated: bool, timeout_ms: int, legacy: bool,
    ) -> Servable:
        """The cached thumbnail for the nearest suggested size, rendered on first request."""
        media = await self._available(server_name, media_id, timeout_ms, legacy)
        size = choose_size(width, height, method)
        key = (size.width, size.height, size.method) if size else (0, 0, "original")
        stored = await self.store.get_thumbnail(media.content_hash, *key, animated)
        if stored is None:
            stored = await self._render(media, size, animated)
            await self.store.add_thumbnail(media.content_hash, *key, animated, stored)
        return Servable(self.files.path(stored.thumbnail_hash), stored.content_type, stored.size)

    async def _render(self, media: Media, size: Size | None, animated: bool) -> StoredThumbnail:
        try:
            rendered = await self.renderer.render(self.files.path(media.content_hash), size, animated,
                                                  self.config.max_image_pixels)
        except ImageTooLarge:
            raise MatrixError("M_TOO_LARGE", "Content is too large to thumbnail") from None
        except CannotThumbnail:
            raise MatrixError("M_UNKNOWN", "Cannot generate thumbnails for the requested content") from None
        if rendered.data is None:
            return StoredThumbnail(media.content_hash, rendered.content_type, media.size)
        thumbnail_hash = await self.files.write_bytes(rendered.data)
        return StoredThumbnail(thumbnail_hash, rendered.content_type, len(rendered.data))

    async def _available(self, server_name: str, media_id: str, timeout_ms: int, legacy: bool) -> Media:
        """Uploaded media, waiting up to timeout_ms for a pending upload (504 M_NOT_YET_UPLOADED).

        The deprecated unauthenticated endpoints only see media uploaded before the freeze.
        """
        media = await self._reserved(server_name, media_id)
        if media.quarantined_by is not None:
            raise not_found("This media has been quarantined by a server admin")
        deadline = time.monotonic() + min(timeout_ms, MAX_WAIT_MS) / 1000
        while media.uploaded_ts is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MatrixError("M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
            try:
                await asyncio.wait_for(self._upload_finished.wait(), min(remaining, WAIT_POLL_SECONDS))
            except TimeoutError:
                pass
            media = await self._reserved(server_name, media_id)
        freeze_ts = self.config.freeze_ts
        if legacy and freeze_ts is not None and media.uploaded_ts >= freeze_ts:
            raise not_found("This media is only served by the authenticated /_matrix/client/v1/media endpoints")
        return media

    async def _lookup(self, server_name: str, media_id: str) -> Media:
        if server_name != self.server_name:
            return await self._remote_media(server_name, media_id)
        # The spec's media ID grammar: anything else cannot name our media (and never a path).
        media = await self.store.get_media(media_id) if MEDIA_ID_RE.fullmatch(media_id) else None
        if media is None:
            raise not_found("Unknown media ID")
        return media

    async def _remote_media(self, server_name: str, media_id: str) -> Media:
        """Another server's media: fetched once through federation (one fetch at a time per
        URI), then served from here."""
        if not MEDIA_ID_RE.fullmatch(media_id) or not is_valid_server_name(server_name):
            raise not_found("Unknown media ID")
        media = await self.store.get_remote(server_name, media_id)
        if media is not None:
            return media
        if self.remote is None:
            raise not_found("Remote media is not available from this server")
        key = (server_name, media_id)
        fetching = self._fetching.get(key)
        if fetching is None:
            fetching = self._fetching[key] = asyncio.ensure_future(self._fetch_remote(server_name, media_id))
            fetching.add_done_callback(lambda _: self._fetching.pop(key, None))
        return await asyncio.shield(fetching)

    async def _fetch_remote(self, server_name: str, media_id: str) -> Media:
        content, content_type, upload_name = await self.remote(server_name, media_id)
        if len(content) > self.config.max_upload_bytes:
            raise _too_large(self.config.max_upload_bytes)
        content_hash = await self.files.write_bytes(content)
        await self.store.add_remote(server_name, media_id, Content(content_hash, len(content),
                                                                   clean_content_type(content_type), upload_name),
                                    now_ms())
        return await self.store.get_remote(server_name, media_id)

    # -- removal (server admins) -----------------------------------------------------------

    async def delete(self, media_ids: list[str]) -> None:
        """Delete media: their rows, and the files (and thumbnails) no other media shares."""
        for content_hash in await self.store.delete_media(media_ids):
            await asyncio.to_thread(self.files.remove, content_hash)

    # -- URL previews ------------------------------------------------------------------------

    async def preview_url(self, user_id: str, url: str) -> dict[str, Any]:
        """OpenGraph data for a URL; its image is stored as media of the asking user."""
        if self.previewer is None:
            raise MatrixError("M_UNRECOGNIZED", "URL previews are disabled on this server", status=404)
        preview = await self.previewer.preview(url)
        result = dict(preview.og)
        if preview.image is not None:
            data, content_type = preview.image
            content_hash = await self.files.write_bytes(data)
            media_id = new_media_id()
            content = Content(content_hash, len(data), clean_content_type(content_type), None)
            await self.store.add_uploaded(media_id, user_id, content, now_ms())
            result.update({"og:image": self.mxc(media_id), "og:image:type": content.content_type,
                           "matrix:image:size": len(data)})
        return result


def _too_large(limit: int) -> MatrixError:
    return MatrixError("M_TOO_LARGE", f"Cannot upload files larger than {limit} bytes")


def _over_quota() -> MatrixError:
    return MatrixError("M_FORBIDDEN", "This upload would exceed your media quota")
