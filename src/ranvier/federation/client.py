"""Requests to other servers: found through `discovery` (DNS through `nameservers`), signed
with X-Matrix, over HTTPS, only to the addresses `outbound.allowed_networks` permits besides
public ones. When an SRV answer gives several targets, one that cannot be connected to (or
is at an address that may not be reached) is passed over for the next."""

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
from ranvier.federation.nameservers import NameserverResolver, Nameservers
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
                 timeout_s: float, nameservers: list[tuple[str, int]] | None = None) -> None:
        """`nameservers`: the (address, port) of the DNS servers asked for every name;
        none: the system's."""
        self.server_name = server_name
        self.signing_key = signing_key
        self.allowed = allowed
        self.verify_tls = verify_tls
        self.timeout_s = timeout_s
        self.dns = Nameservers(nameservers or [])
        self.resolver = ServerResolver(self._fetch_well_known, self.dns.srv)
        self._session: aiohttp.ClientSession | None = None
        #: destination -> the lock its transactions are sent under, one at a time.
        self.transaction_locks: dict[str, asyncio.Lock] = {}

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client, limited to the allowed addresses (made on first use)."""
        if self._session is None:
            self._session = checked_session(self.allowed, timeout_s=self.timeout_s, user_agent=USER_AGENT,
                                            verify_tls=self.verify_tls,
                                            resolver=NameserverResolver(self.dns) if self.dns.configured else None)
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
                      body: Any | None = None, timeout_s: float | None = None, limit: int = MAX_RESPONSE_BYTES) -> Any:
        """A signed JSON request; the parsed answer, FederationError for an error status,
        Unreachable when no answer came (or one larger than `limit` bytes)."""
        status, _, raw = await self.request_raw(method, destination, path, query=query, body=body,
                                                timeout_s=timeout_s, limit=limit)
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
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            *others, last = await self.resolver.resolve(destination)
            for target in others:
                try:
                    return await self._send(method, destination, target, uri, headers, data, timeout, limit)
                except (aiohttp.ClientConnectorError, BlockedAddress) as exc:  # nothing was sent: the next one
                    log.info("%s: %s:%d cannot be reached (%s), trying the next target", destination, target.host,
                             target.port, _reason(exc))
            return await self._send(method, destination, last, uri, headers, data, timeout, limit)
        except (aiohttp.ClientError, asyncio.TimeoutError, BlockedAddress, OSError, ValueError) as exc:
            raise Unreachable(f"{destination}: {_reason(exc)}") from None

    async def _send(self, method: str, destination: str, target: Target, uri: str, headers: dict[str, str],
                    data: bytes | None, timeout: aiohttp.ClientTimeout, limit: int) -> tuple[int, dict[str, str], bytes]:
        """One request to one target: (status, headers, body bytes)."""
        url = URL(f"https://{target.url_host}:{target.port}{uri}", encoded=True)
        if not literal_allowed(url, self.allowed):
            raise BlockedAddress(f"{destination} is at an address that may not be reached")
        async with self.session().request(method, url, data=data, headers={**headers, "Host": target.host_header},
                                          timeout=timeout, allow_redirects=False, **_tls_name(target)) as response:
            return response.status, dict(response.headers), await _read_limited(response, limit)

    async def get(self, destination: str, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", destination, path, **kwargs)

    async def put(self, destination: str, path: str, body: Any, **kwargs: Any) -> Any:
        return await self.request("PUT", destination, path, body=body, **kwargs)

    async def post(self, destination: str, path: str, body: Any, **kwargs: Any) -> Any:
        return await self.request("POST", destination, path, body=body, **kwargs)


def _reason(exc: Exception) -> str:
    """Why a request failed, in a few words (an address refused is named as such)."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress):
        return str(exc.os_error)
    return str(exc) or exc.__class__.__name__


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
