"""Fixtures of the federation tests: ranvier servers federating on loopback, each with its
own database on the engine under test."""

from __future__ import annotations

import aiohttp
import pytest

from federation_support import Federated, federated_config
from ranvier.server import Homeserver
from tests.conftest import Api, _free_port, new_database_url


@pytest.fixture
async def start_federated(engine, tmp_path, request):
    """start(label) -> a federating ranvier server; all are stopped at the end."""
    started: list[tuple[Homeserver, aiohttp.ClientSession]] = []

    async def start(label: str, **sections) -> Federated:
        database_url = await new_database_url(engine, tmp_path / f"{label}.db", request)
        tls_port = _free_port()
        hs = Homeserver(federated_config(tmp_path / label, database_url, tls_port, **sections))
        await hs.start()
        session = aiohttp.ClientSession()
        started.append((hs, session))
        return Federated(hs, Api(session, hs.base_url), hs.config.server_name, tls_port)

    yield start
    for hs, session in started:
        await session.close()
        await hs.stop()


@pytest.fixture
async def pair(start_federated):
    """Two federating servers, `a` and `b`."""
    return await start_federated("a"), await start_federated("b")
