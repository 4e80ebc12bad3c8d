"""All SQL of a user's personal data: profile fields, account data, presence, directory.

The directory and presence visibility read the room server's `memberships` table (never
write it): "who shares a room with whom" is one join there, where asking the room server
room by room would cost a query per room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import orjson

from ranvier.storage.engine import Database, Transaction, any_of

#: Users who share a joined room with the user given as parameter (the user included).
_SHARING_A_ROOM = (
    "SELECT theirs.user_id FROM memberships mine JOIN memberships theirs ON theirs.room_id = mine.room_id "
    "WHERE mine.user_id = ? AND mine.membership = 'join' AND theirs.membership = 'join'"
)


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str) -> dict[str, Any] | None:
        """The whole profile (displayname, avatar_url and extended fields), None if no such user."""
        row = await self.db.fetchone("SELECT displayname, avatar_url FROM profiles WHERE user_id = ?", user_id)
        if row is None:
            return None
        profile: dict[str, Any] = {}
        if row[0] is not None:
            profile["displayname"] = row[0]
        if row[1] is not None:
            profile["avatar_url"] = row[1]
        rows = await self.db.fetchall("SELECT field, value FROM profile_fields WHERE user_id = ?", user_id)
        profile.update({key: orjson.loads(value) for key, value in rows})
        return profile

    async def member_fields(self, user_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """user_id -> (displayname, avatar_url) of those of `user_ids` that are local users."""
        if not user_ids:
            return {}
        condition, ids = any_of(self.db, user_ids)
        rows = await self.db.fetchall(f"SELECT user_id, displayname, avatar_url FROM profiles WHERE user_id {condition}", ids)
        return {row[0]: (row[1], row[2]) for row in rows}

    async def set_displayname(self, user_id: str, value: str | None) -> None:
        await self.db.execute("UPDATE profiles SET displayname = ? WHERE user_id = ?", value, user_id)

    async def set_avatar_url(self, user_id: str, value: str | None) -> None:
        await self.db.execute("UPDATE profiles SET avatar_url = ? WHERE user_id = ?", value, user_id)

    async def set_field(self, user_id: str, key: str, value: Any) -> None:
        await self.db.execute(
            "INSERT INTO profile_fields (user_id, field, value) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
            user_id, key, orjson.dumps(value).decode(),
        )

    async def delete_field(self, user_id: str, key: str) -> None:
        await self.db.execute("DELETE FROM profile_fields WHERE user_id = ? AND field = ?", user_id, key)

    async def clear(self, user_id: str) -> None:
        """Empty the whole profile (account erasure); the account keeps its row."""
        async with self.db.transaction() as txn:
            await txn.execute("UPDATE profiles SET displayname = NULL, avatar_url = NULL WHERE user_id = ?", user_id)
            await txn.execute("DELETE FROM profile_fields WHERE user_id = ?", user_id)


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        return await self.db.fetchval("SELECT COALESCE(MAX(stream_id), 0) FROM account_data")

    async def get(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        """Content of one entry; room_id '' is the global account data."""
        value = await self.db.fetchval(
            "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
            user_id, room_id, data_type,
        )
        return orjson.loads(value) if value is not None else None

    async def put(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any], stream_id: int) -> None:
        await self.db.execute(
            "INSERT INTO account_data (user_id, room_id, type, content, stream_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, "
            "stream_id = excluded.stream_id",
            user_id, room_id, data_type, orjson.dumps(content).decode(), stream_id,
        )

    @staticmethod
    async def purge_room(txn: Transaction, room_id: str) -> None:
        """Purging a room (rooms.admin) takes every user's account data of it."""
        await txn.execute("DELETE FROM account_data WHERE room_id = ?", room_id)

    async def global_entries_of_type(self, data_type: str) -> list[tuple[str, dict[str, Any]]]:
        """(user_id, content) of every user's global entry of one type."""
        rows = await self.db.fetchall("SELECT user_id, content FROM account_data WHERE room_id = '' AND type = ?",
                                      data_type)
        return [(r[0], orjson.loads(r[1])) for r in rows]

    async def changed(self, user_id: str, since: int, upto: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) of the entries written in (since, upto]."""
        rows = await self.db.fetchall(
            "SELECT room_id, type, content FROM account_data WHERE user_id = ? AND stream_id > ? AND stream_id <= ? "
            "ORDER BY stream_id",
            user_id, since, upto,
        )
        return [(r[0], r[1], orjson.loads(r[2])) for r in rows]

    async def of_rooms(self, user_id: str, room_ids: Sequence[str], upto: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) of the user's entries for these rooms written up to `upto`."""
        condition, parameter = any_of(self.db, room_ids)
        rows = await self.db.fetchall(
            f"SELECT room_id, type, content FROM account_data WHERE user_id = ? AND room_id {condition} "
            "AND stream_id <= ? ORDER BY stream_id",
            user_id, parameter, upto,
        )
        return [(r[0], r[1], orjson.loads(r[2])) for r in rows]

    async def delete_user(self, user_id: str) -> None:
        """Every entry of the user, global and per room (account erasure)."""
        await self.db.execute("DELETE FROM account_data WHERE user_id = ?", user_id)


@dataclass
class PresenceRow:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    last_seen_ts: int
    stream_id: int


_PRESENCE_COLUMNS = "user_id, state, status_msg, last_active_ts, last_seen_ts, stream_id"


class PresenceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def max_stream_id(self) -> int:
        return await self.db.fetchval("SELECT COALESCE(MAX(stream_id), 0) FROM presence")

    async def get(self, user_id: str) -> PresenceRow | None:
        row = await self.db.fetchone(f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE user_id = ?", user_id)
        return PresenceRow(*row) if row else None

    async def put(self, rows: Iterable[PresenceRow]) -> None:
        async with self.db.transaction() as txn:
            await self._put(txn, rows)

    @staticmethod
    async def _put(txn: Transaction, rows: Iterable[PresenceRow]) -> None:
        await txn.executemany(
            f"INSERT INTO presence ({_PRESENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
            "state = excluded.state, status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts, "
            "last_seen_ts = excluded.last_seen_ts, stream_id = excluded.stream_id",
            [(r.user_id, r.state, r.status_msg, r.last_active_ts, r.last_seen_ts, r.stream_id) for r in rows],
        )

    async def expired(self, idle_before: int, seen_before: int) -> list[PresenceRow]:
        """Users whose stored state is out of date: online but idle, or not offline but gone."""
        rows = await self.db.fetchall(
            f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE (state = 'online' AND last_active_ts < ?) "
            "OR (state <> 'offline' AND last_seen_ts < ?)",
            idle_before, seen_before,
        )
        return [PresenceRow(*row) for row in rows]

    async def changed_for(self, user_id: str, since: int, upto: int) -> list[PresenceRow]:
        """Presence rows in (since, upto] of the user and of everyone sharing a joined room with them."""
        rows = await self.db.fetchall(
            f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE stream_id > ? AND stream_id <= ? "
            f"AND (user_id = ? OR user_id IN ({_SHARING_A_ROOM}))",
            since, upto, user_id, user_id,
        )
        return [PresenceRow(*row) for row in rows]

    async def visible_rows(self, viewer: str, user_ids: list[str]) -> dict[str, PresenceRow]:
        """The presence rows of those of `user_ids` who are the viewer or share a joined room with them."""
        if not user_ids:
            return {}
        condition, ids = any_of(self.db, user_ids)
        rows = await self.db.fetchall(
            f"SELECT {_PRESENCE_COLUMNS} FROM presence WHERE user_id {condition} "
            f"AND (user_id = ? OR user_id IN ({_SHARING_A_ROOM}))",
            ids, viewer, viewer,
        )
        return {row[0]: PresenceRow(*row) for row in rows}

    async def sharing_a_room_with(self, viewer: str, user_ids: list[str]) -> set[str]:
        """Those of `user_ids` who share a joined room with the viewer (the viewer included)."""
        if not user_ids:
            return set()
        condition, ids = any_of(self.db, user_ids)
        rows = await self.db.fetchall(
            "SELECT DISTINCT theirs.user_id FROM memberships mine JOIN memberships theirs "
            "ON theirs.room_id = mine.room_id WHERE mine.user_id = ? AND mine.membership = 'join' "
            f"AND theirs.membership = 'join' AND theirs.user_id {condition}",
            viewer, ids,
        )
        return {row[0] for row in rows}

    async def shares_a_room(self, user_id: str, other: str) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM memberships mine JOIN memberships theirs ON theirs.room_id = mine.room_id "
            "WHERE mine.user_id = ? AND theirs.user_id = ? AND mine.membership = 'join' "
            "AND theirs.membership = 'join' LIMIT 1",
            user_id, other,
        )
        return found is not None

    async def joined_rooms_of(self, user_ids: list[str]) -> set[str]:
        """The rooms any of these users is joined to (to wake their readers)."""
        if not user_ids:
            return set()
        condition, ids = any_of(self.db, user_ids)
        rows = await self.db.fetchall(
            f"SELECT DISTINCT room_id FROM memberships WHERE membership = 'join' AND user_id {condition}", ids)
        return {r[0] for r in rows}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class DirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def purge_room(txn: Transaction, room_id: str) -> None:
        """Purging a room (rooms.admin) takes it out of the user directory's public rooms."""
        await txn.execute("DELETE FROM directory_public_rooms WHERE room_id = ?", room_id)

    @staticmethod
    async def set_public_rooms(txn: Transaction, changes: list[tuple[str, bool]]) -> None:
        """Record join-rule changes, in the transaction of the events that made them."""
        for room_id, public in changes:
            await txn.execute("DELETE FROM directory_public_rooms WHERE room_id = ?", room_id)
            if public:
                await txn.execute("INSERT INTO directory_public_rooms (room_id) VALUES (?)", room_id)

    async def search(self, searcher: str, words: list[str], limit: int) -> list[tuple[str, str | None, str | None]]:
        """(user_id, displayname, avatar_url) of active users the searcher may find whose user ID
        contains every word or whose display name has a word starting with it; one query."""
        conditions, params = [], []
        for word in words:
            pattern = _like_escape(word.lower())
            conditions.append(
                "(LOWER(p.user_id) LIKE ? ESCAPE '\\' OR LOWER(p.displayname) LIKE ? ESCAPE '\\' "
                "OR LOWER(p.displayname) LIKE ? ESCAPE '\\')"
            )
            params += [f"%{pattern}%", f"{pattern}%", f"% {pattern}%"]
        first = _like_escape(words[0].lower())
        rows = await self.db.fetchall(
            "SELECT p.user_id, p.displayname, p.avatar_url FROM profiles p JOIN users u ON u.user_id = p.user_id "
            f"WHERE u.deactivated = 0 AND {' AND '.join(conditions)} AND (p.user_id = ? "
            f"OR p.user_id IN ({_SHARING_A_ROOM}) "
            "OR p.user_id IN (SELECT m.user_id FROM memberships m JOIN directory_public_rooms d "
            "ON d.room_id = m.room_id WHERE m.membership = 'join')) "
            "ORDER BY CASE WHEN LOWER(p.displayname) LIKE ? ESCAPE '\\' THEN 0 "
            "WHEN LOWER(p.user_id) LIKE ? ESCAPE '\\' THEN 1 ELSE 2 END, "
            "CASE WHEN p.displayname IS NULL THEN 1 ELSE 0 END, p.user_id LIMIT ?",
            *params, searcher, searcher, f"{first}%", f"@{first}%", limit,
        )
        return [(r[0], r[1], r[2]) for r in rows]
