"""HTTP to the homeserver: requests, Matrix errors, rate limits and the session.

``Transport`` holds the session (user ID, device, access and refresh tokens)
and sends every request. It waits out 429 answers (capped), and recovers from
a 401 when the server allows it: an expired token is refreshed with the refresh
token, a soft logout logs in again with the remembered password, on the same
device. A hard logout raises :class:`UnknownTokenError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy

from .backoff import Backoff
from .errors import GranolinError, LoginError, MatrixError, RateLimitedError, UnknownTokenError
from .homeserver import parse_homeserver, resolve_homeserver

log = logging.getLogger("granolin")

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
MEDIA_V3 = "/_matrix/media/v3"
CLIENT_V1_MEDIA = "/_matrix/client/v1/media"


def quote_segment(segment: str) -> str:
    """Percent-encode one path segment (room IDs, event IDs, user IDs...)."""
    return quote(segment, safe="")


def drop_none(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def loads_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object; anything else (or nothing) is an empty dict."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def matrix_error(method: str, path: str, status: int, headers: CIMultiDictProxy[str], body: bytes) -> MatrixError:
    """The typed error of a non-2xx answer."""
    data = loads_object(body)
    errcode = data.get("errcode") if isinstance(data.get("errcode"), str) else None
    error = data.get("error") if isinstance(data.get("error"), str) else None
    retry_after = data.get("retry_after_ms")
    if not isinstance(retry_after, int):
        header = headers.get("Retry-After", "")
        retry_after = int(header) * 1000 if header.isdigit() else None
    cls: type[MatrixError] = MatrixError
    if status == 401 and errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
        cls = UnknownTokenError
    elif status == 429 or errcode == "M_LIMIT_EXCEEDED":
        cls = RateLimitedError
    return cls(status, errcode, error, method=method, path=path, body=data, retry_after_ms=retry_after)


class Transport:
    """The session and the requests of one client."""

    rate_limit_retries = 5
    """How many times a request answered 429 is retried before the error is raised."""
    max_rate_limit_wait = 60.0
    """The longest wait (seconds) for one 429, whatever the server asks."""

    def __init__(self, homeserver: str, *, ssl: bool = True, backoff: Backoff = Backoff(), refresh_tokens: bool = False) -> None:
        self.homeserver = parse_homeserver(homeserver, ssl=ssl)
        self.base_url: str | None = None if self.homeserver.discover else self.homeserver.url
        self.ssl = ssl
        self.backoff = backoff
        self.refresh_tokens = refresh_tokens
        """Ask for a refresh token at login (the access token then expires and is refreshed)."""
        self.user_id: str | None = None
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.device_id: str | None = None
        self._password_login: tuple[str, str] | None = None
        self._auth_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._legacy_media = False

    @property
    def logged_in(self) -> bool:
        """True when the client holds an access token."""
        return self.access_token is not None

    def session_changed(self) -> None:
        """Called after a login, refresh or logout; the client saves its hardcopy here."""

    # --- HTTP -------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120, sock_connect=30))
        return self._session

    async def resolve(self) -> str:
        """The base URL, found through .well-known the first time when needed."""
        if self.base_url is None:
            self.base_url = await resolve_homeserver(self._get_session(), self.homeserver)
        return self.base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[CIMultiDictProxy[str], bytes]:
        """Send one request; return the headers and body of a 2xx answer, else raise MatrixError.

        A 429 answer is retried after the delay the server asks for (at most
        ``max_rate_limit_wait``); a 401 is recovered from when the session can
        be renewed (see :meth:`renew_session`).
        """
        session = self._get_session()
        url = await self.resolve() + path
        if json is not None:
            data = _dumps(json)
        options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        limited = 0
        renewed = False
        while True:
            token = self.access_token if auth else None
            sent_headers = dict(headers or {})
            if token:
                sent_headers["Authorization"] = f"Bearer {token}"
            if json is not None:
                sent_headers["Content-Type"] = "application/json"
            async with session.request(method, url, data=data, params=params, headers=sent_headers, **options) as response:
                body = await response.read()
                log.debug("%s %s -> %d", method, path, response.status)
                if response.status < 300:
                    return response.headers, body
                error = matrix_error(method, path, response.status, response.headers, body)
            if isinstance(error, UnknownTokenError) and token and not renewed and await self.renew_session(error, token):
                renewed = True
                continue
            if not isinstance(error, RateLimitedError) or limited >= self.rate_limit_retries:
                raise error
            limited += 1
            wait = self.rate_limit_wait(error, limited)
            log.info("rate limited on %s %s, retrying in %.1fs", method, path, wait)
            await asyncio.sleep(wait)

    def rate_limit_wait(self, error: RateLimitedError, attempt: int) -> float:
        """Seconds to wait after a 429: what the server asks, else the backoff; never above the cap."""
        wanted = error.retry_after_ms / 1000 if error.retry_after_ms is not None else self.backoff.delay(attempt)
        return max(0.0, min(wanted, self.max_rate_limit_wait))

    async def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call a JSON endpoint (``path`` from ``/_matrix``) and return its JSON answer."""
        _, body = await self.request(method, path, **kwargs)
        try:
            answer = json.loads(body) if body else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise GranolinError(f"{method} {path} did not answer with a JSON object")
        return answer

    async def close(self) -> None:
        """Close the HTTP connections (the client can be used again afterwards)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- session ----------------------------------------------------------------

    async def login(
        self, user: str, password: str, device_name: str = "Granolin", *, device_id: str | None = None, remember: bool = True,
    ) -> str:
        """Log in with a password and keep the access token; returns the user ID.

        ``user`` is a localpart or a full user ID. With ``remember`` the
        password stays in memory (never in the hardcopy) so that a soft logout
        can log in again. Errors never contain the password.
        """
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": device_name,
            **drop_none(device_id=device_id or self.device_id, refresh_token=True if self.refresh_tokens else None),
        }
        try:
            answer = await self.api("POST", f"{CLIENT_V3}/login", json=body, auth=False)
        except MatrixError as exc:
            raise LoginError(
                exc.status,
                exc.errcode,
                f"login as {user} failed" + (f": {exc.error}" if exc.error else ""),
                method=exc.method,
                path=exc.path,
                body=exc.body,
                retry_after_ms=exc.retry_after_ms,
            ) from None
        self.user_id = answer["user_id"]
        self.access_token = answer["access_token"]
        self.refresh_token = answer.get("refresh_token")
        self.device_id = answer.get("device_id") or self.device_id
        if remember:
            self._password_login = (user, password)
        self.session_changed()
        return str(self.user_id)

    async def use_access_token(self, access_token: str, refresh_token: str | None = None) -> str:
        """Start from an access token obtained elsewhere; returns the user ID (asked with whoami)."""
        self.access_token, self.refresh_token = access_token, refresh_token
        answer = await self.whoami()
        self.user_id = answer["user_id"]
        self.device_id = answer.get("device_id") or self.device_id
        self.session_changed()
        return str(self.user_id)

    async def refresh(self) -> None:
        """Swap the refresh token for a new access token (and a new refresh token)."""
        if self.refresh_token is None:
            raise GranolinError("this session has no refresh token")
        answer = await self.api("POST", f"{CLIENT_V3}/refresh", json={"refresh_token": self.refresh_token}, auth=False)
        self.access_token = answer["access_token"]
        self.refresh_token = answer.get("refresh_token", self.refresh_token)
        self.session_changed()

    async def renew_session(self, error: UnknownTokenError, rejected_token: str) -> bool:
        """After a 401 on ``rejected_token``: get a working token if the server allows it.

        Tried in order: the refresh token, then (on a soft logout only) the
        remembered password, on the same device so transaction IDs keep
        deduplicating. Returns False when neither applies: a hard logout.
        """
        async with self._auth_lock:
            if self.access_token != rejected_token:
                return self.access_token is not None  # another request renewed it meanwhile
            if self.refresh_token is not None:
                try:
                    await self.refresh()
                    log.info("the access token of %s expired; refreshed it", self.user_id)
                    return True
                except (MatrixError, aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("refreshing the access token of %s failed: %s", self.user_id, exc)
                    self.refresh_token = None
            if error.soft_logout and self._password_login is not None:
                user, password = self._password_login
                await self.login(user, password, device_id=self.device_id)
                log.info("soft logout of %s: logged in again on device %s", self.user_id, self.device_id)
                return True
            return False

    async def logout(self) -> None:
        """Invalidate the access token on the server and forget it."""
        await self.api("POST", f"{CLIENT_V3}/logout", json={})
        self.access_token = self.refresh_token = None
        self._password_login = None
        self.session_changed()

    async def whoami(self) -> dict[str, Any]:
        """The user (and device) the access token belongs to."""
        return await self.api("GET", f"{CLIENT_V3}/account/whoami")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
