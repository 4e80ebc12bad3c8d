"""`ranvier serve` as a real process: one per database, and a stop that finishes what it
has started."""

from __future__ import annotations

import pytest

from tests.conftest import _free_port
from tests.integration.test_cli import RunningServer


@pytest.fixture
def data_flags(tmp_path, database_url) -> list[str]:
    return ["--data-dir", str(tmp_path / "data"), "--database", database_url]


async def test_a_second_server_on_the_same_database_refuses_to_start(data_flags, tmp_path):
    first = RunningServer(data_flags, _free_port())
    try:
        await first.wait_ready()
        second = RunningServer(["--data-dir", str(tmp_path / "other"), *data_flags[2:]], _free_port())
        code = second.process.wait(timeout=30)
        message = second.process.stderr.read()
        assert code != 0
        assert "another ranvier process" in message and "one process per database" in message, message
        assert "Traceback" not in message
        async with __import__("aiohttp").ClientSession() as session:
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
