"""Fixtures of the draft API's tests: a server named sy.org, as in the draft's examples,
and `draft`, raw HTTP to /matrix/client/api/v1 with the token as the query parameter."""

from __future__ import annotations

import pytest

from tests.conftest import test_config
from draft_support import DraftApi


@pytest.fixture
def server_config(tmp_path, database_url):
    return test_config(tmp_path / "data", database_url, server_name="sy.org")


@pytest.fixture
def draft(api) -> DraftApi:
    return DraftApi(api)
