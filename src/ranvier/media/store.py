"""All SQL of the media service: media IDs, their metadata and cached thumbnails."""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.storage.engine import Database


@dataclass(frozen=True, slots=True)
class Media:
    """One mxc:// URI of this server; `content_hash` is None while an upload is pending."""

    media_id: str
    user_id: str
    created_ts: int
    expires_ts: int | None
    uploaded_ts: int | None
    content_hash: str | None
    content_type: str | None
    upload_name: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class StoredThumbnail:
    """What to serve for one thumbnail size: a content-addressed file and its type."""

    thumbnail_hash: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Content:
    """Bytes now on disk, as described by the uploader."""

    content_hash: str
    size: int
    content_type: str
    upload_name: str | None


_MEDIA_COLUMNS = "media_id, user_id, created_ts, expires_ts, uploaded_ts, content_hash, content_type, upload_name, size"


class MediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_media(self, media_id: str) -> Media | None:
        row = await self.db.fetchone(f"SELECT {_MEDIA_COLUMNS} FROM media WHERE media_id = ?", media_id)
        return Media(*row) if row is not None else None

    async def add_uploaded(self, media_id: str, user_id: str, content: Content, now: int) -> None:
        await self.db.execute(
            f"INSERT INTO media ({_MEDIA_COLUMNS}) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            media_id, user_id, now, now, content.content_hash, content.content_type, content.upload_name, content.size,
        )

    async def add_pending(self, media_id: str, user_id: str, now: int, expires_ts: int, max_pending: int) -> bool:
        """Reserve a media ID for a later upload; False when the user holds too many already.

        Expired reservations are dropped first, so they never count against the limit.
        """
        async with self.db.transaction() as txn:
            await txn.execute("DELETE FROM media WHERE uploaded_ts IS NULL AND expires_ts < ?", now)
            pending = await txn.fetchval(
                "SELECT COUNT(*) FROM media WHERE user_id = ? AND uploaded_ts IS NULL", user_id
            )
            if pending >= max_pending:
                return False
            await txn.execute(
                "INSERT INTO media (media_id, user_id, created_ts, expires_ts) VALUES (?, ?, ?, ?)",
                media_id, user_id, now, expires_ts,
            )
        return True

    async def complete_pending(self, media_id: str, content: Content, now: int) -> bool:
        """Attach content to a reserved media ID; False if it already has content."""
        changed = await self.db.execute(
            "UPDATE media SET uploaded_ts = ?, expires_ts = NULL, content_hash = ?, content_type = ?, "
            "upload_name = ?, size = ? WHERE media_id = ? AND uploaded_ts IS NULL",
            now, content.content_hash, content.content_type, content.upload_name, content.size, media_id,
        )
        return changed > 0

    async def used_bytes(self, user_id: str) -> int:
        total = await self.db.fetchval(
            "SELECT SUM(size) FROM media WHERE user_id = ? AND uploaded_ts IS NOT NULL", user_id
        )
        return int(total or 0)

    async def get_thumbnail(
        self, content_hash: str, width: int, height: int, method: str, animated: bool
    ) -> StoredThumbnail | None:
        row = await self.db.fetchone(
            "SELECT thumbnail_hash, content_type, size FROM media_thumbnails "
            "WHERE content_hash = ? AND width = ? AND height = ? AND method = ? AND animated = ?",
            content_hash, width, height, method, int(animated),
        )
        return StoredThumbnail(*row) if row is not None else None

    async def add_thumbnail(
        self, content_hash: str, width: int, height: int, method: str, animated: bool, thumbnail: StoredThumbnail
    ) -> None:
        await self.db.execute(
            "INSERT INTO media_thumbnails (content_hash, width, height, method, animated, thumbnail_hash, "
            "content_type, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (content_hash, width, height, method, animated) DO NOTHING",
            content_hash, width, height, method, int(animated),
            thumbnail.thumbnail_hash, thumbnail.content_type, thumbnail.size,
        )
