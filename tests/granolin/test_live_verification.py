"""Interactive verification (SAS, emoji) between a granolin bot and matrix-js-sdk with its Rust crypto
(the stack under Element Web, tests/js/sas_verification.mjs), through a real homeserver.

Both directions (the user asks the bot, the bot asks the user), by to-device messages (a
device verified, "verify session") and in an encrypted direct chat (a user verified,
"verify user"), and both ways to say the emoji differ: each side must show the same seven emoji and numbers, a match verifies the
device on both sides, a mismatch (m.mismatched_sas) leaves it unverified on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from granolin import Client
from granolin.e2ee.verification import MISMATCHED_SAS, Verification
from granolin.testing import TestHomeserver
from live_support import eventually
from tests.js_support import JS_DIR, next_record, node_with

pytestmark = pytest.mark.interop


class VerifyingBot(Client):
    """Accepts every request; says the strings match unless told otherwise; remembers what it was shown."""

    says_match = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.shown: list[Verification] = []
        self.requests: list[Verification] = []

    async def on_verification_request(self, verification: Verification) -> bool:
        self.requests.append(verification)
        return True

    async def on_sas(self, verification: Verification) -> bool:
        self.shown.append(verification)
        return self.says_match


@contextlib.asynccontextmanager
async def syncing(bot: Client) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await bot.sync()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        if task.done():
            await task  # the loop failed: its error is the test's
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(("who_starts", "bot_says", "user_says", "where"), [
    ("user", "match", "match", "to-device"), ("bot", "match", "match", "to-device"),
    ("user", "mismatch", "match", "to-device"), ("bot", "match", "mismatch", "to-device"),
    ("user", "match", "match", "room"), ("bot", "match", "match", "room"), ("user", "match", "mismatch", "room"),
])
async def test_the_bot_and_element_s_crypto_verify_with_emoji(live_hs: TestHomeserver, who_starts: str, bot_says: str,
                                                             user_says: str, where: str) -> None:
    node = node_with("matrix-js-sdk")
    bot_user = await live_hs.register_user("bot")
    bot = VerifyingBot(live_hs.base_url, hardcopy=None, timeout=500)
    bot.says_match = bot_says == "match"
    await bot.login(bot_user.localpart, bot_user.password)
    alice = await live_hs.register_user("alice")
    async with bot:
        await bot.sync()
        assert bot.encryption is not None and bot.device_id is not None
        # a room in common, so that her client tracks the bot's devices
        room = await bot.create_room(invite=[alice.user_id], is_direct=True, initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        async with live_hs.client(alice, encryption=False) as alice_client:
            await alice_client.join_room(room)
        process = await asyncio.create_subprocess_exec(
            node, os.path.join(JS_DIR, "sas_verification.mjs"), live_hs.base_url, alice.user_id, alice.access_token,
            str(alice.device_id), alice.password, bot_user.user_id, bot.device_id, who_starts, user_says, where, room,
            cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with syncing(bot):
                ready = await next_record(process, lambda r: r.get("step") == "ready", timeout=60)
                if who_starts == "bot":
                    if where == "room":
                        started = await bot.verify_device(alice.user_id, room_id=room)
                    else:
                        started = await bot.verify_device(alice.user_id, alice.device_id)
                    assert started.we_requested and started.room_id == (room if where == "room" else None)
                sas = await next_record(process, lambda r: r.get("step") in ("sas", "result"), timeout=60)
                assert sas["step"] == "sas", sas
                result = await next_record(process, lambda r: r.get("step") == "result", timeout=60)
                verification = await eventually(lambda: bot.shown[-1] if bot.shown and bot.shown[-1].finished else None,
                                                timeout=20, what="the bot's verification to end")
            await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        # the same strings on both sides, as the spec's table gives them
        assert verification.emoji == [tuple(pair) for pair in sas["emoji"]]
        assert list(verification.decimals or ()) == sas["decimal"]
        assert verification.we_requested == (who_starts == "bot")
        assert verification.user_id == alice.user_id and verification.device_id == alice.device_id
        assert verification.room_id == (room if where == "room" else None)
        alice_device = bot.encryption.devices.device(alice.user_id, str(alice.device_id))
        assert alice_device is not None
        if bot_says == user_says == "match":
            assert verification.verified and result["outcome"] == "verified", result
            assert result["verified"] is True, result
            assert bot.encryption.is_verified(alice_device)
            # her MAC covered her master key: the bot trusts it (and so the devices it cross-signs)
            assert bot.encryption.devices.trusted_master(alice.user_id) == ready["master"]
        else:
            assert not verification.verified and verification.cancel_code == MISMATCHED_SAS
            assert verification.cancelled_by_them == (user_says == "mismatch")
            assert result["outcome"] == "cancelled" and result["cancellationCode"] == MISMATCHED_SAS, result
            assert result["verified"] is False and result["locallyVerified"] is False
            assert not bot.encryption.is_verified(alice_device)
            assert bot.encryption.devices.trusted_master(alice.user_id) is None


async def logged_in_bot(hs: TestHomeserver, name: str, client_class: type[Client]) -> Client:
    user = await hs.register_user(name)
    bot = client_class(hs.base_url, hardcopy=None, timeout=500)
    await bot.login(user.localpart, user.password)
    return bot


async def test_two_bots_verify_each_other_and_the_default_hooks_decline(live_hs: TestHomeserver) -> None:
    """granolin on both sides: the hooks run in tasks while both keep syncing; a client that
    overrides nothing declines a request (m.user), and the asking side is told so."""
    asking = await logged_in_bot(live_hs, "asking", VerifyingBot)
    answering = await logged_in_bot(live_hs, "answering", VerifyingBot)
    plain = await logged_in_bot(live_hs, "plain", Client)
    async with asking, answering, plain:
        for bot in (asking, answering, plain):
            await bot.sync()
        async with syncing(asking), syncing(answering), syncing(plain):
            verification = await asking.verify_device(str(answering.user_id), answering.device_id)
            assert await asyncio.wait_for(verification.wait(), 30) is True
            [theirs] = await eventually(lambda: answering.shown if answering.shown and answering.shown[0].verified else None,
                                        timeout=20, what="the answering bot's side to finish")
            assert theirs.emoji == verification.emoji and theirs.decimals == verification.decimals
            assert asking.encryption and answering.encryption and plain.encryption
            answering_device = asking.encryption.devices.device(str(answering.user_id), str(answering.device_id))
            assert answering_device is not None and asking.encryption.is_verified(answering_device)

            declined = await asking.verify_device(str(plain.user_id), plain.device_id)
            assert await asyncio.wait_for(declined.wait(), 30) is False
            assert declined.cancel_code == "m.user" and declined.cancelled_by_them
            plain_device = asking.encryption.devices.device(str(plain.user_id), str(plain.device_id))
            assert plain_device is not None and not asking.encryption.is_verified(plain_device)
