"""Slow, greedy and vanishing clients: bounded header and body reads, a cap on connections
per address, the open-files limit raised at start, and disconnects logged as such."""

from __future__ import annotations

import asyncio
import logging
import resource
import time

import aiohttp
import pytest

from ranvier.server import Homeserver
from tests.conftest import Api, test_config

GREEDY_ADDRESS = "127.0.0.2"  # the whole of 127.0.0.0/8 reaches a server on 127.0.0.1
HALF_OPEN = 1100


@pytest.fixture
async def guarded(tmp_path, database_url, caplog):
    """A server with short read timeouts and a small cap per address, started with the
    open-files limit at the usual default (1,024) as a fresh login shell has it."""
    caplog.set_level(logging.INFO)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    config = test_config(tmp_path / "data", database_url,
                         limits={"request_header_timeout_ms": 2000, "request_body_timeout_ms": 1000,
                                 "max_connections_per_address": 100},
                         logging={"level": "info", "access_log": True})
    hs = Homeserver(config)
    try:
        await hs.start()
        yield hs
    finally:
        await hs.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection that sends part of a request's headers and then nothing."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(GREEDY_ADDRESS, 0))
    except OSError:
        return None
    writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: slow\r\n")
    return reader, writer


async def test_half_open_connections_do_not_take_the_server_down(guarded, caplog):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard, "the server raises its soft limit at start"
    assert any("open files" in r.getMessage() and str(hard) in r.getMessage() for r in caplog.get_records("setup"))
    port = guarded.ports[0]
    url = guarded.base_url + "/_matrix/client/versions"
    greedy = []
    try:
        async with aiohttp.ClientSession() as session:
            async def normal_request() -> int:
                async with session.get(url) as response:
                    return response.status

            for batch in range(0, HALF_OPEN, 100):
                greedy += await asyncio.gather(*(_half_open(port) for _ in range(100)))
                assert await normal_request() == 200, f"after {batch + 100} half-open connections"
            opened = time.monotonic()  # the last of them: its header timeout (2 s) runs from here
            await asyncio.sleep(0.2)
            admitted = [c for c in greedy if c is not None and not c[0].at_eof()]
            assert len(admitted) <= 100, "connections past the cap are closed at once"
            cap_lines = [r.getMessage() for r in caplog.records
                         if GREEDY_ADDRESS in r.getMessage() and "max_connections_per_address" in r.getMessage()]
            assert len(cap_lines) == 1, cap_lines  # once per address and interval, not per connection
            while time.monotonic() - opened < 2.5:
                assert await normal_request() == 200
                await asyncio.sleep(0.2)
            reads = [asyncio.wait_for(c[0].read(), 5) for c in greedy if c is not None]
            assert all(data == b"" for data in await asyncio.gather(*reads)), \
                "the header timeout closed every half-open connection"
            connector = aiohttp.TCPConnector(local_addr=(GREEDY_ADDRESS, 0))
            async with aiohttp.ClientSession(connector=connector) as freed:
                async with freed.get(url) as response:
                    assert response.status == 200, "the address may connect again"
    finally:
        for connection in greedy:
            if connection is not None:
                connection[1].close()


async def test_a_body_that_stops_arriving_is_abandoned(guarded):
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.ports[0])
    try:
        writer.write(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"type\": ")
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"M_UNKNOWN" in answer
        assert 0.9 < time.monotonic() - started < 5
    finally:
        writer.close()


async def _vanishing_client(port: int, head: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()


async def test_a_client_that_goes_away_is_a_disconnect_not_an_error(guarded, caplog):
    async with aiohttp.ClientSession() as session:
        token = (await Api(session, guarded.base_url).register("alice"))["access_token"]
    port = guarded.ports[0]
    await _vanishing_client(port, b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"type\":")
    await _vanishing_client(port, b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\n"
                                  b"Authorization: Bearer " + token.encode() + b"\r\n"
                                  b"Content-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    await asyncio.sleep(0.5)
    access = [r.getMessage() for r in caplog.records if r.name == "ranvier.access"]
    assert sum('"POST /_matrix/client/v3/login" 499' in line for line in access) == 1, access
    assert sum('"POST /_matrix/media/v3/upload" 499' in line for line in access) == 1, access
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]
