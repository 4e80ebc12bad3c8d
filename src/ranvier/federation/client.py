"""Requests to other servers: found through `discovery`, signed with X-Matrix, over HTTPS,
only to the addresses `outbound.allowed_networks` permits besides public ones."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from yarl import URL

from ranvier.events.signing import SigningKey
from ranvier.federation.discovery import ServerResolver, Target
from ranvier.federation.request_auth import authorization_header
from ranvier.outbound.addresses import BlockedAddress, Network, checked_session, literal_allowed

log = logging.getLogger(__name__)

USER_AGENT = "ranvier"
#: The largest answer read from another server (a big room's send_join or state).
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
_WELL_KNOWN_BYTES = 64 * 1024


class Unreachable(Exception):
    """The server could not be reached (address refused, connection failed, timed out)."""


class FederationError(Exception):
    """The server answered with an error status."""

    def __init__(self, destination: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        super().__init__(f"{destination} answered {status}: {self.body.get('errcode', '')} {self.body.get('error', '')}")

    @property
    def errcode(self) -> str | None:
        errcode = self.body.get("errcode")
        return errcode if isinstance(errcode, str) else None


def path_segment(value: str) -> str:
    """A path parameter, percent-encoded entirely (room IDs, event IDs, user IDs ...)."""
    return quote(value, safe="")


class FederationClient:
    def __init__(self, server_name: str, signing_key: SigningKey, *, allowed: list[Network], verify_tls: bool,
                 timeout_s: float) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.allowed = allowed
        self.verify_tls = verify_tls
        self.timeout_s = timeout_s
        self.resolver = ServerResolver(self._fetch_well_known)
        self._session: aiohttp.ClientSession | None = None
        #: destination -> the lock its transactions are sent under, one at a time.
        self.transaction_locks: dict[str, asyncio.Lock] = {}

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client, limited to the allowed addresses (made on first use)."""
        if self._session is None:
            self._session = checked_session(self.allowed, timeout_s=self.timeout_s, user_agent=USER_AGENT,
                                            verify_tls=self.verify_tls)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch_well_known(self, url: str) -> tuple[int, str | None, bytes]:
        if not literal_allowed(URL(url), self.allowed):
            raise BlockedAddress(url)
        async with self.session().get(url, allow_redirects=True, max_redirects=5) as response:
            body = await _read_limited(response, _WELL_KNOWN_BYTES)
            return response.status, response.headers.get("Cache-Control"), body

    async def request(self, method: str, destination: str, path: str, *, query: dict[str, Any] | None = None,
                      body: Any | None = None, timeout_s: float | None = None) -> Any:
        """A signed JSON request; the parsed answer, FederationError for an error status,
        Unreachable when no answer came."""
        status, _, raw = await self.request_raw(method, destination, path, query=query, body=body,
                                                timeout_s=timeout_s)
        try:
            parsed = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = None
        if status >= 400:
            raise FederationError(destination, status, parsed)
        if parsed is None:
            raise FederationError(destination, 502, {"error": "the answer is not JSON"})
        return parsed

    async def request_raw(self, method: str, destination: str, path: str, *, query: dict[str, Any] | None = None,
                          body: Any | None = None, timeout_s: float | None = None,
                          limit: int = MAX_RESPONSE_BYTES) -> tuple[int, dict[str, str], bytes]:
        """A signed request; (status, headers, body bytes). `path` has its parameters
        percent-encoded already (`path_segment`)."""
        if destination == self.server_name:
            raise Unreachable("a server does not call itself")
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        headers = {"Authorization": authorization_header(self.server_name, destination, self.signing_key, method,
                                                         uri, body)}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            target = await self.resolver.resolve(destination)
            url = URL(f"https://{target.url_host}:{target.port}{uri}", encoded=True)
            if not literal_allowed(url, self.allowed):
                raise BlockedAddress(f"{destination} is at an address that may not be reached")
            headers["Host"] = target.host_header
            timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
            async with self.session().request(method, url, data=data, headers=headers, timeout=timeout,
                                              allow_redirects=False, **_tls_name(target)) as response:
                return response.status, dict(response.headers), await _read_limited(response, limit)
        except (aiohttp.ClientError, asyncio.TimeoutError, BlockedAddress, OSError, ValueError) as exc:
            raise Unreachable(f"{destination}: {exc or exc.__class__.__name__}") from None

    async def get(self, destination: str, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", destination, path, **kwargs)

    async def put(self, destination: str, path: str, body: Any, **kwargs: Any) -> Any:
        return await self.request("PUT", destination, path, body=body, **kwargs)

    async def post(self, destination: str, path: str, body: Any, **kwargs: Any) -> Any:
        return await self.request("POST", destination, path, body=body, **kwargs)


def _tls_name(target: Target) -> dict[str, Any]:
    """The certificate name to check, when it is not the URL's host (never for an IP)."""
    return {"server_hostname": target.tls_name} if target.tls_name and target.tls_name != target.host else {}


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ValueError(f"the answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
