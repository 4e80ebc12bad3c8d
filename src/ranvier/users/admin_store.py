"""The users service's SQL for server admins: listing and searching accounts, changing
what only an admin may change (admin flag, reactivation), tokens to act as a user, and
registration token management. Shadow bans are read from the moderation table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.storage.engine import Database
from ranvier.users.personal_store import _like_escape

#: Sort keys of the account list (Synapse's `order_by`) and the SQL they sort by; ties
#: are broken by user ID, so pages are stable.
USER_ORDER = {
    "name": "u.user_id",
    "is_guest": "u.is_guest",
    "admin": "u.is_admin",
    "user_type": "u.user_id",
    "deactivated": "u.deactivated",
    "shadow_banned": "shadow_banned",
    "displayname": "COALESCE(p.displayname, '')",
    "avatar_url": "COALESCE(p.avatar_url, '')",
    "creation_ts": "u.created_ts",
    "last_seen_ts": "last_seen_ts",
    "locked": "u.locked",
    "suspended": "u.suspended",
}

_USER_COLUMNS = (
    "u.user_id, u.is_guest, u.is_admin, u.deactivated, u.created_ts, p.displayname, p.avatar_url, "
    "CASE WHEN s.user_id IS NULL THEN 0 ELSE 1 END AS shadow_banned, "
    "COALESCE((SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id), 0) AS last_seen_ts, "
    "u.locked, u.suspended"
)
_USER_TABLES = (
    "users u LEFT JOIN profiles p ON p.user_id = u.user_id "
    "LEFT JOIN shadow_banned_users s ON s.user_id = u.user_id"
)


@dataclass(frozen=True, slots=True)
class AccountSummary:
    user_id: str
    is_guest: bool
    is_admin: bool
    deactivated: bool
    created_ts: int
    displayname: str | None
    avatar_url: str | None
    shadow_banned: bool
    last_seen_ts: int | None
    locked: bool
    suspended: bool


@dataclass(frozen=True, slots=True)
class UserQuery:
    """Filters of the account list; None means "do not filter"."""

    name: str | None = None  # in the localpart or the display name
    user_id: str | None = None  # in the user ID
    guests: bool = True
    deactivated: bool = False
    admins: bool | None = None


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, case-folded, with % and _ taken literally."""
    return f"%{_like_escape(text.lower())}%"


def _summary(row) -> AccountSummary:
    return AccountSummary(row[0], bool(row[1]), bool(row[2]), bool(row[3]), row[4], row[5], row[6], bool(row[7]),
                          row[8] or None, bool(row[9]), bool(row[10]))


class UserAdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_accounts(self, query: UserQuery, *, order_by: str, backwards: bool, start: int,
                            limit: int) -> tuple[list[AccountSummary], int]:
        """A page of accounts and the total matching the filters (two queries)."""
        conditions, params = [], []
        if query.name is not None:
            conditions.append("(LOWER(u.user_id) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(p.displayname, '')) LIKE ? "
                              "ESCAPE '\\')")
            params += [like_pattern(query.name)] * 2
        elif query.user_id is not None:
            conditions.append("LOWER(u.user_id) LIKE ? ESCAPE '\\'")
            params.append(like_pattern(query.user_id))
        if not query.guests:
            conditions.append("u.is_guest = 0")
        if not query.deactivated:
            conditions.append("u.deactivated = 0")
        if query.admins is not None:
            conditions.append("u.is_admin = ?")
            params.append(int(query.admins))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            f"SELECT {_USER_COLUMNS} FROM {_USER_TABLES} {where} "
            f"ORDER BY {USER_ORDER[order_by]} {order}, u.user_id ASC LIMIT ? OFFSET ?",
            *params, limit, start,
        )
        total = await self.db.fetchval(f"SELECT COUNT(*) FROM {_USER_TABLES} {where}", *params)
        return [_summary(row) for row in rows], int(total)

    async def account(self, user_id: str) -> AccountSummary | None:
        row = await self.db.fetchone(f"SELECT {_USER_COLUMNS} FROM {_USER_TABLES} WHERE u.user_id = ?", user_id)
        return _summary(row) if row else None

    async def count_accounts(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM users WHERE deactivated = 0"))

    async def set_admin(self, user_id: str, is_admin: bool) -> None:
        await self.db.execute("UPDATE users SET is_admin = ? WHERE user_id = ?", int(is_admin), user_id)

    async def reactivate(self, user_id: str, password_hash: str) -> None:
        """Let a deactivated account log in again, with a new password."""
        await self.db.execute("UPDATE users SET deactivated = 0, password_hash = ? WHERE user_id = ?",
                              password_hash, user_id)

    async def add_token_without_device(self, token_hash: str, user_id: str, device_id: str, now: int,
                                       expires_ts: int | None) -> None:
        """An access token whose device is not listed (an admin acting as the user): the
        user's /devices does not show it, and logging out with it removes only it."""
        await self.db.execute(
            "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_hash) "
            "VALUES (?, ?, ?, ?, ?, NULL)",
            token_hash, user_id, device_id, now, expires_ts,
        )

    async def avatar_media_urls(self) -> set[str]:
        """Every avatar_url in use by a profile (media to keep when deleting old media)."""
        rows = await self.db.fetchall("SELECT DISTINCT avatar_url FROM profiles WHERE avatar_url IS NOT NULL")
        return {row[0] for row in rows}

    # -- registration tokens ------------------------------------------------------------

    async def registration_token(self, token: str) -> tuple[Any, ...] | None:
        """(token, uses_allowed, completed, expiry_ts) or None."""
        return await self.db.fetchone(
            "SELECT token, uses_allowed, completed, expiry_ts FROM registration_tokens WHERE token = ?", token
        )

    async def update_registration_token(self, token: str, changes: dict[str, Any]) -> bool:
        """Set `uses_allowed` and/or `expiry_ts` (None lifts the limit); False if unknown."""
        assignments = ", ".join(f"{column} = ?" for column in changes)
        return bool(await self.db.execute(
            f"UPDATE registration_tokens SET {assignments} WHERE token = ?", *changes.values(), token
        ))

    async def delete_registration_token(self, token: str) -> bool:
        return bool(await self.db.execute("DELETE FROM registration_tokens WHERE token = ?", token))
