"""All SQL of the users service: accounts, profiles, devices, tokens, UIA sessions.

Each method is one atomic unit of work, so a failure never leaves half an account or a
device without its token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.storage.engine import Database, Transaction, any_of


class UiaSessionUsed(Exception):
    """A registration's user-interactive auth session has created its account already
    (a concurrent retry, a moment ago): `user_id` is that account."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str
    password_hash: str | None
    is_admin: bool
    is_guest: bool
    deactivated: bool
    created_ts: int
    locked: bool = False
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class TokenInfo:
    user_id: str
    device_id: str
    expires_ts: int | None
    is_guest: bool
    deactivated: bool
    locked: bool
    suspended: bool


_TOKEN_QUERY = ("SELECT t.token_hash, t.user_id, t.device_id, t.expires_ts, u.is_guest, u.deactivated, u.locked, "
                "u.suspended FROM access_tokens t JOIN users u ON u.user_id = t.user_id ")


def _token_info(row: Any) -> TokenInfo:
    return TokenInfo(row[0], row[1], row[2], bool(row[3]), bool(row[4]), bool(row[5]), bool(row[6]))


@dataclass(frozen=True, slots=True)
class NewSession:
    """A device login to record: the device and the hashes of its fresh tokens."""

    device_id: str
    display_name: str | None
    access_token_hash: str
    refresh_token_hash: str | None
    expires_ts: int | None
    ip: str | None = None
    user_agent: str | None = None


_DEVICE_COLUMNS = "device_id, display_name, last_seen_ip, last_seen_ts, last_seen_user_agent"
_ACCOUNT_COLUMNS = "user_id, password_hash, is_admin, is_guest, deactivated, created_ts, locked, suspended"


def _account(row: tuple[Any, ...]) -> Account:
    return Account(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]), row[5], bool(row[6]), bool(row[7]))


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- accounts ---------------------------------------------------------------------

    async def get_account(self, user_id: str) -> Account | None:
        row = await self.db.fetchone(f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE user_id = ?", user_id)
        return _account(row) if row is not None else None

    async def list_accounts(self) -> list[Account]:
        return [_account(row) for row in await self.db.fetchall(f"SELECT {_ACCOUNT_COLUMNS} FROM users ORDER BY user_id")]

    async def create_account(
        self,
        user_id: str,
        password_hash: str | None,
        *,
        now: int,
        displayname: str | None,
        is_admin: bool = False,
        is_guest: bool = False,
        session: NewSession | None = None,
        registration_token: str | None = None,
        uia_session: str | None = None,
    ) -> bool:
        """Create the account, its profile and optionally its first device; False if taken.

        `uia_session` is the registration's user-interactive auth session, which records the
        account in the same transaction: a session registers one account at most
        (`UiaSessionUsed` if it already has one).
        """
        async with self.db.transaction() as txn:
            inserted = await txn.execute(
                "INSERT INTO users (user_id, password_hash, is_admin, is_guest, deactivated, created_ts) "
                "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (user_id) DO NOTHING",
                user_id, password_hash, int(is_admin), int(is_guest), now,
            )
            if not inserted:
                return False
            if uia_session is not None:
                await self._claim_uia_session(txn, uia_session, user_id)
            await txn.execute(
                "INSERT INTO profiles (user_id, displayname, avatar_url) VALUES (?, ?, NULL)", user_id, displayname
            )
            await self._count_registration_token(txn, registration_token)
            if session is not None:
                await self._add_session(txn, user_id, session, now)
        return True

    async def upgrade_guest(
        self,
        user_id: str,
        password_hash: str,
        *,
        now: int,
        session: NewSession | None,
        registration_token: str | None,
        uia_session: str,
    ) -> None:
        """Make a guest account a full one with a password (same user ID), recorded in the
        registration's UIA session like a new account."""
        async with self.db.transaction() as txn:
            await self._claim_uia_session(txn, uia_session, user_id)
            upgraded = await txn.execute(
                "UPDATE users SET is_guest = 0, password_hash = ? WHERE user_id = ? AND is_guest = 1 AND deactivated = 0",
                password_hash, user_id,
            )
            if not upgraded:
                raise MatrixError("M_USER_IN_USE", "That account is not a guest account")
            await self._count_registration_token(txn, registration_token)
            if session is not None:
                await self._add_session(txn, user_id, session, now)

    @staticmethod
    async def _count_registration_token(txn: Transaction, token: str | None) -> None:
        if token is not None:
            await txn.execute("UPDATE registration_tokens SET completed = completed + 1 WHERE token = ?", token)

    @staticmethod
    async def _claim_uia_session(txn: Transaction, session_id: str, user_id: str) -> None:
        claimed = await txn.execute(
            "UPDATE uia_sessions SET registered_user_id = ? WHERE session_id = ? AND registered_user_id IS NULL",
            user_id, session_id,
        )
        if not claimed:
            registered = await txn.fetchval("SELECT registered_user_id FROM uia_sessions WHERE session_id = ?", session_id)
            if registered is None:  # the session expired in the meantime
                raise MatrixError("M_UNKNOWN", "Unknown or expired authentication session")
            raise UiaSessionUsed(registered)

    async def set_password_hash(self, user_id: str, password_hash: str, *, keep_device: str | None, logout_devices: bool) -> None:
        async with self.db.transaction() as txn:
            await txn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", password_hash, user_id)
            if logout_devices:
                await self._delete_devices_except(txn, user_id, keep_device)

    async def deactivate(self, user_id: str) -> bool:
        """Mark the account deactivated and remove its devices and tokens; False if unknown."""
        async with self.db.transaction() as txn:
            changed = await txn.execute(
                "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?", user_id
            )
            if not changed:
                return False
            await self._delete_devices_except(txn, user_id, None)
            await txn.execute("DELETE FROM login_tokens WHERE user_id = ?", user_id)
            await txn.execute("UPDATE profiles SET displayname = NULL, avatar_url = NULL WHERE user_id = ?", user_id)
        return True

    async def set_moderation(self, user_id: str, flag: str, on: bool) -> bool:
        """Lock or suspend (`flag` is `locked` or `suspended`) an account that is not
        deactivated, or lift it; False if there is no such account."""
        if flag not in ("locked", "suspended"):
            raise ValueError(flag)
        return bool(await self.db.execute(
            f"UPDATE users SET {flag} = ? WHERE user_id = ? AND deactivated = 0", int(on), user_id
        ))

    async def guests_among(self, user_ids: list[str]) -> list[str]:
        """The guest accounts among `user_ids` (one query)."""
        if not user_ids:
            return []
        condition, ids = any_of(self.db, user_ids)
        rows = await self.db.fetchall(f"SELECT user_id FROM users WHERE is_guest = 1 AND user_id {condition}", ids)
        return [row[0] for row in rows]

    async def get_profile(self, user_id: str) -> tuple[str | None, str | None] | None:
        """(displayname, avatar_url) of a local user, or None if there is no such user."""
        row = await self.db.fetchone("SELECT displayname, avatar_url FROM profiles WHERE user_id = ?", user_id)
        return (row[0], row[1]) if row else None

    # -- devices and access tokens -------------------------------------------------------

    async def add_session(self, user_id: str, session: NewSession, now: int) -> list[str]:
        """Record a login; a reused device keeps its name (the login's initial display name is
        for a new device only) but loses its old tokens.

        Returns the hashes of the access tokens it revoked, so caches can forget them.
        """
        async with self.db.transaction() as txn:
            return await self._add_session(txn, user_id, session, now)

    async def _add_session(self, txn: Transaction, user_id: str, session: NewSession, now: int) -> list[str]:
        revoked = [
            row[0]
            for row in await txn.fetchall(
                "SELECT token_hash FROM access_tokens WHERE user_id = ? AND device_id = ?", user_id, session.device_id
            )
        ]
        await txn.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", user_id, session.device_id)
        await txn.execute("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", user_id, session.device_id)
        await txn.execute(
            "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts, last_seen_user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET "
            "last_seen_ip = excluded.last_seen_ip, last_seen_ts = excluded.last_seen_ts, "
            "last_seen_user_agent = excluded.last_seen_user_agent",
            user_id, session.device_id, session.display_name, session.ip, now, session.user_agent,
        )
        await self._insert_tokens(txn, user_id, session.device_id, session, now)
        return revoked

    async def _insert_tokens(self, txn: Transaction, user_id: str, device_id: str, session: NewSession, now: int) -> None:
        if session.refresh_token_hash is not None:
            await txn.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
                session.refresh_token_hash, user_id, device_id, now,
            )
        await txn.execute(
            "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_hash) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            session.access_token_hash, user_id, device_id, now, session.expires_ts, session.refresh_token_hash,
        )

    async def lookup_access_token(self, token_hash: str) -> TokenInfo | None:
        row = await self.db.fetchone(_TOKEN_QUERY + "WHERE t.token_hash = ?", token_hash)
        if row is None:
            return None
        return _token_info(row[1:])

    async def lookup_access_tokens(self, token_hashes: list[str]) -> dict[str, TokenInfo]:
        """Many tokens at once, in one statement: those that exist, by hash."""
        condition, hashes = any_of(self.db, token_hashes)
        rows = await self.db.fetchall(_TOKEN_QUERY + f"WHERE t.token_hash {condition}", hashes)
        return {row[0]: _token_info(row[1:]) for row in rows}

    async def rotate_refresh_token(self, old_hash: str, new_session: NewSession, now: int) -> tuple[str, str] | None:
        """Swap a refresh token (and the access tokens it issued) for new ones.

        Returns (user_id, revoked access token hash or '') or None if the token is unknown.
        A locked account gets no new token: M_USER_LOCKED, the old ones kept.
        """
        async with self.db.transaction() as txn:
            row = await txn.fetchone(
                "SELECT r.user_id, r.device_id, u.locked FROM refresh_tokens r JOIN users u ON u.user_id = r.user_id "
                "WHERE r.token_hash = ?", old_hash,
            )
            if row is None:
                return None
            user_id, device_id = row[0], row[1]
            if row[2]:
                raise MatrixError("M_USER_LOCKED", "This account has been locked", soft_logout=True)
            old_access = await txn.fetchval("SELECT token_hash FROM access_tokens WHERE refresh_token_hash = ?", old_hash)
            await txn.execute("DELETE FROM access_tokens WHERE refresh_token_hash = ?", old_hash)
            await txn.execute("DELETE FROM refresh_tokens WHERE token_hash = ?", old_hash)
            await self._insert_tokens(txn, user_id, device_id, new_session, now)
            return user_id, old_access or ""

    async def list_devices(self, user_id: str) -> list[tuple[Any, ...]]:
        return await self.db.fetchall(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? ORDER BY device_id", user_id
        )

    async def get_device(self, user_id: str, device_id: str) -> tuple[Any, ...] | None:
        return await self.db.fetchone(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?", user_id, device_id
        )

    async def set_device_name(self, user_id: str, device_id: str, name: str | None) -> bool:
        return bool(
            await self.db.execute(
                "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?", name, user_id, device_id
            )
        )

    async def touch_device(self, user_id: str, device_id: str, ip: str | None, user_agent: str | None, now: int) -> None:
        await self.db.execute(
            "UPDATE devices SET last_seen_ip = ?, last_seen_ts = ?, last_seen_user_agent = ? "
            "WHERE user_id = ? AND device_id = ?",
            ip, now, user_agent, user_id, device_id,
        )

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> list[str]:
        """Delete devices and their tokens; returns the revoked access token hashes."""
        async with self.db.transaction() as txn:
            revoked: list[str] = []
            for device_id in device_ids:
                revoked += await self._delete_device(txn, user_id, device_id)
            return revoked

    async def _delete_device(self, txn: Transaction, user_id: str, device_id: str) -> list[str]:
        rows = await txn.fetchall(
            "SELECT token_hash FROM access_tokens WHERE user_id = ? AND device_id = ?", user_id, device_id
        )
        await txn.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", user_id, device_id)
        await txn.execute("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", user_id, device_id)
        await txn.execute("DELETE FROM devices WHERE user_id = ? AND device_id = ?", user_id, device_id)
        return [row[0] for row in rows]

    async def _delete_devices_except(self, txn: Transaction, user_id: str, keep_device: str | None) -> None:
        rows = await txn.fetchall("SELECT device_id FROM devices WHERE user_id = ?", user_id)
        for (device_id,) in rows:
            if device_id != keep_device:
                await self._delete_device(txn, user_id, device_id)

    # -- login tokens -------------------------------------------------------------------

    async def add_login_token(self, token_hash: str, user_id: str, expires_ts: int) -> None:
        await self.db.execute(
            "INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)", token_hash, user_id, expires_ts
        )

    async def consume_login_token(self, token_hash: str, now: int) -> str | None:
        """Use a login token once; returns its user if it was valid."""
        async with self.db.transaction() as txn:
            row = await txn.fetchone("SELECT user_id, expires_ts FROM login_tokens WHERE token_hash = ?", token_hash)
            await txn.execute("DELETE FROM login_tokens WHERE token_hash = ? OR expires_ts < ?", token_hash, now)
        if row is None or row[1] < now:
            return None
        return row[0]

    # -- registration tokens ------------------------------------------------------------

    async def create_registration_token(self, token: str, uses_allowed: int | None, expiry_ts: int | None) -> bool:
        return bool(
            await self.db.execute(
                "INSERT INTO registration_tokens (token, uses_allowed, completed, expiry_ts) VALUES (?, ?, 0, ?) "
                "ON CONFLICT (token) DO NOTHING",
                token, uses_allowed, expiry_ts,
            )
        )

    async def registration_token_usable(self, token: str, now: int) -> bool:
        row = await self.db.fetchone(
            "SELECT uses_allowed, completed, expiry_ts FROM registration_tokens WHERE token = ?", token
        )
        if row is None:
            return False
        uses_allowed, completed, expiry_ts = row
        return (uses_allowed is None or completed < uses_allowed) and (expiry_ts is None or expiry_ts > now)

    async def list_registration_tokens(self) -> list[tuple[Any, ...]]:
        return await self.db.fetchall(
            "SELECT token, uses_allowed, completed, expiry_ts FROM registration_tokens ORDER BY token"
        )

    # -- user-interactive auth sessions -------------------------------------------------

    async def create_uia_session(self, session_id: str, user_id: str | None, operation: str, request_key: str,
                                 now: int, *, expired_before: int) -> None:
        """A new session; sessions created before `expired_before` are dropped on the way."""
        async with self.db.transaction() as txn:
            await txn.execute("DELETE FROM uia_sessions WHERE created_ts < ?", expired_before)
            await txn.execute(
                "INSERT INTO uia_sessions (session_id, user_id, operation, request_key, completed, created_ts) "
                "VALUES (?, ?, ?, ?, '{}', ?)",
                session_id, user_id, operation, request_key, now,
            )

    async def get_uia_session(self, session_id: str) -> tuple[Any, ...] | None:
        """(user_id, operation, request_key, completed, created_ts, registered_user_id)."""
        return await self.db.fetchone(
            "SELECT user_id, operation, request_key, completed, created_ts, registered_user_id FROM uia_sessions "
            "WHERE session_id = ?", session_id,
        )

    async def set_uia_completed(self, session_id: str, completed_json: str) -> None:
        await self.db.execute("UPDATE uia_sessions SET completed = ? WHERE session_id = ?", completed_json, session_id)


    # -- OpenID tokens ---------------------------------------------------------------------

    async def add_openid_token(self, token_hash: str, user_id: str, expires_ts: int, now: int) -> None:
        """Store a token; expired ones are dropped on the way."""
        async with self.db.transaction() as txn:
            await txn.execute("DELETE FROM openid_tokens WHERE expires_ts <= ?", now)
            await txn.execute(
                "INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)", token_hash, user_id, expires_ts
            )

    async def openid_token_owner(self, token_hash: str, now: int) -> str | None:
        """The user of an unexpired OpenID token whose account is active and not locked."""
        return await self.db.fetchval(
            "SELECT o.user_id FROM openid_tokens o JOIN users u ON u.user_id = o.user_id "
            "WHERE o.token_hash = ? AND o.expires_ts > ? AND u.deactivated = 0 AND u.locked = 0",
            token_hash, now,
        )
