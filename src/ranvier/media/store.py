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
    #: The admin who quarantined it (never served while set), or None.
    quarantined_by: str | None = None
    safe_from_quarantine: bool = False


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
_ALL_COLUMNS = _MEDIA_COLUMNS + ", quarantined_by, safe_from_quarantine"
#: Sort keys of an admin's media list (Synapse's `order_by`).
MEDIA_ORDER = {
    "media_id": "media_id", "upload_name": "COALESCE(upload_name, '')", "created_ts": "created_ts",
    "last_access_ts": "created_ts", "media_length": "COALESCE(size, 0)",
    "media_type": "COALESCE(content_type, '')", "quarantined_by": "COALESCE(quarantined_by, '')",
    "safe_from_quarantine": "safe_from_quarantine",
}


def _media(row) -> Media:
    return Media(*row[:9], row[9], bool(row[10]))


class MediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_media(self, media_id: str) -> Media | None:
        row = await self.db.fetchone(f"SELECT {_ALL_COLUMNS} FROM media WHERE media_id = ?", media_id)
        return _media(row) if row is not None else None

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

    async def get_remote(self, server_name: str, media_id: str) -> Media | None:
        """Another server's media as fetched (its fetch time as the upload time)."""
        row = await self.db.fetchone(
            "SELECT content_hash, content_type, upload_name, size, fetched_ts FROM remote_media "
            "WHERE server_name = ? AND media_id = ?", server_name, media_id,
        )
        if row is None:
            return None
        return Media(media_id, "", row[4], None, row[4], row[0], row[1], row[2], row[3])

    async def add_remote(self, server_name: str, media_id: str, content: Content, now: int) -> None:
        await self.db.execute(
            "INSERT INTO remote_media (server_name, media_id, content_hash, content_type, upload_name, size, fetched_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server_name, media_id) DO NOTHING",
            server_name, media_id, content.content_hash, content.content_type, content.upload_name, content.size, now,
        )

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

    # -- for server admins -------------------------------------------------------------

    async def media_of_user(self, user_id: str, *, order_by: str, backwards: bool, start: int,
                            limit: int) -> tuple[list[Media], int]:
        """A page of a user's uploaded media and how many they have."""
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            f"SELECT {_ALL_COLUMNS} FROM media WHERE user_id = ? AND uploaded_ts IS NOT NULL "
            f"ORDER BY {MEDIA_ORDER[order_by]} {order}, media_id ASC LIMIT ? OFFSET ?",
            user_id, limit, start,
        )
        total = await self.db.fetchval(
            "SELECT COUNT(*) FROM media WHERE user_id = ? AND uploaded_ts IS NOT NULL", user_id
        )
        return [_media(row) for row in rows], int(total)

    async def media_older_than(self, before_ts: int, size_gt: int) -> list[Media]:
        """Uploaded media created before `before_ts` and larger than `size_gt` bytes, not
        protected from quarantine (Synapse spares protected media from deletion too)."""
        rows = await self.db.fetchall(
            f"SELECT {_ALL_COLUMNS} FROM media WHERE uploaded_ts IS NOT NULL AND created_ts < ? "
            "AND COALESCE(size, 0) > ? AND safe_from_quarantine = 0",
            before_ts, size_gt,
        )
        return [_media(row) for row in rows]

    async def delete_media(self, media_ids: list[str]) -> list[str]:
        """Delete media rows; returns the content hashes no remaining media uses (their
        files and thumbnails can go)."""
        if not media_ids:
            return []
        async with self.db.transaction() as txn:
            hashes: set[str] = set()
            for start in range(0, len(media_ids), 500):
                chunk = media_ids[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = await txn.fetchall(
                    f"SELECT DISTINCT content_hash FROM media WHERE media_id IN ({marks}) AND content_hash IS NOT NULL",
                    *chunk,
                )
                hashes.update(row[0] for row in rows)
                await txn.execute(f"DELETE FROM media WHERE media_id IN ({marks})", *chunk)
            unused = []
            for content_hash in sorted(hashes):
                if await txn.fetchval("SELECT COUNT(*) FROM media WHERE content_hash = ?", content_hash) == 0:
                    unused.append(content_hash)
            thumbnails = []
            for content_hash in unused:
                rows = await txn.fetchall("SELECT thumbnail_hash FROM media_thumbnails WHERE content_hash = ?",
                                          content_hash)
                thumbnails += [row[0] for row in rows if row[0] != content_hash]
                await txn.execute("DELETE FROM media_thumbnails WHERE content_hash = ?", content_hash)
        return unused + thumbnails

    async def set_quarantined(self, media_ids: list[str], by: str | None) -> int:
        """Quarantine (by an admin) or release media; protected media are never quarantined."""
        changed = 0
        for start in range(0, len(media_ids), 500):
            chunk = media_ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            protected = "AND safe_from_quarantine = 0" if by is not None else ""
            changed += await self.db.execute(
                f"UPDATE media SET quarantined_by = ? WHERE media_id IN ({marks}) {protected}", by, *chunk
            )
        return changed

    async def media_ids_of_user(self, user_id: str) -> list[str]:
        rows = await self.db.fetchall("SELECT media_id FROM media WHERE user_id = ?", user_id)
        return [row[0] for row in rows]

    async def set_protected(self, media_id: str, protected: bool) -> bool:
        return bool(await self.db.execute(
            "UPDATE media SET safe_from_quarantine = ? WHERE media_id = ?", int(protected), media_id
        ))

    async def total_bytes(self) -> int:
        return int(await self.db.fetchval("SELECT COALESCE(SUM(size), 0) FROM media WHERE uploaded_ts IS NOT NULL"))
