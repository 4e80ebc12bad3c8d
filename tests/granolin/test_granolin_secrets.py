"""No password (or access token) in any error, log line or repr."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from granolin import Client, LoginError
from scripted_server import DROP, ScriptedHomeserver

PASSWORD = "hunter2-Very-Secret"
LOGIN = "/_matrix/client/v3/login"


def assert_secret_free(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert "the-access-token" not in text


async def test_failed_login_never_shows_the_password(scripted: ScriptedHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scripted.script("POST", LOGIN, (403, {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}))
    client = Client(scripted.url, hardcopy=tmp_path / "bot.json")
    with caplog.at_level(logging.DEBUG), pytest.raises(LoginError) as raised:
        await client.login("alice", PASSWORD)
    await client.close()
    error = raised.value
    assert error.status == 403 and error.errcode == "M_FORBIDDEN" and "alice" in str(error)
    assert_secret_free(str(error), repr(error), repr(error.args), repr(vars(error)), caplog.text, repr(client))
    assert error.__cause__ is None and error.__suppress_context__


async def test_network_errors_during_login_never_show_the_password(scripted: ScriptedHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scripted.script("POST", LOGIN, DROP)
    client = Client(scripted.url, hardcopy=None)
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as raised:
        await client.login("alice", PASSWORD)
    await client.close()
    assert_secret_free(str(raised.value), repr(raised.value), caplog.text)


async def test_successful_login_saves_no_password(scripted: ScriptedHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scripted.script("POST", LOGIN, (200, {"user_id": "@alice:s", "access_token": "the-access-token", "device_id": "D"}))
    client = Client(scripted.url, hardcopy=tmp_path / "bot.json")
    with caplog.at_level(logging.DEBUG):
        assert await client.login("alice", PASSWORD, device_name="Test") == "@alice:s"
    await client.close()
    assert client.logged_in and client.device_id == "D"
    client.save_state()
    assert PASSWORD not in (tmp_path / "bot.json").read_text()
    assert_secret_free(caplog.text, repr(client), str(vars(client).get("hardcopy")))
    body = scripted.requests[0].body.decode()
    assert '"m.id.user"' in body and '"initial_device_display_name":"Test"' in body
