"""Access, refresh and login tokens: made random, stored only as SHA-256 hashes.

Authentication is on every request, so validated tokens are cached in memory for a few
seconds; this process forgets a token at once when it revokes it, and revocations made
by another process (the CLI, a second worker) take effect within that time. A token in
use is checked again before its time runs out, together with the others due, in one
query per few hundred tokens: a thousand long-pollers cost a few queries every few
seconds rather than one each.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections import OrderedDict

from ranvier.errors import MatrixError
from ranvier.metrics import TOKEN_CACHE_HITS, TOKEN_CACHE_MISSES
from ranvier.requester import Requester
from ranvier.users.store import NewSession, TokenInfo, UserStore

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
_CACHE_SIZE = 50_000
#: A cached token used past this age is checked again ahead of time, in a batch.
RECHECK_AFTER_SECONDS = CACHE_SECONDS / 2
#: How long the tokens due are gathered before they are checked, and how many per query.
_RECHECK_GATHER_SECONDS = 0.05
_RECHECKED_PER_QUERY = 500
#: last_seen_* is written at most this often per device.
LAST_SEEN_INTERVAL_MS = 60_000


def new_secret(prefix: str) -> str:
    """A token of 256 random bits."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


class Tokens:
    def __init__(self, store: UserStore) -> None:
        self.store = store
        self._cache: OrderedDict[str, tuple[Requester, int | None, float]] = OrderedDict()
        #: (user, device) -> (ip, ms) of the last write of last_seen_*, oldest first; only
        #: those written within LAST_SEEN_INTERVAL_MS are kept.
        self._last_seen: OrderedDict[tuple[str, str], tuple[str | None, int]] = OrderedDict()
        #: Cached tokens in use that are due to be checked again (`_recheck`).
        self._due: set[str] = set()
        self._rechecking: asyncio.Task | None = None
        #: Bumped by every `forget`: a check that raced with one is dropped.
        self._forgotten = 0

    def new_session(self, device_id: str, display_name: str | None, *, refreshable: bool, lifetime_ms: int,
                    ip: str | None = None, user_agent: str | None = None) -> tuple[NewSession, dict]:
        """Fresh tokens for a device: what to store, and what to tell the client."""
        access_token = new_secret("rva_")
        refresh_token = new_secret("rvr_") if refreshable else None
        expires_ts = now_ms() + lifetime_ms if refreshable else None
        session = NewSession(
            device_id, display_name, hash_token(access_token),
            hash_token(refresh_token) if refresh_token else None, expires_ts, ip, user_agent,
        )
        response: dict = {"access_token": access_token, "device_id": device_id}
        if refresh_token:
            response["refresh_token"] = refresh_token
            response["expires_in_ms"] = lifetime_ms
        return session, response

    async def authenticate(self, token: str, ip: str | None = None, user_agent: str | None = None) -> Requester:
        token_hash = hash_token(token)
        now = now_ms()
        cached = self._cache.get(token_hash)
        age = time.monotonic() - cached[2] if cached is not None else CACHE_SECONDS
        if age < CACHE_SECONDS:
            TOKEN_CACHE_HITS.inc()
            requester, expires_ts, _ = cached
            if age >= RECHECK_AFTER_SECONDS:
                self._recheck_soon(token_hash)
        else:
            TOKEN_CACHE_MISSES.inc()
            forgotten = self._forgotten
            checked_at = time.monotonic()
            info = await self.store.lookup_access_token(token_hash)
            if info is None or info.deactivated:
                self._cache.pop(token_hash, None)
                raise MatrixError("M_UNKNOWN_TOKEN", "Unknown access token", soft_logout=False)
            requester = _requester(token_hash, info)
            expires_ts = info.expires_ts
            if forgotten == self._forgotten:
                self._remember(token_hash, (requester, expires_ts, checked_at))
        if expires_ts is not None and expires_ts <= now:
            raise MatrixError("M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True)
        await self._note_last_seen(requester, ip, user_agent, now)
        return requester

    def _recheck_soon(self, token_hash: str) -> None:
        self._due.add(token_hash)
        if self._rechecking is None:
            self._rechecking = asyncio.get_running_loop().create_task(self._recheck())

    async def _recheck(self) -> None:
        """Check the tokens due again, a few hundred per query, and keep each one that is
        still valid as if it had been looked up when its query started (the others go:
        their next use looks them up alone and is refused). Checks that raced with a
        `forget` are dropped, so a token revoked meanwhile is never kept again."""
        due: list[str] = []
        try:
            await asyncio.sleep(_RECHECK_GATHER_SECONDS)
            due = list(self._due)
            for start in range(0, len(due), _RECHECKED_PER_QUERY):
                chunk = due[start:start + _RECHECKED_PER_QUERY]
                forgotten = self._forgotten
                checked_at = time.monotonic()
                found = await self.store.lookup_access_tokens(chunk)
                if forgotten != self._forgotten:
                    continue
                for token_hash in chunk:
                    info = found.get(token_hash)
                    if info is None or info.deactivated:
                        self._cache.pop(token_hash, None)
                    elif token_hash in self._cache:
                        self._remember(token_hash, (_requester(token_hash, info), info.expires_ts, checked_at))
        except Exception:  # each one is looked up alone at its first use past CACHE_SECONDS
            log.warning("checking %d cached access tokens again failed", len(due), exc_info=True)
        finally:
            self._due.difference_update(due)
            self._rechecking = None

    def _remember(self, token_hash: str, entry: tuple[Requester, int | None, float]) -> None:
        """Cache a validation, newest last; those past CACHE_SECONDS (never used again: they
        are looked up afresh) and the oldest beyond _CACHE_SIZE go."""
        self._cache[token_hash] = entry
        self._cache.move_to_end(token_hash)
        stale = entry[2] - CACHE_SECONDS
        while self._cache and (len(self._cache) > _CACHE_SIZE or next(iter(self._cache.values()))[2] <= stale):
            self._cache.popitem(last=False)

    async def _note_last_seen(self, requester: Requester, ip: str | None, user_agent: str | None, now: int) -> None:
        key = (requester.user_id, requester.device_id)
        seen = self._last_seen.get(key)
        if seen is None or seen[0] != ip or now - seen[1] >= LAST_SEEN_INTERVAL_MS:
            self._last_seen[key] = (ip, now)
            self._last_seen.move_to_end(key)
            # a device not seen for the interval is written on its next request anyway
            while next(iter(self._last_seen.values()))[1] <= now - LAST_SEEN_INTERVAL_MS:
                self._last_seen.popitem(last=False)
            await self.store.touch_device(requester.user_id, requester.device_id, ip, user_agent, now)

    def forget(self, token_hashes: list[str]) -> None:
        """Drop revoked tokens from the cache so they stop working at once."""
        self._forgotten += 1
        for token_hash in token_hashes:
            self._cache.pop(token_hash, None)

    def forget_user(self, user_id: str) -> None:
        self._forgotten += 1
        for token_hash in [h for h, (r, _, _) in self._cache.items() if r.user_id == user_id]:
            del self._cache[token_hash]

    async def logout(self, requester: Requester) -> None:
        """Every token belongs to a device: logging out deletes the device."""
        self.forget(await self.store.delete_devices(requester.user_id, [requester.device_id]))
        self.forget([requester.token_hash])

    async def logout_all(self, user_id: str) -> None:
        devices = [row[0] for row in await self.store.list_devices(user_id)]
        self.forget(await self.store.delete_devices(user_id, devices))
        self.forget_user(user_id)

    async def refresh(self, refresh_token: str, lifetime_ms: int) -> dict:
        session, response = self.new_session("", None, refreshable=True, lifetime_ms=lifetime_ms)
        result = await self.store.rotate_refresh_token(hash_token(refresh_token), session, now_ms())
        if result is None:
            raise MatrixError("M_UNKNOWN_TOKEN", "Unknown refresh token", soft_logout=True)
        self.forget([result[1]])
        response.pop("device_id")
        return response

    async def create_login_token(self, user_id: str, lifetime_ms: int) -> dict:
        token = new_secret("rvl_")
        await self.store.add_login_token(hash_token(token), user_id, now_ms() + lifetime_ms)
        return {"login_token": token, "expires_in_ms": lifetime_ms}

    async def consume_login_token(self, token: str) -> str | None:
        return await self.store.consume_login_token(hash_token(token), now_ms())

    async def create_openid_token(self, user_id: str, lifetime_ms: int) -> str:
        """A token that only proves who `user_id` is, to the federation userinfo endpoint."""
        token = new_secret("rvo_")
        now = now_ms()
        await self.store.add_openid_token(hash_token(token), user_id, now + lifetime_ms, now)
        return token

    async def openid_token_owner(self, token: str) -> str | None:
        return await self.store.openid_token_owner(hash_token(token), now_ms())


def _requester(token_hash: str, info: TokenInfo) -> Requester:
    return Requester(info.user_id, info.device_id, info.is_guest, token_hash, info.locked, info.suspended)
