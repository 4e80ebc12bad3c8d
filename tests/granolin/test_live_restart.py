"""Bots killed with SIGKILL and started again: nothing lost, nothing answered twice.

The bot runs in its own process against ranvier (in the test process); each
handler writes a journal line when it starts and when it ends, and answers with
two notices, "got X" before its work and "done X" after it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from collections import Counter
from pathlib import Path

import orjson

from granolin import Client, NoticeMessage
from granolin.testing import TestHomeserver, TestUser
from live_support import eventually, requires_endpoint

V3 = "/_matrix/client/v3"

BOT = textwrap.dedent(
    """
    import asyncio, sys
    from granolin import Client, SyncFilter, TextMessage

    homeserver, hardcopy, journal, slow_seconds = sys.argv[1:5]
    # A short timeline, so a bot that was away sees a limited one and must fill the gap.
    bot = Client(homeserver, hardcopy=hardcopy, timeout=300, sync_filter=SyncFilter(timeline_limit=5))

    def note(line):
        with open(journal, "a") as out:
            out.write(line + "\\n")

    @bot.on(TextMessage)
    async def answer(event):
        note("start " + event.body)
        await bot.send_notice(event.room_id, "got " + event.body)
        if event.body.startswith("slow"):
            await asyncio.sleep(float(slow_seconds))
        await bot.send_notice(event.room_id, "done " + event.body)
        note("end " + event.body)

    bot.run()
    """
)


class BotProcess:
    def __init__(self, hs: TestHomeserver, hardcopy: Path, journal: Path) -> None:
        self.hs, self.hardcopy, self.journal = hs, hardcopy, journal
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, slow_seconds: float = 0.1) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOT, self.hs.base_url, str(self.hardcopy), str(self.journal), str(slow_seconds)
        )
        await eventually(lambda: self.saved().get("next_batch"), what="the bot's first sync")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(self.process.wait(), 15) == 0

    def saved(self) -> dict:
        return orjson.loads(self.hardcopy.read_bytes()) if self.hardcopy.exists() else {}

    def lines(self) -> list[str]:
        return self.journal.read_text().splitlines() if self.journal.exists() else []

    async def wait_for(self, line: str, timeout: float = 20) -> None:
        await eventually(lambda: line in self.lines() or None, timeout=timeout, what=line)


async def prepare(hs: TestHomeserver, tmp_path: Path, rooms: int = 1) -> tuple[Client, TestUser, list[str], BotProcess]:
    alice_user, bot_user = await hs.register_user("alice"), await hs.register_user("bot")
    for method, path in (("POST", f"{V3}/createRoom"), ("GET", f"{V3}/sync")):
        await requires_endpoint(hs, method, path, token=alice_user.access_token)
    hardcopy = tmp_path / "bot.json"
    alice = hs.client(alice_user)
    async with hs.client(bot_user, hardcopy=hardcopy) as bot:
        bot.save_state()  # the session, as a bot that logged in earlier would have it
        room_ids = []
        for _ in range(rooms):
            room_ids.append(await alice.create_room(invite=[bot_user.user_id]))
            await bot.join_room(room_ids[-1])
    return alice, bot_user, room_ids, BotProcess(hs, hardcopy, tmp_path / "journal.txt")


async def notices(alice: Client, room_id: str, bot: TestUser) -> list[str]:
    """The bodies of the bot's notices in the room, oldest first."""
    found = [event.body async for event in alice.messages(room_id) if isinstance(event, NoticeMessage) and event.sender == bot.user_id]
    return found[::-1]


async def test_every_message_sent_while_the_bot_was_down_is_handled_once_in_order(live_hs: TestHomeserver, tmp_path: Path) -> None:
    alice, bot_user, (room,), bot = await prepare(live_hs, tmp_path)
    async with alice:
        await alice.send_text_message(room, "backlog")  # before the bot's first sync: skipped
        await bot.start()
        try:
            await alice.send_text_message(room, "hello")
            await bot.wait_for("end hello")
            await asyncio.sleep(0.3)  # the sync after the bot's answers is saved
        finally:
            await bot.kill()

        sent = [f"m{n}" for n in range(1, 31)]
        for body in sent:
            await alice.send_text_message(room, body)  # the bot is down: 30 messages, its timeline shows 5
        await bot.start()
        try:
            await bot.wait_for("end m30", timeout=30)
            await alice.send_text_message(room, "after")
            await bot.wait_for("end after")
        finally:
            await bot.terminate()
        answers = await notices(alice, room, bot_user)
    ends = [line.removeprefix("end ") for line in bot.lines() if line.startswith("end ")]
    assert ends == ["hello", *sent, "after"]
    assert answers == [f"{kind} {body}" for body in ["hello", *sent, "after"] for kind in ("got", "done")]


async def test_a_kill_during_a_slow_handler_answers_nothing_twice(live_hs: TestHomeserver, tmp_path: Path) -> None:
    alice, bot_user, (room, other_room), bot = await prepare(live_hs, tmp_path, rooms=2)
    async with alice:
        await bot.start(slow_seconds=60)
        try:
            await alice.send_text_message(room, "quick1")
            await bot.wait_for("end quick1")
            await alice.send_text_message(room, "slow1")
            await bot.wait_for("start slow1")
            # The slow handler holds its room, not the bot: another room is answered meanwhile,
            # and the saved token moves on past the slow message.
            await alice.send_text_message(other_room, "quick2")
            await bot.wait_for("end quick2")
            await eventually(lambda: [job["event"]["content"]["body"] for job in bot.saved()["pending"]] == ["slow1"] or None,
                             what="the slow handler to be the only pending one")

            async def slow_answered_first() -> bool | None:
                return "got slow1" in await notices(alice, room, bot_user) or None

            await eventually(slow_answered_first, what="the slow handler's first answer")
        finally:
            await bot.kill()  # mid-handler: "got slow1" is sent, "done slow1" is not

        await bot.start(slow_seconds=0.2)
        try:
            await bot.wait_for("end slow1")
            await alice.send_text_message(room, "quick3")
            await bot.wait_for("end quick3")
        finally:
            await bot.terminate()
        in_room, in_other_room = await notices(alice, room, bot_user), await notices(alice, other_room, bot_user)
    starts = Counter(line for line in bot.lines() if line.startswith("start "))
    assert starts == {"start quick1": 1, "start slow1": 2, "start quick2": 1, "start quick3": 1}  # only slow1 re-ran
    # The re-run sent "got slow1" again with the same transaction ID: the server kept the first one.
    assert in_room == ["got quick1", "done quick1", "got slow1", "done slow1", "got quick3", "done quick3"]
    assert in_other_room == ["got quick2", "done quick2"]
