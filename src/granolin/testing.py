"""Test bots against a real homeserver.

``TestHomeserver`` starts a ranvier homeserver in this process, on a free port
of 127.0.0.1 with a temporary database, and stops it afterwards; when the
environment variable ``GRANOLIN_TEST_HOMESERVER`` names the URL of another
homeserver with open registration, that one is used instead (or pass ``url``;
``use_environment=False`` always starts ranvier).

    async with TestHomeserver() as hs:
        alice = await hs.register_user("alice")
        bot = hs.client(await hs.register_user("bot"))

This module is the only one of granolin that imports ranvier, and only when a
local server is started: granolin installs without it, and starting a local
server without ranvier installed raises :class:`RanvierMissingError`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .client import Client
from .errors import GranolinError
from .transport import CLIENT_V3, loads_object

ENVIRONMENT_VARIABLE = "GRANOLIN_TEST_HOMESERVER"


class RanvierMissingError(GranolinError, ImportError):
    """TestHomeserver was asked to start ranvier, which is not installed."""


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, nested sections merged rather than replaced."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


@dataclass(frozen=True, slots=True)
class TestUser:
    """An account registered on the test homeserver, logged in on one device."""

    __test__ = False

    user_id: str
    password: str
    access_token: str
    device_id: str | None
    refresh_token: str | None = None

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


class TestHomeserver:
    """A homeserver for tests: ranvier in-process, or the one given by URL."""

    __test__ = False

    def __init__(
        self,
        url: str | None = None,
        *,
        use_environment: bool = True,
        server_name: str = "localhost",
        config: dict[str, Any] | None = None,
    ) -> None:
        """``config`` is laid over the test settings of a local ranvier (sections merge),
        e.g. ``{"registration": {"refreshable_access_token_lifetime_ms": 1000}}``."""
        from_environment = os.environ.get(ENVIRONMENT_VARIABLE) if use_environment else None
        self.url = url or from_environment or None
        self.server_name = server_name
        self.extra_config = config or {}
        self.base_url = ""
        self.server: Any = None
        self.data_dir: Path | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def external(self) -> bool:
        """True when the tests run against a server this helper did not start."""
        return self.url is not None

    async def __aenter__(self) -> TestHomeserver:
        self.data_dir = Path(tempfile.mkdtemp(prefix="granolin-test-"))
        self._session = aiohttp.ClientSession()
        try:
            if self.url is not None:
                self.base_url = self.url.rstrip("/")
            else:
                await self._start_ranvier()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start_ranvier(self) -> None:
        try:
            from ranvier.config import Config
            from ranvier.server import Homeserver
        except ImportError as exc:
            raise RanvierMissingError(
                "granolin.testing starts a ranvier homeserver, and ranvier is not installed: install it "
                f"(pip install ranvier, or pip install -e . in its repository), or set {ENVIRONMENT_VARIABLE} "
                "to the URL of a homeserver with open registration"
            ) from exc

        assert self.data_dir is not None
        generous = {"per_second": 1000.0, "burst": 1000}
        settings: dict[str, Any] = {
            "server_name": self.server_name,
            "data_dir": str(self.data_dir / "ranvier"),
            "listeners": [{"bind": "127.0.0.1", "port": 0}],
            "registration": {"mode": "open"},
            "rate_limits": {name: generous for name in ("login", "failed_login", "registration", "message", "join")},
            "password_hashing": {"time_cost": 1, "memory_kib": 1024, "parallelism": 1},
            "logging": {"level": "warning", "access_log": False},
        }
        self.server = Homeserver(Config.from_dict(_merged(settings, self.extra_config)))
        await self.server.start()
        self.base_url = self.server.base_url

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use TestHomeserver with 'async with'")
        return self._session

    async def call(self, method: str, path: str, *, token: str | None = None, json: Any = None) -> tuple[int, dict[str, Any]]:
        """One raw request to the server: (status, JSON body or {})."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base_url + path, json=json, headers=headers) as response:
            return response.status, loads_object(await response.read())

    async def serves(self, method: str, path: str, *, token: str | None = None) -> bool:
        """Whether the server knows the endpoint at all (not a 404/405 M_UNRECOGNIZED)."""
        status, data = await self.call(method, path, token=token, json={} if method in ("POST", "PUT") else None)
        return not (status in (404, 405) and data.get("errcode") in (None, "M_UNRECOGNIZED"))

    async def register_user(self, name: str = "user", password: str | None = None, *, refresh_token: bool = False) -> TestUser:
        """Register a new account named ``name-<random>`` (unique even on a shared server).

        With ``refresh_token`` the session gets one (its access token then expires).
        """
        localpart = f"{name}-{secrets.token_hex(4)}".lower()
        password = password or secrets.token_urlsafe(16)
        body: dict[str, Any] = {"username": localpart, "password": password, "initial_device_display_name": "granolin tests"}
        if refresh_token:
            body["refresh_token"] = True
        status, data = await self.call("POST", f"{CLIENT_V3}/register", json=body)
        if status == 401 and "session" in data:
            body["auth"] = {"type": "m.login.dummy", "session": data["session"]}
            status, data = await self.call("POST", f"{CLIENT_V3}/register", json=body)
        if status != 200:
            raise RuntimeError(f"registering {localpart} failed: {status} {data.get('errcode')} {data.get('error')}")
        return TestUser(
            user_id=data["user_id"], password=password, access_token=data["access_token"], device_id=data.get("device_id"),
            refresh_token=data.get("refresh_token"),
        )

    def client(self, user: TestUser | None = None, *, client_class: type[Client] = Client, hardcopy: str | os.PathLike[str] | None = None, **kwargs: Any) -> Client:
        """A granolin client (or ``client_class``) for this server, logged in as ``user`` if given.

        Without ``hardcopy`` the client keeps no file.
        """
        client = client_class(self.base_url, hardcopy=hardcopy, **kwargs)
        if user is not None and not client.logged_in:
            client.user_id = user.user_id
            client.access_token = user.access_token
            client.refresh_token = user.refresh_token
            client.device_id = user.device_id
        return client
