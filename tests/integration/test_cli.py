"""The `ranvier` command: serve, generate-config, user and registration-token commands,
run as real processes against a stopped or a running server's database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from tests.conftest import _free_port

RANVIER = [sys.executable, "-m", "ranvier"]


def run_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(RANVIER + list(args), capture_output=True, text=True, input=input, timeout=60)


class RunningServer:
    def __init__(self, args: list[str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(RANVIER + ["serve", "--port", str(port)] + args,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.base_url = f"http://127.0.0.1:{port}"

    async def wait_ready(self, timeout: float = 20) -> float:
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < timeout:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited: {self.process.stderr.read()}")
                try:
                    async with session.get(self.base_url + "/_matrix/client/versions") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
        raise AssertionError("server did not answer in time")

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stderr


@pytest.fixture
def data_flags(tmp_path, database_url) -> list[str]:
    return ["--data-dir", str(tmp_path / "data"), "--database", database_url]


async def login(base_url: str, user: str, password: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/_matrix/client/v3/login",
                                json={"type": "m.login.password", "user": user, "password": password}) as response:
            return response.status, await response.json()


async def test_serve_announces_where_everything_lives_and_stops_on_sigterm(data_flags, tmp_path):
    server = RunningServer(data_flags, _free_port())
    try:
        await server.wait_ready()
    finally:
        code, stderr = server.stop()
    first_lines = stderr.splitlines()[:7]
    assert any(line.startswith("ranvier ") and "serving localhost" in line for line in first_lines)
    assert any("signing key:" in line and "(new)" in line for line in first_lines)
    assert any("ranvier user add" in line for line in first_lines)
    assert os.path.exists(tmp_path / "data" / "signing.key")
    assert code == 0


async def test_admin_commands_work_on_a_running_servers_database(data_flags, tmp_path):
    server = RunningServer(data_flags, _free_port())
    try:
        await server.wait_ready()
        password_file = tmp_path / "pw"
        password_file.write_text("s3cret password\n")
        added = run_cli("user", "add", "Alice", "--admin", "--password-file", str(password_file), *data_flags)
        assert added.returncode == 0, added.stderr
        assert "@alice:localhost" in added.stdout
        assert "s3cret" not in added.stdout + added.stderr
        status, body = await login(server.base_url, "alice", "s3cret password")
        assert status == 200, body

        listed = run_cli("user", "list", *data_flags)
        assert "@alice:localhost  (admin)" in listed.stdout

        again = run_cli("user", "add", "alice", "--password-file", str(password_file), *data_flags)
        assert again.returncode != 0 and "taken" in again.stderr

        gone = run_cli("user", "deactivate", "alice", *data_flags)
        assert gone.returncode == 0, gone.stderr
        status, body = await login(server.base_url, "alice", "s3cret password")
        assert (status, body["errcode"]) == (403, "M_USER_DEACTIVATED")
        assert "(admin, deactivated)" in run_cli("user", "list", *data_flags).stdout
    finally:
        server.stop()


async def test_user_deactivated_while_the_server_is_stopped_leaves_its_rooms_at_the_next_start(data_flags):
    server = RunningServer(data_flags + ["--open-registration"], _free_port())
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            alice, bob = [await register(session, server.base_url, name) for name in ("alice", "bob")]
            created = await call(session, "POST", server.base_url + "/_matrix/client/v3/createRoom", alice,
                                 {"preset": "public_chat"})
            room_id = created["room_id"]
            await call(session, "POST", f"{server.base_url}/_matrix/client/v3/rooms/{room_id}/join", bob, {})
    finally:
        server.stop()
    gone = run_cli("user", "deactivate", "bob", *data_flags)
    assert gone.returncode == 0, gone.stderr

    server = RunningServer(data_flags, _free_port())
    try:
        await server.wait_ready()
        members_url = f"{server.base_url}/_matrix/client/v3/rooms/{room_id}/joined_members"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                joined = (await call(session, "GET", members_url, alice))["joined"]
                if "@bob:localhost" not in joined:
                    break
                await asyncio.sleep(0.05)
        assert list(joined) == ["@alice:localhost"]
    finally:
        server.stop()


async def register(session: aiohttp.ClientSession, base_url: str, name: str) -> str:
    """Register with open registration; returns the access token."""
    body = {"username": name, "password": "long enough", "auth": {"type": "m.login.dummy"}}
    async with session.post(base_url + "/_matrix/client/v3/register", json=body) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["access_token"]


async def call(session: aiohttp.ClientSession, method: str, url: str, token: str, body: dict | None = None) -> dict:
    async with session.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_lock_and_suspend_from_the_command_line_apply_to_a_running_server(data_flags):
    server = RunningServer(data_flags + ["--open-registration"], _free_port())
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            await register(session, server.base_url, "carol")
        for command in ("lock", "suspend"):
            result = run_cli("user", command, "carol", *data_flags)
            assert (result.returncode, result.stdout.strip()) == (0, f"{command}ed @carol:localhost"), result.stderr
        assert "@carol:localhost  (locked, suspended)" in run_cli("user", "list", *data_flags).stdout
        status, body = await login(server.base_url, "carol", "long enough")
        assert (status, body["errcode"], body["soft_logout"]) == (401, "M_USER_LOCKED", True)
        assert run_cli("user", "unlock", "carol", *data_flags).returncode == 0
        status, body = await login(server.base_url, "carol", "long enough")
        assert status == 200, body
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base_url + "/_matrix/client/v3/createRoom", json={},
                                    headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
                assert (response.status, (await response.json())["errcode"]) == (403, "M_USER_SUSPENDED")
        assert run_cli("user", "unsuspend", "carol", *data_flags).returncode == 0
        assert "@carol:localhost\n" in run_cli("user", "list", *data_flags).stdout
        missing = run_cli("user", "lock", "nobody", *data_flags)
        assert missing.returncode != 0 and "no such active user: @nobody:localhost" in missing.stderr
    finally:
        server.stop()


def test_user_add_without_a_terminal_needs_a_password_file(data_flags):
    result = run_cli("user", "add", "bob", *data_flags, input="")
    assert result.returncode != 0 and "--password-file" in result.stderr


async def test_registration_token_lets_one_user_register(data_flags, tmp_path):
    config = tmp_path / "token.yaml"
    config.write_text("registration:\n  mode: token\n")
    created = run_cli("registration-token", "create", "--uses", "1", "--expires", "7d", "--config", str(config), *data_flags)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    server = RunningServer(["--config", str(config)] + data_flags, _free_port())
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            url = server.base_url + "/_matrix/client/v3/register"
            body = {"username": "tokenuser", "password": "long enough"}
            async with session.post(url, json=body) as response:
                session_id = (await response.json())["session"]
            body["auth"] = {"type": "m.login.registration_token", "token": token, "session": session_id}
            async with session.post(url, json=body) as response:
                assert response.status == 200, await response.text()
    finally:
        server.stop()
    unlimited = run_cli("registration-token", "create", "--token", "forever", *data_flags)
    assert unlimited.returncode == 0, unlimited.stderr
    listed = run_cli("registration-token", "list", *data_flags)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split("  ", 1)[0]: line.split("  ", 1)[1] for line in listed.stdout.splitlines()}
    assert lines.keys() == {token, "forever"}
    assert lines["forever"] == "used 0 of unlimited, never expires"
    assert lines[token].startswith("used 1 of 1, expires ") and lines[token].endswith("(used up)"), lines


def test_expired_registration_token_is_rejected_at_creation_time_parse(data_flags):
    result = run_cli("registration-token", "create", "--expires", "next tuesday", *data_flags)
    assert result.returncode != 0 and "--expires" in result.stderr


def test_generate_config_then_serve_with_it(tmp_path):
    target = tmp_path / "ranvier.yaml"
    result = run_cli("generate-config", "--output", str(target), "--server-name", "example.org")
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert "server_name: example.org" in text and "# " in text
    again = run_cli("generate-config", "--output", str(target))
    assert again.returncode != 0 and "exists" in again.stderr


@pytest.mark.parametrize("yaml_text, option", [
    ("server_name: 'not a server!'\n", "server_name"),
    ("registration:\n  mode: sometimes\n", "registration.mode"),
    ("rate_limits:\n  login: {per_second: fast}\n", "rate_limits.login.per_second"),
    ("listeners:\n  - port: 99999\n", "listeners[0].port"),
    ("limits:\n  max_body: 5\n", "limits.max_body"),
    ("database:\n  url: mysql://x\n", "database.url"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_a_wrong_config_value_stops_the_start_with_one_line(tmp_path, yaml_text, option):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--port", str(_free_port()))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], result.stderr
    assert "Traceback" not in result.stderr


async def test_a_database_from_a_newer_ranvier_is_refused(data_flags, database_url):
    from ranvier.storage.engine import open_database

    db = await open_database(database_url)
    try:
        await db.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        await db.execute("INSERT INTO schema_versions (component, version) VALUES ('users', 999)")
    finally:
        await db.close()
    result = run_cli("serve", *data_flags, "--port", str(_free_port()))
    assert result.returncode != 0
    assert "version 999" in result.stderr and "Traceback" not in result.stderr


def test_generate_tls_cert_writes_a_pair_a_tls_listener_serves(tmp_path):
    import ssl

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    done = run_cli("generate-tls-cert", "--name", "127.0.0.1", "--name", "example.test", "--cert", str(cert),
                   "--key", str(key), "--days", "2")
    assert done.returncode == 0, done.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))  # a matching pair
    again = run_cli("generate-tls-cert", "--name", "x.test", "--cert", str(cert), "--key", str(key))
    assert again.returncode != 0 and "exists already" in again.stderr
