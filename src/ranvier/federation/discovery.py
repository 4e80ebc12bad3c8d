"""Where to connect for a server name (server-server API, "Resolving server names").

An IP literal is used as it is (port 8448 unless given); a host name with an explicit port
is resolved as it is; otherwise `https://<host>/.well-known/matrix/server` may delegate to
another `host[:port]`, whose own rules then apply. Well-known answers are cached for
their Cache-Control max-age (24 hours by default, 48 at most), failures for an hour. SRV
records are not looked up: a server without well-known delegation is reached on port 8448.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson

from ranvier.events.identifiers import is_valid_server_name

log = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_PATH = "/.well-known/matrix/server"
_DEFAULT_CACHE_S = 24 * 3600
_MAX_CACHE_S = 48 * 3600
_FAILURE_CACHE_S = 3600
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")

#: fetch(url) -> (status, cache-control header, body) of a well-known document.
WellKnownFetch = Callable[[str], Awaitable[tuple[int, str | None, bytes]]]


@dataclass(frozen=True)
class Target:
    """A connection target: address and port, the Host header, and the name the TLS
    certificate must be valid for (SNI; None for an IP address)."""

    host: str
    port: int
    host_header: str
    tls_name: str | None

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """(host without brackets, port or None)."""
    if server_name.startswith("["):
        host, _, rest = server_name[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = server_name.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return server_name, None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _direct(name: str) -> Target | None:
    """The target of a name that needs no well-known lookup: an IP literal or an explicit port."""
    host, port = split_server_name(name)
    if _is_ip(host):
        return Target(host, port or DEFAULT_PORT, name, None)
    if port is not None:
        return Target(host, port, name, host)
    return None


class ServerResolver:
    def __init__(self, fetch: WellKnownFetch) -> None:
        self._fetch = fetch
        self._cache: dict[str, tuple[Target, float]] = {}

    async def resolve(self, server_name: str) -> Target:
        direct = _direct(server_name)
        if direct is not None:
            return direct
        cached = self._cache.get(server_name)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        delegated, lifetime = await self._well_known(server_name)
        if delegated is None:
            target = Target(server_name, DEFAULT_PORT, server_name, server_name)
        else:
            target = _direct(delegated) or Target(delegated, DEFAULT_PORT, delegated, delegated)
        self._cache[server_name] = (target, time.monotonic() + lifetime)
        return target

    async def _well_known(self, host: str) -> tuple[str | None, float]:
        """(the delegated `host[:port]` or None, how long to keep the answer)."""
        try:
            status, cache_control, body = await self._fetch(f"https://{host}{WELL_KNOWN_PATH}")
        except Exception as exc:  # any failure means "no delegation", retried after a while
            log.info("no well-known delegation for %s: %s", host, exc)
            return None, _FAILURE_CACHE_S
        if status != 200:
            return None, _FAILURE_CACHE_S
        try:
            delegated = orjson.loads(body).get("m.server")
        except (ValueError, AttributeError):
            return None, _FAILURE_CACHE_S
        if not isinstance(delegated, str) or not is_valid_server_name(delegated):
            return None, _FAILURE_CACHE_S
        lifetime = _DEFAULT_CACHE_S
        match = _MAX_AGE.search(cache_control or "")
        if match:
            lifetime = min(int(match.group(1)), _MAX_CACHE_S)
        return delegated, lifetime
