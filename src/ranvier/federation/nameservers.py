"""DNS for federation: the SRV records of server names and, when name servers are
configured (`federation.dns_servers`), the A and AAAA records of every host federation
connects to.

Without configured name servers, SRV records are asked of the system's (those of
/etc/resolv.conf) and host addresses come from the system's resolver, as for every other
outbound request. With them, every name federation resolves is asked of them alone.

dnspython is imported at the first lookup, so a server that never federates never loads it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from ranvier.federation.discovery import SrvAnswer, SrvRecord

#: How long one lookup (all its tries and name servers) may take.
LOOKUP_TIMEOUT_S = 5.0
#: DNS answers kept for their TTL, at most this many.
_CACHED_ANSWERS = 1024
#: The record types asked for each address family aiohttp may want (AF_UNSPEC: both).
_ADDRESS_TYPES = {socket.AF_INET: ("A",), socket.AF_INET6: ("AAAA",)}
_BOTH_TYPES = ("AAAA", "A")


class Nameservers:
    """The DNS resolver of federation: `nameservers` are (address, port) pairs; none: the
    system's configuration."""

    def __init__(self, nameservers: list[tuple[str, int]]) -> None:
        self.configured = bool(nameservers)
        self._nameservers = nameservers
        self._resolver: Any = None

    def _dns(self) -> Any:
        """The dnspython resolver, made (and dnspython imported) on first use."""
        if self._resolver is None:
            import dns.asyncresolver
            import dns.nameserver
            import dns.resolver

            resolver = dns.asyncresolver.Resolver(configure=not self.configured)
            if self.configured:
                resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)
                                        for address, port in self._nameservers]
            resolver.lifetime = LOOKUP_TIMEOUT_S
            resolver.cache = dns.resolver.LRUCache(_CACHED_ANSWERS)
            self._resolver = resolver
        return self._resolver

    async def _query(self, name: str, record_type: str) -> Any:
        """The answer for (name, type) as dnspython gives it; None when the name has no such
        record; OSError when the lookup fails."""
        import dns.exception
        import dns.resolver

        try:
            return await self._dns().resolve(name, record_type, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise OSError(f"looking up {record_type} {name} failed: {exc}") from None

    async def srv(self, name: str) -> SrvAnswer | None:
        """The SRV records of `name` (a `SrvLookup`)."""
        answer = await self._query(name, "SRV")
        if answer is None:
            return None
        records = tuple(SrvRecord(rdata.priority, rdata.weight, rdata.port, rdata.target.to_text())
                        for rdata in answer)
        return SrvAnswer(records, max(0, int(answer.expiration - time.time())))

    async def addresses(self, host: str, family: int) -> list[str]:
        """The IP addresses of `host` (CNAMEs followed) for an address family, IPv6 first;
        OSError when it has none."""
        answers = await asyncio.gather(*(self._query(host, kind) for kind in _ADDRESS_TYPES.get(family, _BOTH_TYPES)),
                                       return_exceptions=True)
        found = [rdata.address for answer in answers if answer is not None and not isinstance(answer, BaseException)
                 for rdata in answer]
        if not found:
            failures = [answer for answer in answers if isinstance(answer, BaseException)]
            raise failures[0] if failures else OSError(f"{host} has no address")
        return found


class NameserverResolver(AbstractResolver):
    """aiohttp's resolver over the configured name servers."""

    def __init__(self, nameservers: Nameservers) -> None:
        self._nameservers = nameservers

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self._nameservers.addresses(host, family)
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for address in addresses]

    async def close(self) -> None:
        """Nothing to release: dnspython opens a socket per query."""
