"""Shared fixtures: a throwaway PostgreSQL cluster, a database per test on each engine,
and a real ranvier server on a free port.

The PostgreSQL cluster is started once per test session with initdb and pg_ctl in a
temporary directory; every test gets its own fresh database in it.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import asynccontextmanager

import aiohttp
import pytest
from hypothesis import settings

from ranvier.config import Config
from ranvier.server import Homeserver

ENGINES = ["sqlite", "postgresql"]

# The property tests check behaviour, not speed: on a machine whose cores are shared, an
# example that takes longer than Hypothesis's default deadline (200 ms) would fail its test
# though every assertion held.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def _postgres_bindir() -> str:
    for candidate in [os.path.dirname(shutil.which("pg_ctl") or "")] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if candidate and os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    pytest.fail("PostgreSQL is not installed (initdb/pg_ctl not found); .ci/run installs it", pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """Start a PostgreSQL cluster for this test session; yields its base URL."""
    bindir = _postgres_bindir()
    root = tempfile.mkdtemp(prefix="ranvier-pg-")
    run_as = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        owner = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user=owner)
        run_as = {"user": owner}
    data = os.path.join(root, "data")
    port = _free_port()
    subprocess.run(
        [f"{bindir}/initdb", "-D", data, "-U", "ranvier", "--auth=trust", "-E", "UTF8", "--locale=C"],
        check=True, capture_output=True, **run_as,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300"
    subprocess.run(
        [f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start"],
        check=True, capture_output=True, **run_as,
    )
    try:
        yield f"postgresql://ranvier@127.0.0.1:{port}"
    finally:
        subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True, **run_as)
        # Every test made a database of its own there: gigabytes, whose removal can take
        # minutes on a busy disk. It goes on in the background, not in the last test's time.
        subprocess.Popen(["rm", "-rf", root], start_new_session=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


async def new_database_url(engine: str, sqlite_path, request) -> str:
    """The URL of a new, empty database on `engine`: a file at `sqlite_path`, or a database
    of its own in the session's PostgreSQL cluster."""
    if engine == "sqlite":
        return f"sqlite:{sqlite_path}"
    import asyncpg

    base = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return f"{base}/{name}"


@pytest.fixture
async def database_url(engine, tmp_path, request) -> str:
    """A fresh, empty database on the engine under test."""
    return await new_database_url(engine, tmp_path / "test.db", request)


@asynccontextmanager
async def command_line_users(config: Config):
    """The users service on a server's database, opened beside the running server as the
    command line (`ranvier user ...`, `ranvier registration-token ...`) opens it."""
    from ranvier.server import open_storage
    from ranvier.users.service import UserService

    db = await open_storage(config)
    try:
        yield UserService(db, config)
    finally:
        await db.close()


def test_config(data_dir, database_url: str, **sections) -> Config:
    """A config for a test server: open registration, fast password hashing, raised limits."""
    raised = {"per_second": 10000, "burst": 10000}
    data = {
        "server_name": "localhost",
        "data_dir": str(data_dir),
        "listeners": [{"bind": "127.0.0.1", "port": 0}],
        "database": {"url": database_url},
        "registration": {"mode": "open"},
        "rate_limits": {name: dict(raised) for name in ("login", "failed_login", "registration", "message", "join")},
        "password_hashing": {"time_cost": 1, "memory_kib": 1024, "parallelism": 1},
        "logging": {"level": "warning", "access_log": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Config.from_dict(data)


test_config.__test__ = False  # a helper, not a test


@pytest.fixture
def server_config(tmp_path, database_url) -> Config:
    return test_config(tmp_path / "data", database_url)


@pytest.fixture
async def homeserver(server_config):
    hs = Homeserver(server_config)
    await hs.start()
    try:
        yield hs
    finally:
        await hs.stop()


def route_url(route, values: dict[str, str]) -> str:
    """The URL of a route of the route tables, its parameters filled from `values` ("x" for
    the others), under the first version it is served at."""
    from ranvier.web.routing import CLIENT_PREFIX

    path = route.path if route.versions is None else f"{CLIENT_PREFIX}/{route.versions[0]}{route.path}"
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: values.get(m.group(1), "x"), path)


class Api:
    """Raw HTTP to the client API, for the paths where exact status and body matter."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.homeserver: Homeserver | None = None  # set by `make_server`

    async def request(self, method: str, path: str, body=None, *, token: str | None = None, data: bytes | None = None,
                      headers: dict | None = None, params: dict | None = None) -> tuple[int, dict]:
        if not path.startswith(("/_matrix", "/.well-known", "/health", "/matrix/", "/_synapse", "/_ranvier")):
            path = "/_matrix/client/v3" + path
        url = self.base_url + path
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, url, json=body if data is None else None, data=data,
                                        headers=headers, params=params) as response:
            raw = await response.read()
            try:
                import orjson

                parsed = orjson.loads(raw) if raw else {}
            except ValueError:
                parsed = {"_raw": raw.decode(errors="replace")}
            return response.status, parsed

    async def get(self, path, **kw):
        return await self.request("GET", path, **kw)

    async def post(self, path, body=None, **kw):
        return await self.request("POST", path, body, **kw)

    async def put(self, path, body=None, **kw):
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path, body=None, **kw):
        return await self.request("DELETE", path, body, **kw)

    async def create_room(self, token: str, **body) -> str:
        status, created = await self.post("/createRoom", body, token=token)
        assert status == 200, created
        return created["room_id"]

    async def send_text(self, token: str, room_id: str, body: str, txn: str | None = None) -> str:
        """Send an m.text message; returns its event ID."""
        txn = txn or uuid.uuid4().hex
        status, result = await self.put(f"/rooms/{room_id}/send/m.room.message/{txn}",
                                        {"msgtype": "m.text", "body": body}, token=token)
        assert status == 200, result
        return result["event_id"]

    async def sync(self, token: str, **params) -> dict:
        """GET /sync with these query parameters (a dict, such as an inline filter, as JSON); asserts a 200."""
        import orjson

        query = {k: (orjson.dumps(v).decode() if isinstance(v, dict) else str(v)) for k, v in params.items()}
        status, body = await self.get("/sync", params=query, token=token)
        assert status == 200, body
        return body

    async def register_all(self, *usernames: str) -> list[dict]:
        """Register several users; returns their register responses in order."""
        return [await self.register(name) for name in usernames]

    async def register(self, username: str, password: str = "correct horse", **extra) -> dict:
        """Register through the user-interactive auth dance with m.login.dummy."""
        body = {"username": username, "password": password, **extra}
        status, challenge = await self.post("/register", body)
        assert status == 401, challenge
        body["auth"] = {"type": "m.login.dummy", "session": challenge["session"]}
        status, result = await self.post("/register", body)
        assert status == 200, result
        return result


async def with_server(config: Config, work):
    """Start a server on `config`, run `work(api)` against it, then stop it; what `work`
    returns. Two calls on one config are a restart."""
    hs = Homeserver(config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await work(Api(session, hs.base_url))
    finally:
        await hs.stop()


def message_bodies(events: list[dict]) -> list:
    """The bodies of the m.room.message events among `events`, in order."""
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


@pytest.fixture
async def api(homeserver):
    async with aiohttp.ClientSession() as session:
        yield Api(session, homeserver.base_url)


@pytest.fixture
async def make_server(tmp_path, engine, request):
    """Start a server with config sections changed for one test, each on a database of its
    own (one server process per database); `api.homeserver` is the server."""
    servers: list[Homeserver] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(**sections) -> Api:
        data_dir = tmp_path / f"data{len(servers)}"
        url = await new_database_url(engine, data_dir / "homeserver.db", request)
        hs = Homeserver(test_config(data_dir, url, **sections))
        await hs.start()
        servers.append(hs)
        session = aiohttp.ClientSession()
        sessions.append(session)
        api = Api(session, hs.base_url)
        api.homeserver = hs
        return api

    yield start
    for session in sessions:
        await session.close()
    for hs in servers:
        await hs.stop()
