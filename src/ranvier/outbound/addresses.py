"""Which addresses the server may connect to on a user's behalf (push gateways, URL
previews, later other servers): public unicast addresses, plus the ranges an administrator
allows. The resolver that checks is the one the connection uses, so a name cannot resolve
to a public address for the check and a private one for the connection.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(OSError):
    """The host resolves only to addresses that may not be reached."""


def parse_networks(ranges: list[str]) -> list[Network]:
    return [ipaddress.ip_network(network, strict=False) for network in ranges]


def address_allowed(address: IPAddress, allowed: list[Network]) -> bool:
    """Public unicast addresses, or any address in an allowed range."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


def literal_allowed(url: URL, allowed: list[Network]) -> bool:
    """False for a URL whose host is a literal IP that may not be reached; literal IPs never
    reach the resolver, so they are checked here. Host names are checked when resolved."""
    try:
        address = ipaddress.ip_address(url.raw_host or "")
    except ValueError:
        return True
    return address_allowed(address, allowed)


class CheckingResolver(AbstractResolver):
    """Resolves through `inner` (the system resolver unless given) and drops every address
    that is not allowed."""

    def __init__(self, allowed: list[Network], inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if address_allowed(ipaddress.ip_address(r["host"]), self._allowed)]
        if not kept:
            raise BlockedAddress(f"{host} has no address that may be reached")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def checked_session(allowed: list[Network], *, timeout_s: float, user_agent: str, verify_tls: bool = True,
                    resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """An HTTP client that connects only to allowed addresses (proxies from the environment
    ignored), finding them with `resolver` (the system's unless given); `verify_tls=False`
    accepts any certificate (tests on loopback)."""
    connector = aiohttp.TCPConnector(resolver=CheckingResolver(allowed, resolver), use_dns_cache=False,
                                     ssl=None if verify_tls else False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 trust_env=False, headers={"User-Agent": user_agent})
