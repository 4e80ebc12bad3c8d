"""`ranvier serve` as a real process: one per database, and a stop that finishes what it
has started."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from tests.conftest import Api, _free_port
from tests.integration.test_cli import RunningServer


@pytest.fixture
def data_flags(tmp_path, database_url) -> list[str]:
    return ["--data-dir", str(tmp_path / "data"), "--database", database_url]


async def test_a_second_server_on_the_same_database_refuses_to_start(data_flags, tmp_path):
    first = RunningServer(data_flags, _free_port())
    try:
        await first.wait_ready()
        second = RunningServer(["--data-dir", str(tmp_path / "other"), *data_flags[2:]], _free_port())
        try:
            code = second.process.wait(timeout=30)
        finally:
            if second.process.poll() is None:  # it did not refuse: stop it, the test has failed
                second.stop()
        message = second.process.stderr.read()
        assert code != 0
        assert "another ranvier process" in message and "one process per database" in message, message
        assert "Traceback" not in message
        async with aiohttp.ClientSession() as session:
            async with session.get(first.base_url + "/_matrix/client/versions") as response:
                assert response.status == 200, "the first server goes on serving"
    finally:
        code, _ = first.stop()
    assert code == 0
    third = RunningServer(data_flags, _free_port())
    try:
        await third.wait_ready()  # the lock went with the first process
    finally:
        third.stop()


async def test_sigterm_finishes_requests_in_flight_and_answers_long_polls(data_flags):
    """SIGTERM during a slow upload and a long poll: no new connection is accepted, the
    long poll is answered at once, the upload is received to its end and answered, and
    the process exits 0."""
    server = RunningServer([*data_flags, "--open-registration"], _free_port())
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            api = Api(session, server.base_url)
            token = (await api.register("alice"))["access_token"]
            status, first = await api.get("/sync", token=token)
            poll = asyncio.create_task(api.get("/sync", params={"since": first["next_batch"], "timeout": "60000"},
                                               token=token))
            began = asyncio.Event()

            async def slow_body():
                for _ in range(20):  # 1.25 MiB over two seconds
                    yield b"x" * 65536
                    began.set()
                    await asyncio.sleep(0.1)

            upload = asyncio.create_task(api.post("/_matrix/media/v3/upload", data=slow_body(), token=token,
                                                  headers={"Content-Type": "application/octet-stream"}))
            await began.wait()
            await asyncio.sleep(0.3)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            status, _ = await asyncio.wait_for(poll, 10)
            assert status == 200 and time.monotonic() - signalled < 2, "the long poll is answered at once"
            async with aiohttp.ClientSession() as newcomer:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await newcomer.get(server.base_url + "/_matrix/client/versions")
            status, body = await asyncio.wait_for(upload, 15)
            assert status == 200 and body["content_uri"].startswith("mxc://"), body
        code = server.process.wait(timeout=15)
    finally:
        if server.process.poll() is None:
            server.stop()
    assert code == 0, server.process.stderr.read()
