"""Fixtures of the granolin tests.

``scripted``: a scripted HTTP peer for the client's defect tests.
``live_hs``: a real homeserver, ranvier started in-process by granolin.testing,
and also the server named by GRANOLIN_TEST_HOMESERVER when that is set.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator

import pytest

from granolin.testing import ENVIRONMENT_VARIABLE, TestHomeserver
from scripted_server import ScriptedHomeserver

_SERVERS = ["ranvier"] + (["external"] if os.environ.get(ENVIRONMENT_VARIABLE) else [])


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedHomeserver]:
    async with ScriptedHomeserver() as server:
        yield server


@pytest.fixture(params=_SERVERS)
async def live_hs(request: pytest.FixtureRequest) -> AsyncIterator[TestHomeserver]:
    if request.param == "ranvier":
        if importlib.util.find_spec("ranvier.server") is None:
            pytest.skip("ranvier.server is not importable yet")
        server = TestHomeserver(use_environment=False)
    else:
        server = TestHomeserver(url=os.environ[ENVIRONMENT_VARIABLE])
    async with server as hs:
        yield hs

