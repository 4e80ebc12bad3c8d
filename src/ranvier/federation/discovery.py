"""Where to connect for a server name (server-server API, "Resolving server names").

The steps, in order, for a server name `<host>[:<port>]`:

1. An IP literal is used as it is, on its port or 8448.
2. A host name with an explicit port is used as it is; its addresses are looked up when
   connecting, and its certificate must be valid for the host name.
3. Otherwise `https://<host>/.well-known/matrix/server` is fetched. A valid answer
   delegates to `<delegated>[:<port>]`: an IP literal or an explicit port is used as it is
   (steps 1 and 2); a bare name is looked up as the SRV record
   `_matrix-fed._tcp.<delegated>`, then as the deprecated `_matrix._tcp.<delegated>`, and
   reached on the record's target and port, or on `<delegated>:8448` without a record. The
   Host header and the certificate's name are `<delegated>` in each case.
4. Without a valid well-known answer, the same two SRV lookups for `<host>`: the record's
   target and port, with Host header and certificate name `<host>`.
5. Without a record either: `<host>:8448`.

An SRV answer gives its targets in the order RFC 2782 asks: lowest priority first, and
within one priority drawn at random, each with a chance proportional to its weight; the
client tries the next one when it cannot connect to one. A record whose target is "."
says the service is not offered under that name: it counts as no record.

Answers are cached, at most `CACHE_ENTRIES` names of each kind: a well-known answer for its
Cache-Control max-age (24 hours without one, 48 at most), a failed one for an hour; an SRV
answer for its TTL (1 minute to 48 hours), a name without record for an hour, a failed
lookup for 5 minutes.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

import orjson

from ranvier.events.identifiers import is_valid_server_name
from ranvier.federation.expiring import ExpiringCache

log = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_PATH = "/.well-known/matrix/server"
#: The SRV services looked up, in order: the registered one, then the deprecated one.
SRV_SERVICES = ("_matrix-fed._tcp", "_matrix._tcp")
#: Names remembered by each cache (well-known answers, SRV answers).
CACHE_ENTRIES = 4096
_DEFAULT_CACHE_S = 24 * 3600
_MAX_CACHE_S = 48 * 3600
_FAILURE_CACHE_S = 3600
_MIN_SRV_CACHE_S = 60
_NO_RECORD_CACHE_S = 3600
_SRV_FAILURE_CACHE_S = 300
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")

#: fetch(url) -> (status, cache-control header, body) of a well-known document.
WellKnownFetch = Callable[[str], Awaitable[tuple[int, str | None, bytes]]]


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    #: A domain name (a final dot allowed); "." when the service is not offered.
    target: str


@dataclass(frozen=True)
class SrvAnswer:
    records: tuple[SrvRecord, ...]
    #: Seconds the answer may be kept.
    ttl: int


#: srv_lookup(name) -> the SRV records of `name`, None when it has none; raises when the
#: lookup itself fails (no answer in time, a server failure).
SrvLookup = Callable[[str], Awaitable[SrvAnswer | None]]


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
    """The target of a name that needs no lookup: an IP literal or an explicit port."""
    host, port = split_server_name(name)
    if _is_ip(host):
        return Target(host, port or DEFAULT_PORT, name, None)
    if port is not None:
        return Target(host, port, name, host)
    return None


class RandomSource(Protocol):
    """What the SRV order draws from (`random.Random` is one)."""

    def randint(self, a: int, b: int) -> int: ...


def order_srv_records(records: tuple[SrvRecord, ...], rng: RandomSource) -> list[SrvRecord]:
    """The records in the order to try them (RFC 2782): by priority, lowest first; within
    a priority, one record at a time is drawn among those left: a number from 0 to the sum
    of their weights picks the first record whose running sum of weights reaches it, the
    records of weight 0 standing first (so they have a small chance too). Records whose
    target is "." are left out."""
    usable = [record for record in records if record.target.rstrip(".")]
    ordered: list[SrvRecord] = []
    for priority in sorted({record.priority for record in usable}):
        left = sorted((record for record in usable if record.priority == priority), key=lambda r: r.weight)
        while left:
            draw = rng.randint(0, sum(record.weight for record in left))
            running = 0
            for index, record in enumerate(left):
                running += record.weight
                if running >= draw:
                    break
            ordered.append(left.pop(index))
    return ordered


class ServerResolver:
    """Resolves server names into connection targets; `fetch` gets a well-known document,
    `srv_lookup` asks DNS for SRV records."""

    def __init__(self, fetch: WellKnownFetch, srv_lookup: SrvLookup, *, clock: Callable[[], float] = time.monotonic,
                 rng: RandomSource | None = None) -> None:
        self._fetch = fetch
        self._srv_lookup = srv_lookup
        self._rng = rng or random.Random()
        self._well_known_cache: ExpiringCache[str, str | None] = ExpiringCache(CACHE_ENTRIES, clock)
        self._srv_cache: ExpiringCache[str, tuple[SrvRecord, ...]] = ExpiringCache(CACHE_ENTRIES, clock)

    async def resolve(self, server_name: str) -> list[Target]:
        """The targets for `server_name`, in the order to try them (several only when an
        SRV answer has several records)."""
        direct = _direct(server_name)
        if direct is not None:
            return [direct]
        delegated = await self._well_known(server_name)
        if delegated is not None:
            direct = _direct(delegated)
            if direct is not None:
                return [direct]
        name = delegated or server_name
        return await self._srv_targets(name) or [Target(name, DEFAULT_PORT, name, name)]

    async def _srv_targets(self, name: str) -> list[Target]:
        """The targets the first SRV service with a usable record gives; Host header and
        certificate name stay `name`."""
        for service in SRV_SERVICES:
            records = order_srv_records(await self._srv(f"{service}.{name}"), self._rng)
            if records:
                return [Target(record.target.rstrip("."), record.port, name, name) for record in records]
        return []

    async def _srv(self, srv_name: str) -> tuple[SrvRecord, ...]:
        """The SRV records of `srv_name` (none when it has none or the lookup failed)."""
        cached = self._srv_cache.get(srv_name)
        if cached is not None:
            return cached[0]
        try:
            answer = await self._srv_lookup(srv_name)
        except Exception as exc:  # a failed lookup counts as no record, asked again after a while
            log.info("SRV lookup of %s failed: %s", srv_name, exc)
            records, lifetime = (), _SRV_FAILURE_CACHE_S
        else:
            if answer is None:
                records, lifetime = (), _NO_RECORD_CACHE_S
            else:
                records, lifetime = answer.records, min(max(answer.ttl, _MIN_SRV_CACHE_S), _MAX_CACHE_S)
        self._srv_cache.put(srv_name, records, lifetime)
        return records

    async def _well_known(self, host: str) -> str | None:
        """The `host[:port]` that `host` delegates to, or None."""
        cached = self._well_known_cache.get(host)
        if cached is not None:
            return cached[0]
        delegated, lifetime = await self._fetch_well_known(host)
        self._well_known_cache.put(host, delegated, lifetime)
        return delegated

    async def _fetch_well_known(self, host: str) -> tuple[str | None, float]:
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
