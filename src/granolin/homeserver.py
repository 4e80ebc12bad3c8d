"""Homeserver addresses: validation, normalisation and .well-known discovery.

A homeserver can be given as a full URL (used as is, the scheme decides between
http and https) or as a server name, ``host`` or ``host:port``, in which case the
client looks up ``/.well-known/matrix/client`` on it to find the real base URL
and falls back to the server name itself when there is no such file.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .errors import HomeserverError

_HOSTNAME = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$")
_WELL_KNOWN = "/.well-known/matrix/client"


@dataclass(frozen=True, slots=True)
class Homeserver:
    """A validated homeserver address.

    ``url`` is the base URL to use (without a trailing slash) and ``discover``
    says whether ``.well-known`` should be consulted first because the user gave
    a bare server name rather than a URL.
    """

    url: str
    discover: bool


def _check_host(host: str, original: str) -> str:
    if host.startswith("["):
        if not host.endswith("]"):
            raise HomeserverError(f"invalid homeserver {original!r}: unterminated IPv6 literal")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise HomeserverError(f"invalid homeserver {original!r}: bad IPv6 literal") from None
        return host.lower()
    if not _HOSTNAME.match(host):
        raise HomeserverError(f"invalid homeserver {original!r}: {host!r} is not a host name")
    return host.lower().rstrip(".")


def _split_host_port(netloc: str, original: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HomeserverError(f"invalid homeserver {original!r}")
        port_text = rest[1:] if rest else None
    elif netloc.count(":") == 1:
        host, port_text = netloc.split(":")
    else:
        host, port_text = netloc, None
    if port_text is None:
        return _check_host(host, original), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HomeserverError(f"invalid homeserver {original!r}: bad port {port_text!r}")
    return _check_host(host, original), int(port_text)


def parse_homeserver(value: str, *, ssl: bool = True) -> Homeserver:
    """Validate and normalise what the user passed as homeserver.

    ``ssl`` picks the scheme for a bare server name; a URL keeps its own scheme.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise HomeserverError("the homeserver must be a non-empty host name, host:port or URL")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https"):
            raise HomeserverError(f"invalid homeserver {value!r}: the scheme must be http or https")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise HomeserverError(f"invalid homeserver {value!r}: no query, fragment or credentials allowed")
        if not parts.netloc:
            raise HomeserverError(f"invalid homeserver {value!r}: no host")
        host, port = _split_host_port(parts.netloc, value)
        netloc = host if port is None else f"{host}:{port}"
        return Homeserver(f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}", discover=False)
    name = text.rstrip("/")
    if "/" in name or "?" in name or "#" in name or "@" in name:
        raise HomeserverError(f"invalid homeserver {value!r}: a server name has no path; give a URL instead")
    host, port = _split_host_port(name, value)
    netloc = host if port is None else f"{host}:{port}"
    return Homeserver(f"{'https' if ssl else 'http'}://{netloc}", discover=True)


def parse_well_known(body: bytes) -> str:
    """Extract and validate ``m.homeserver.base_url`` from a .well-known answer.

    Returns the base URL without a trailing slash; raises HomeserverError when the
    file exists but is unusable (the spec's FAIL_PROMPT / FAIL_ERROR cases).
    """
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise HomeserverError(".well-known/matrix/client is not JSON") from None
    if not isinstance(data, dict):
        raise HomeserverError(".well-known/matrix/client is not a JSON object")
    homeserver = data.get("m.homeserver")
    if not isinstance(homeserver, dict) or not isinstance(homeserver.get("base_url"), str):
        raise HomeserverError(".well-known/matrix/client has no m.homeserver.base_url")
    try:
        parsed = parse_homeserver(homeserver["base_url"])
    except HomeserverError as exc:
        raise HomeserverError(f".well-known/matrix/client gives a bad base_url: {exc}") from None
    if parsed.discover:
        raise HomeserverError(".well-known/matrix/client base_url must be a URL with a scheme")
    return parsed.url


async def resolve_homeserver(session: aiohttp.ClientSession, homeserver: Homeserver) -> str:
    """Return the base URL to talk to, following .well-known when asked to.

    A missing file (404) or an unreachable .well-known means "no delegation". A
    delegated URL must answer ``/_matrix/client/versions``, as the spec asks.
    """
    if not homeserver.discover:
        return homeserver.url
    try:
        async with session.get(homeserver.url + _WELL_KNOWN, allow_redirects=True) as response:
            if response.status == 404:
                return homeserver.url
            if response.status != 200:
                raise HomeserverError(f".well-known/matrix/client answered {response.status}")
            base_url = parse_well_known(await response.read())
    except (aiohttp.ClientConnectionError, TimeoutError):
        return homeserver.url
    if base_url == homeserver.url:
        return homeserver.url
    try:
        async with session.get(base_url + "/_matrix/client/versions") as response:
            versions = json.loads(await response.read()) if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        versions = None
    if not isinstance(versions, dict) or not isinstance(versions.get("versions"), list):
        raise HomeserverError(f"{base_url} (from .well-known) does not answer /_matrix/client/versions")
    return base_url
