"""A bot killed with SIGKILL restarts where it was: nothing replayed, nothing lost."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import orjson

from granolin.testing import TestHomeserver
from live_support import eventually, requires_endpoint

V3 = "/_matrix/client/v3"

BOT = textwrap.dedent(
    """
    import sys
    from granolin import Client, TextMessage

    homeserver, hardcopy, journal = sys.argv[1:4]
    bot = Client(homeserver, hardcopy=hardcopy, timeout=300)

    @bot.on(TextMessage)
    def record(event):
        with open(journal, "a") as out:
            out.write(event.body + "\\n")

    bot.run()
    """
)


async def start_bot(hs: TestHomeserver, hardcopy: Path, journal: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", BOT, hs.base_url, str(hardcopy), str(journal))


def saved_batch(hardcopy: Path) -> str | None:
    return orjson.loads(hardcopy.read_bytes()).get("next_batch") if hardcopy.exists() else None


def lines(journal: Path) -> list[str]:
    return journal.read_text().splitlines() if journal.exists() else []


async def test_restart_after_a_crash(live_hs: TestHomeserver, tmp_path: Path) -> None:
    alice_user, bot_user = await live_hs.register_user("alice"), await live_hs.register_user("bot")
    for method, path in (("POST", f"{V3}/createRoom"), ("GET", f"{V3}/sync")):
        await requires_endpoint(live_hs, method, path, token=alice_user.access_token)
    hardcopy, journal = tmp_path / "bot.json", tmp_path / "journal.txt"
    bot = live_hs.client(bot_user, hardcopy=hardcopy)
    bot.save_state()  # the session, as a bot that logged in earlier would have it
    async with live_hs.client(alice_user) as alice:
        room = await alice.create_room(invite=[bot_user.user_id])
        async with bot:
            await bot.join_room(room)
        await alice.send_text_message(room, "backlog")  # before the bot's first sync: skipped

        process = await start_bot(live_hs, hardcopy, journal)
        try:
            await eventually(lambda: saved_batch(hardcopy), what="the first sync")
            for n in (1, 2, 3):
                await alice.send_text_message(room, f"m{n}")
            await eventually(lambda: lines(journal) == ["m1", "m2", "m3"] or None, what="m1-m3")
            await asyncio.sleep(0.5)  # let the sync after m3 be saved
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()

        for n in (4, 5):
            await alice.send_text_message(room, f"m{n}")  # while the bot is down
        process = await start_bot(live_hs, hardcopy, journal)
        try:
            await eventually(lambda: len(lines(journal)) >= 5 or None, what="m4 and m5")
            await alice.send_text_message(room, "m6")
            await eventually(lambda: len(lines(journal)) >= 6 or None, what="m6")
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 15) == 0
    assert lines(journal) == ["m1", "m2", "m3", "m4", "m5", "m6"]

