"""/versions tells the truth: a spec version is advertised only when every endpoint that
version defines is routed by this server (the list of endpoints is derived from the spec's
bundled OpenAPI by scripts/spec-endpoints, in tests/data/spec_endpoints.tsv)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from ranvier.client_api.discovery import SPEC_VERSIONS

ENDPOINTS = Path(__file__).parents[1] / "data" / "spec_endpoints.tsv"
#: Every Matrix version since the first stable one, in order.
ALL_VERSIONS = [f"1.{minor}" for minor in range(1, 20)]


def spec_endpoints() -> list[dict]:
    with ENDPOINTS.open() as source:
        return list(csv.DictReader(source, delimiter="\t"))


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


async def unrouted(app, endpoints: list[dict]) -> list[str]:
    """The endpoints that no route of `app` answers (a path parameter becomes `x`)."""
    missing = []
    for endpoint in endpoints:
        path = re.sub(r"\{[^}]+\}", "x", endpoint["path"])
        match = await app.router.resolve(make_mocked_request(endpoint["method"], path, app=app))
        if match.http_exception is not None:
            missing.append(f"{endpoint['method']} {endpoint['path']}")
    return missing


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_advertised_versions_are_exactly_those_fully_served(homeserver, api):
    endpoints = spec_endpoints()
    expected = []
    first_unserved = ("1.0", await unrouted(homeserver.app, [e for e in endpoints if e["added_in"] == "1.0"]))
    if not first_unserved[1]:
        expected.append("r0.6.1")
        for version in ALL_VERSIONS:
            defined = [e for e in endpoints if version_key(e["added_in"]) <= version_key(version)]
            missing = await unrouted(homeserver.app, defined)
            if missing:
                first_unserved = (version, missing)
                break
            expected.append(f"v{version}")
    status, body = await api.get("/_matrix/client/versions")
    assert status == 200
    assert body["versions"] == SPEC_VERSIONS
    assert SPEC_VERSIONS == expected, f"the first version not fully served and what it lacks: {first_unserved}"


def test_the_endpoint_list_is_the_spec_list():
    endpoints = spec_endpoints()
    assert len(endpoints) > 150
    assert {"added_in": "1.18", "method": "PUT", "path": "/_matrix/client/v1/admin/lock/{userId}", "status": ""} in endpoints
    assert all(e["method"] in ("GET", "PUT", "POST", "DELETE") for e in endpoints)
