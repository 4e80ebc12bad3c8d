"""Login, whoami, logout and discovery against a real homeserver."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

from granolin import Client, LoginError, UnknownTokenError
from granolin.testing import TestHomeserver
from live_support import requires_endpoint


async def test_login_whoami_logout(live_hs: TestHomeserver) -> None:
    user = await live_hs.register_user("bot")
    async with Client(live_hs.base_url, hardcopy=None) as bot:
        assert await bot.login(user.localpart, user.password, device_name="Granolin test") == user.user_id
        assert bot.logged_in and bot.device_id
        assert (await bot.whoami())["user_id"] == user.user_id
        await bot.logout()
        assert not bot.logged_in
    async with live_hs.client(user) as registered:
        assert (await registered.whoami())["user_id"] == user.user_id  # only the bot's own device logged out


async def test_a_logged_out_token_is_an_unknown_token(live_hs: TestHomeserver) -> None:
    user = await live_hs.register_user("bot")
    async with live_hs.client(user) as bot:
        token = bot.access_token
        await bot.logout()
        bot.access_token = token
        with pytest.raises(UnknownTokenError):
            await bot.whoami()


async def test_a_failed_login_hides_the_password(live_hs: TestHomeserver, caplog: pytest.LogCaptureFixture) -> None:
    user = await live_hs.register_user("bot")
    wrong = "Not-The-Password-123"
    async with Client(live_hs.base_url, hardcopy=None) as bot:
        with caplog.at_level(logging.DEBUG), pytest.raises(LoginError) as raised:
            await bot.login(user.localpart, wrong)
    assert raised.value.status == 403 and raised.value.errcode == "M_FORBIDDEN"
    for text in (str(raised.value), repr(raised.value), caplog.text, repr(bot)):
        assert wrong not in text and user.password not in text


async def test_well_known_discovery_from_a_server_name(live_hs: TestHomeserver) -> None:
    await requires_endpoint(live_hs, "GET", "/.well-known/matrix/client")
    parts = urlsplit(live_hs.base_url)
    async with Client(parts.netloc, ssl=parts.scheme == "https", hardcopy=None) as bot:
        assert bot.base_url is None
        resolved = await bot.resolve()
        assert "versions" in await bot.api("GET", "/_matrix/client/versions")
    assert urlsplit(resolved).scheme in ("http", "https")


async def test_the_sync_loop_stops_on_an_unknown_token(live_hs: TestHomeserver, tmp_path) -> None:
    user = await live_hs.register_user("bot")
    await requires_endpoint(live_hs, "GET", "/_matrix/client/v3/sync", token=user.access_token)
    bot = live_hs.client(user, hardcopy=tmp_path / "bot.json", timeout=200)
    token = bot.access_token
    await bot.logout()
    bot.access_token = token
    with pytest.raises(UnknownTokenError):
        await bot.start(handle_signals=False)
    assert not bot.logged_in
