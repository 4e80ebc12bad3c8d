"""A bounded schemathesis pass over every operation of the spec's client-server OpenAPI
that this server serves: requests generated from the spec's schemas, sent with a valid
access token to a real `ranvier serve` process, must never get a 5xx nor a response that
breaks the schema the spec gives for its status.

The schema is tests/data/client_server_openapi.json, the spec's OpenAPI without its prose
(`scripts/spec-openapi`). Path parameters naming rooms, events, users and media get, half
of the time, real ones of the fuzzing user, so that requests reach past the lookups.
`/logout`, `/logout/all` and `/account/deactivate` get a token of their own each time.
`FUZZ_EXAMPLES` sets the examples per operation (`bench/fuzz.py` runs a longer pass).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import schemathesis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import _free_port

SCHEMA = Path(__file__).parents[1] / "data" / "client_server_openapi.json"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
PASSWORD = "fuzzing password"
OWN_TOKEN = re.compile(r"/logout(/all)?$|/account/deactivate$")
#: Long polls: their `timeout` is kept short, so that a case waits for nothing.
LONG_POLLS = re.compile(r"/sync$|/events$")
NAMES = itertools.count()
#: Operations whose answer departs from the spec's schema on purpose, and why.
SCHEMA_DEPARTURES = {
    ("GET", "/_matrix/client/v3/voip/turnServer"): "without a TURN server the answer is `{}`, as Synapse answers "
                                                   "and clients expect; the spec's schema only has credentials",
}


def served_operations(spec: dict) -> dict:
    """`spec` with only the operations a route of this server answers."""
    from ranvier.server import route_tables
    from ranvier.web.routing import add_routes

    app = web.Application()
    for routes in route_tables():
        add_routes(app.router, routes)

    async def routed(method: str, path: str) -> bool:
        request = make_mocked_request(method.upper(), re.sub(r"\{[^}]+\}", "x", path), app=app)
        return (await app.router.resolve(request)).http_exception is None

    async def keep() -> dict:
        paths = {}
        for path, operations in spec["paths"].items():
            kept = {method: operation for method, operation in operations.items()
                    if not isinstance(operation, dict) or "operationId" not in operation
                    or await routed(method, path)}
            if any(isinstance(op, dict) and "operationId" in op for op in kept.values()):
                paths[path] = kept
        return {**spec, "paths": paths}

    return asyncio.run(keep())


schema = schemathesis.openapi.from_dict(served_operations(json.loads(SCHEMA.read_text())))
# Requests the spec's schemas allow: a request that breaks them may get an error the spec
# does not list for the operation (a 401 M_MISSING_TOKEN where it documents only the
# user-interactive auth body), which says nothing about the server.
schema.config.generation.update(modes=["positive"])


class Target:
    """A real server process with a user who owns a room, an event, an alias and a file."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: never a proxy
        user = self.register()
        self.token, self.user_id, self.device_id = user["access_token"], user["user_id"], user["device_id"]
        self.room_id = self.call("POST", "/createRoom", {"preset": "public_chat", "room_alias_name": "fuzz"})["room_id"]
        self.event_id = self.call("PUT", f"/rooms/{quote(self.room_id)}/send/m.room.message/t1",
                                  {"msgtype": "m.text", "body": "hello"})["event_id"]
        uploaded = self.http.post(f"{base_url}/_matrix/media/v3/upload", data=b"fuzz", headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "text/plain"}).json()
        self.server_name, self.media_id = uploaded["content_uri"].removeprefix("mxc://").split("/")
        self.choices = random.Random(1)

    def call(self, method: str, path: str, body: dict) -> dict:
        response = self.http.request(method, f"{self.base_url}/_matrix/client/v3{path}", json=body,
                                     headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.text
        return response.json()

    def register(self) -> dict:
        body = {"username": f"fuzzer{next(NAMES)}", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
        response = self.http.post(f"{self.base_url}/_matrix/client/v3/register", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def real_values(self) -> dict[str, str]:
        return {"roomId": self.room_id, "roomIdOrAlias": self.room_id, "eventId": self.event_id,
                "userId": self.user_id, "deviceId": self.device_id, "serverName": self.server_name,
                "mediaId": self.media_id, "roomAlias": f"#fuzz:{self.server_name}"}

    def prepare(self, case) -> dict[str, str]:
        """Real IDs for half of the cases, long polls that do not wait; the headers to send
        (a token of its own for the operations that end a session)."""
        if case.path_parameters and self.choices.random() < 0.5:
            for name, value in self.real_values().items():
                if name in case.path_parameters:
                    case.path_parameters[name] = value
        if LONG_POLLS.search(case.path):
            case.query = {**(case.query or {}), "timeout": "0"}
        token = self.register()["access_token"] if OWN_TOKEN.search(case.path) else self.token
        return {"Authorization": f"Bearer {token}"}


def _start(tmp: Path, database_url: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    config = tmp / "ranvier.yaml"
    unlimited = "{per_second: 100000, burst: 100000}"
    config.write_text("rate_limits:\n" + "".join(f"  {kind}: {unlimited}\n" for kind in (
        "login", "failed_login", "registration", "message", "join")) + "logging: {level: error}\n"
        "password_hashing: {time_cost: 1, memory_kib: 1024, parallelism: 1}\n")
    process = subprocess.Popen([sys.executable, "-m", "ranvier", "serve", "--config", str(config), "--data-dir",
                                str(tmp / "data"), "--database", database_url, "--port", str(port),
                                "--open-registration"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server did not start: {process.stderr.read()}")
        try:
            if requests.get(base_url + "/_matrix/client/versions", timeout=1).status_code == 200:
                return process, base_url
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not answer in time")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_target(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        database_url = f"sqlite:{tmp / 'fuzz.db'}"
    else:
        import asyncpg

        base = request.getfixturevalue("postgres_server")
        name = "fuzz_" + uuid.uuid4().hex[:12]

        async def create() -> None:
            conn = await asyncpg.connect(f"{base}/postgres")
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        database_url = f"{base}/{name}"
    process, base_url = _start(tmp, database_url)
    try:
        yield Target(base_url)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    assert "Traceback" not in errors, errors


@pytest.mark.interop
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_served_operations_answer_no_5xx_and_keep_to_the_schema(case, fuzz_target):
    headers = fuzz_target.prepare(case)
    departs = (case.method.upper(), case.path) in SCHEMA_DEPARTURES
    case.call_and_validate(base_url=fuzz_target.base_url, session=fuzz_target.http, headers=headers,
                           checks=[not_a_server_error] if departs else [not_a_server_error, response_schema_conformance])
