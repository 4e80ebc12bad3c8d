"""Login, whoami, logout and discovery against a real homeserver."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import orjson
import pytest

from granolin import Client, LoginError, TextMessage, UnknownTokenError
from granolin.testing import TestHomeserver
from live_support import eventually, requires_endpoint

V3 = "/_matrix/client/v3"


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


EXPIRING = {"registration": {"refreshable_access_token_lifetime_ms": 1000}}
"""Access tokens issued with a refresh token live one second: they expire within a test."""


async def test_an_expired_token_is_refreshed_and_the_bot_carries_on(tmp_path) -> None:
    async with TestHomeserver(use_environment=False, config=EXPIRING) as hs:
        alice = hs.client(await hs.register_user("alice"))
        bot = hs.client(await hs.register_user("bot", refresh_token=True), hardcopy=tmp_path / "bot.json", timeout=200)
        answered: list[str] = []

        @bot.on(TextMessage)
        async def answer(event: TextMessage) -> None:
            await bot.send_notice(event.room_id, "got " + event.body)
            answered.append(event.body)

        async with alice:
            room = await alice.create_room(invite=[bot.user_id])
            await bot.join_room(room)
            first_token, first_refresh = bot.access_token, bot.refresh_token
            loop = asyncio.create_task(bot.start(handle_signals=False))
            try:
                await eventually(lambda: bot.next_batch, what="the first sync")
                await alice.send_text_message(room, "one")
                await eventually(lambda: answered == ["one"] or None, what="the first answer")
                await asyncio.sleep(1.2)  # the access token expires; the next request gets a soft logout
                await alice.send_text_message(room, "two")
                await eventually(lambda: answered == ["one", "two"] or None, what="the answer after the expiry")
            finally:
                bot.stop()
                await asyncio.wait_for(loop, 10)
        assert bot.access_token != first_token and bot.refresh_token not in (None, first_refresh)
        saved = orjson.loads((tmp_path / "bot.json").read_bytes())
        assert (saved["access_token"], saved["refresh_token"]) == (bot.access_token, bot.refresh_token)


async def test_a_soft_logout_logs_in_again_with_the_password_on_the_same_device() -> None:
    async with TestHomeserver(use_environment=False, config=EXPIRING) as hs:
        user = await hs.register_user("bot")
        async with Client(hs.base_url, hardcopy=None, refresh_tokens=True) as bot:
            await bot.login(user.localpart, user.password)
            device, first_token = bot.device_id, bot.access_token
            # A refresh token the server does not know (a stale copy): refreshing fails, the password is left.
            bot.refresh_token = stale_refresh = "rvr_stale-copy"
            await asyncio.sleep(1.1)
            status, answer = await hs.call("GET", f"{V3}/account/whoami", token=first_token)
            assert (status, answer.get("soft_logout")) == (401, True)
            assert (await bot.whoami())["user_id"] == user.user_id
            assert bot.device_id == device and bot.refresh_token not in (None, stale_refresh)


async def test_a_hard_logout_stops_the_bot_with_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    async with TestHomeserver(use_environment=False) as hs:
        user = await hs.register_user("bot")
        bot = Client(hs.base_url, hardcopy=None, timeout=200)
        await bot.login(user.localpart, user.password)  # the password is remembered, yet a hard logout is final
        status, _ = await hs.call("POST", f"{V3}/logout", token=bot.access_token)
        assert status == 200
        with caplog.at_level(logging.ERROR, logger="granolin"), pytest.raises(UnknownTokenError) as raised:
            await asyncio.wait_for(bot.start(handle_signals=False), 10)
        assert not raised.value.soft_logout and not bot.logged_in
        assert "hard logout" in caplog.text and "log in again" in caplog.text


async def test_starting_from_an_existing_access_token(live_hs: TestHomeserver) -> None:
    user = await live_hs.register_user("bot")
    async with Client(live_hs.base_url, hardcopy=None) as bot:
        assert await bot.use_access_token(user.access_token) == user.user_id
        assert (bot.user_id, bot.device_id) == (user.user_id, user.device_id)
