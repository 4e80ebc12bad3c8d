"""All SQL of server-side key backups: versions and the room keys stored in them.

A version's `etag` counts the changes to its keys and `key_count` is kept with every
write, so neither needs a scan of the backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ranvier.storage.engine import Database, Transaction, tuples_of


@dataclass(frozen=True, slots=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: str
    etag: int
    count: int


@dataclass(frozen=True, slots=True)
class RoomKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: str

    def better_than(self, stored: "RoomKey") -> bool:
        """The spec's rule: a verified key wins, then the lower first message index, then
        the lower forwarded count; a tie keeps the stored one."""
        if self.is_verified != stored.is_verified:
            return self.is_verified
        if self.first_message_index != stored.first_message_index:
            return self.first_message_index < stored.first_message_index
        return self.forwarded_count < stored.forwarded_count


_VERSION_COLUMNS = "version, algorithm, auth_data, etag, key_count"
_KEY_COLUMNS = "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"


def _room_key(row) -> RoomKey:
    return RoomKey(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


class BackupStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- versions ----------------------------------------------------------------------------

    async def create_version(self, user_id: str, algorithm: str, auth_data: str) -> int:
        """A new version, numbered after every version the user ever had."""
        async with self.db.transaction() as txn:
            version = await txn.fetchval(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM backup_versions WHERE user_id = ?", user_id
            )
            await txn.execute(
                "INSERT INTO backup_versions (user_id, version, algorithm, auth_data) VALUES (?, ?, ?, ?)",
                user_id, version, algorithm, auth_data,
            )
        return version

    async def current_version(self, user_id: str) -> BackupVersion | None:
        row = await self.db.fetchone(
            f"SELECT {_VERSION_COLUMNS} FROM backup_versions WHERE user_id = ? AND deleted = 0 "
            "ORDER BY version DESC LIMIT 1",
            user_id,
        )
        return BackupVersion(*row) if row else None

    async def get_version(self, user_id: str, version: int) -> BackupVersion | None:
        row = await self.db.fetchone(
            f"SELECT {_VERSION_COLUMNS} FROM backup_versions WHERE user_id = ? AND version = ? AND deleted = 0",
            user_id, version,
        )
        return BackupVersion(*row) if row else None

    async def set_auth_data(self, user_id: str, version: int, auth_data: str) -> None:
        await self.db.execute(
            "UPDATE backup_versions SET auth_data = ? WHERE user_id = ? AND version = ?", auth_data, user_id, version
        )

    async def delete_version(self, user_id: str, version: int) -> bool:
        """Delete a version and its keys; False if it never existed (deleting twice is fine)."""
        async with self.db.transaction() as txn:
            existed = await txn.execute(
                "UPDATE backup_versions SET deleted = 1, key_count = 0 WHERE user_id = ? AND version = ?",
                user_id, version,
            )
            await txn.execute("DELETE FROM backup_keys WHERE user_id = ? AND version = ?", user_id, version)
        return bool(existed)

    # -- keys --------------------------------------------------------------------------------

    async def get_keys(self, user_id: str, version: int, room_id: str | None = None,
                       session_id: str | None = None) -> list[RoomKey]:
        where, args = _key_filter(user_id, version, room_id, session_id)
        rows = await self.db.fetchall(f"SELECT {_KEY_COLUMNS} FROM backup_keys WHERE {where}", *args)
        return [_room_key(row) for row in rows]

    async def put_keys(self, user_id: str, version: int, keys: list[RoomKey]) -> tuple[int, int]:
        """Store the keys that beat the stored ones; returns (etag, count) after."""
        async with self.db.transaction() as txn:
            stored = await self._stored_keys(txn, user_id, version, keys)
            winners = [key for key in keys if (key.room_id, key.session_id) not in stored
                       or key.better_than(stored[(key.room_id, key.session_id)])]
            if winners:
                await txn.executemany(
                    f"INSERT INTO backup_keys (user_id, version, {_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET "
                    "first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count, "
                    "is_verified = excluded.is_verified, session_data = excluded.session_data",
                    [(user_id, version, k.room_id, k.session_id, k.first_message_index, k.forwarded_count,
                      int(k.is_verified), k.session_data) for k in winners],
                )
                added = sum(1 for key in winners if (key.room_id, key.session_id) not in stored)
                await self._count_change(txn, user_id, version, added)
            return await self._etag_and_count(txn, user_id, version)

    async def _stored_keys(self, txn: Transaction, user_id: str, version: int,
                           keys: Sequence[RoomKey]) -> dict[tuple[str, str], RoomKey]:
        sessions, params = tuples_of(self.db, sorted({(key.room_id, key.session_id) for key in keys}), 2)
        rows = await txn.fetchall(
            f"SELECT {_KEY_COLUMNS} FROM backup_keys WHERE user_id = ? AND version = ? "
            f"AND (room_id, session_id) IN ({sessions})",
            user_id, version, *params,
        )
        return {(row[0], row[1]): _room_key(row) for row in rows}

    async def delete_keys(self, user_id: str, version: int, room_id: str | None = None,
                          session_id: str | None = None) -> tuple[int, int]:
        where, args = _key_filter(user_id, version, room_id, session_id)
        async with self.db.transaction() as txn:
            deleted = await txn.execute(f"DELETE FROM backup_keys WHERE {where}", *args)
            if deleted:
                await self._count_change(txn, user_id, version, -deleted)
            return await self._etag_and_count(txn, user_id, version)

    @staticmethod
    async def _count_change(txn: Transaction, user_id: str, version: int, added: int) -> None:
        await txn.execute(
            "UPDATE backup_versions SET etag = etag + 1, key_count = key_count + ? WHERE user_id = ? AND version = ?",
            added, user_id, version,
        )

    @staticmethod
    async def _etag_and_count(txn: Transaction, user_id: str, version: int) -> tuple[int, int]:
        row = await txn.fetchone(
            "SELECT etag, key_count FROM backup_versions WHERE user_id = ? AND version = ?", user_id, version
        )
        return row[0], row[1]


def _key_filter(user_id: str, version: int, room_id: str | None, session_id: str | None) -> tuple[str, list]:
    where, args = "user_id = ? AND version = ?", [user_id, version]
    if room_id is not None:
        where, args = where + " AND room_id = ?", args + [room_id]
    if session_id is not None:
        where, args = where + " AND session_id = ?", args + [session_id]
    return where, args
