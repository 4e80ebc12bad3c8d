"""Homeserver addresses: validation, normalisation, .well-known discovery."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession, web
from hypothesis import given
from hypothesis import strategies as st

from granolin import Client, HomeserverError, parse_homeserver, parse_well_known
from granolin.homeserver import Homeserver, resolve_homeserver
from scripted_server import ScriptedHomeserver


@pytest.mark.parametrize(
    ("given", "ssl", "url", "discover"),
    [
        ("matrix.org", True, "https://matrix.org", True),
        ("Matrix.ORG.", True, "https://matrix.org", True),
        ("localhost:8008", False, "http://localhost:8008", True),
        ("  example.com/ ", True, "https://example.com", True),
        ("127.0.0.1:8448", True, "https://127.0.0.1:8448", True),
        ("[::1]:8008", False, "http://[::1]:8008", True),
        ("https://matrix.example.org/", False, "https://matrix.example.org", False),
        ("HTTP://Example.org:8008", True, "http://example.org:8008", False),
        ("https://example.org/prefix/", True, "https://example.org/prefix", False),
    ],
)
def test_normalises(given: str, ssl: bool, url: str, discover: bool) -> None:
    assert parse_homeserver(given, ssl=ssl) == Homeserver(url, discover)


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "ftp://example.org", "https://", "example.org/path", "user@example.org", "exa mple.org",
     "example.org:0", "example.org:70000", "example.org:port", "https://example.org?x=1", "https://u:p@example.org",
     "[::1", "[nothex]:80", "-bad-.org", "a..b"],
)
def test_rejects(bad: str) -> None:
    with pytest.raises(HomeserverError):
        parse_homeserver(bad)


def test_client_validates_at_construction(tmp_path) -> None:
    with pytest.raises(HomeserverError):
        Client("not a host", hardcopy=tmp_path / "h.json")
    client = Client("example.org:8448", hardcopy=None)
    assert client.base_url is None and client.homeserver.url == "https://example.org:8448"
    assert Client("http://localhost:8008/", hardcopy=None).base_url == "http://localhost:8008"


@given(st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){0,3}", fullmatch=True), st.integers(1, 65535))
def test_normalisation_is_idempotent(host: str, port: int) -> None:
    first = parse_homeserver(f"{host}:{port}")
    assert parse_homeserver(first.url) == Homeserver(first.url, discover=False)


def test_well_known_parsing() -> None:
    assert parse_well_known(b'{"m.homeserver": {"base_url": "https://hs.example.org/"}}') == "https://hs.example.org"
    for bad in (b"not json", b"[]", b"{}", b'{"m.homeserver": {}}', b'{"m.homeserver": {"base_url": "hs.example.org"}}',
                b'{"m.homeserver": {"base_url": "gopher://x"}}'):
        with pytest.raises(HomeserverError):
            parse_well_known(bad)


async def test_discovery_follows_well_known_and_checks_versions(scripted: ScriptedHomeserver) -> None:
    async with ScriptedHomeserver() as delegated:
        delegated.script("GET", "/_matrix/client/versions", (200, {"versions": ["v1.11"]}))
        scripted.script("GET", "/.well-known/matrix/client", (200, {"m.homeserver": {"base_url": delegated.url + "/"}}))
        async with ClientSession() as session:
            assert await resolve_homeserver(session, parse_homeserver(f"127.0.0.1:{scripted.port}", ssl=False)) == delegated.url


async def test_discovery_rejects_a_delegation_that_is_no_homeserver(scripted: ScriptedHomeserver) -> None:
    scripted.script("GET", "/.well-known/matrix/client", (200, {"m.homeserver": {"base_url": "http://127.0.0.1:9"}}))
    async with ClientSession() as session:
        with pytest.raises(HomeserverError, match="versions"):
            await resolve_homeserver(session, parse_homeserver(f"127.0.0.1:{scripted.port}", ssl=False))


async def test_discovery_falls_back_without_well_known(scripted: ScriptedHomeserver) -> None:
    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    scripted.script("GET", "/.well-known/matrix/client", missing)
    client = Client(f"127.0.0.1:{scripted.port}", ssl=False, hardcopy=None)
    try:
        assert await client.resolve() == scripted.url
    finally:
        await client.close()
