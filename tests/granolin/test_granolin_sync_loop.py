"""The sync loop's defect fixes, against a scripted HTTP peer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from granolin import Backoff, Client, TextMessage, UnknownTokenError
from scripted_server import DROP, ScriptedHomeserver, sync_answer, text

SYNC = "/_matrix/client/v3/sync"


def make_bot(server: ScriptedHomeserver, tmp_path: Path, **kwargs: object) -> Client:
    bot = Client(server.url, hardcopy=tmp_path / "bot.json", timeout=100, backoff=Backoff(base=0.05, cap=0.4), **kwargs)
    bot.user_id, bot.access_token = "@bot:scripted", "secret-token"
    return bot


async def run_until(bot: Client, condition, timeout: float = 5.0) -> None:
    """Run the loop until ``condition()`` holds, then stop it."""
    loop_task = asyncio.create_task(bot.start(handle_signals=False))
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                assert not loop_task.done(), loop_task
                await asyncio.sleep(0.01)
    finally:
        await stop(bot, loop_task)


async def stop(bot: Client, loop_task: asyncio.Task[None]) -> None:
    """Stop the loop; a loop that does not end in time is cancelled and fails the test."""
    bot.stop()
    await asyncio.wait_for(loop_task, 5)


async def test_errors_back_off_instead_of_spinning(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, *[(500, {"errcode": "M_UNKNOWN", "error": "boom"})] * 100)
    bot = make_bot(scripted, tmp_path)
    loop_task = asyncio.create_task(bot.start(handle_signals=False))
    await asyncio.sleep(1.0)
    await stop(bot, loop_task)
    times = [request.at for request in scripted.syncs()]
    # Delays of 0.025-0.05, 0.05-0.1, 0.1-0.2, 0.2-0.4, ... fit at most 7 attempts in a second.
    assert 3 <= len(times) <= 7
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[-1] > gaps[0]


async def test_rate_limit_waits_retry_after_ms(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, (429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 400}),
                    sync_answer("s1", "!r:x", text("after the wait")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    seen: list[str] = []
    bot.on(TextMessage)(lambda event: seen.append(event.body))
    await run_until(bot, lambda: seen)
    first, second = scripted.syncs()[:2]
    assert second.at - first.at >= 0.4
    assert seen == ["after the wait"]


async def test_unknown_token_stops_with_a_clear_error(scripted: ScriptedHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scripted.script("GET", SYNC, (401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid token"}))
    bot = make_bot(scripted, tmp_path)
    with caplog.at_level(logging.ERROR, logger="granolin"), pytest.raises(UnknownTokenError) as raised:
        async with asyncio.timeout(5):
            await bot.start(handle_signals=False)
    assert raised.value.status == 401 and "M_UNKNOWN_TOKEN" in str(raised.value)
    assert len(scripted.syncs()) == 1
    assert "log in again" in caplog.text
    assert not bot.logged_in and not bot.running
    assert orjson.loads((tmp_path / "bot.json").read_bytes())["access_token"] is None


async def test_network_failures_reconnect(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, DROP, DROP, sync_answer("s1", "!r:x", text("one")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    seen: list[str] = []
    bot.on(TextMessage)(lambda event: seen.append(event.body))
    loop_task = asyncio.create_task(bot.start(handle_signals=False))
    try:
        async with asyncio.timeout(5):
            while not seen:
                await asyncio.sleep(0.01)
            await scripted.stop()  # the server goes away entirely...
            await asyncio.sleep(0.3)
            scripted.script("GET", SYNC, sync_answer("s2", "!r:x", text("two")))
            await scripted.start()  # ...and comes back on the same port
            while len(seen) < 2:
                await asyncio.sleep(0.01)
    finally:
        await stop(bot, loop_task)
    assert seen == ["one", "two"]


def saved(tmp_path: Path) -> dict:
    return orjson.loads((tmp_path / "bot.json").read_bytes())


def pending_bodies(state: dict) -> list[tuple[str, list[str]]]:
    return [(job["event"]["content"]["body"], job["handlers"]) for job in state["pending"]]


async def test_a_slow_handler_stays_pending_while_the_token_moves_on(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    release = asyncio.Event()
    scripted.script("GET", SYNC, sync_answer("s1", "!a:x", text("quick")), sync_answer("s2", "!a:x", text("slow")),
                    sync_answer("s3", "!b:x", text("elsewhere")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    done: list[str] = []

    @bot.on(TextMessage)
    async def handle(event: TextMessage) -> None:
        if event.body == "slow":
            await release.wait()
        done.append(event.body)

    loop_task = asyncio.create_task(bot.start(handle_signals=False))
    try:
        async with asyncio.timeout(5):
            while "elsewhere" not in done:
                await asyncio.sleep(0.01)
            # The token is past s2 although s2's handler still runs; the file says what to re-run after a crash.
            assert saved(tmp_path)["next_batch"] == "s3"
            assert pending_bodies(saved(tmp_path)) == [("slow", [handle_id(bot)])]
            restarted = Client(scripted.url, hardcopy=tmp_path / "bot.json")
            assert restarted.next_batch == "s3" and [job.event.content["body"] for job in restarted.pending] == ["slow"]
            release.set()
            while saved(tmp_path)["pending"]:
                await asyncio.sleep(0.01)
    finally:
        await stop(bot, loop_task)
    assert done == ["quick", "elsewhere", "slow"]


def handle_id(bot: Client) -> str:
    (handler_id,) = bot._handlers
    return handler_id


async def test_a_crash_reruns_only_the_unfinished_handlers(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, sync_answer("s1", "!r:x", text("quick"), text("stuck")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    bot.shutdown_grace = 0.1
    first_run: list[str] = []

    @bot.on(TextMessage)
    async def handle(event: TextMessage) -> None:
        first_run.append(event.body)
        if event.body == "stuck":
            await asyncio.Event().wait()

    @bot.on(TextMessage)
    def count(event: TextMessage) -> None:
        first_run.append("counted " + event.body)

    loop_task = asyncio.create_task(bot.start(handle_signals=False))
    async with asyncio.timeout(5):
        while "stuck" not in first_run:
            await asyncio.sleep(0.01)
    await stop(bot, loop_task)
    assert first_run == ["quick", "counted quick", "stuck"]
    assert saved(tmp_path)["next_batch"] == "s1"
    assert pending_bodies(saved(tmp_path)) == [("stuck", ["on:test_a_crash_reruns_only_the_unfinished_handlers.<locals>.handle",
                                                          "on:test_a_crash_reruns_only_the_unfinished_handlers.<locals>.count"])]

    again = Client(scripted.url, hardcopy=tmp_path / "bot.json", timeout=100)
    second_run: list[str] = []

    @again.on(TextMessage)
    def handle(event: TextMessage) -> None:  # noqa: F811 - the same handler, registered again by the restarted bot
        second_run.append(event.body)

    @again.on(TextMessage)
    def count(event: TextMessage) -> None:  # noqa: F811
        second_run.append("counted " + event.body)

    await run_until(again, lambda: not again.pending)
    assert second_run == ["stuck", "counted stuck"]
    assert saved(tmp_path)["pending"] == []


async def test_rooms_run_side_by_side(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    second_seen = asyncio.Event()
    scripted.script("GET", SYNC, sync_answer("s1", "!a:x", text("first")), sync_answer("s2", "!b:x", text("second")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    order: list[str] = []

    @bot.on(TextMessage)
    async def handle(event: TextMessage) -> None:
        if event.body == "first":
            await second_seen.wait()  # would deadlock if room !b waited for room !a
        else:
            second_seen.set()
        order.append(event.body)

    await run_until(bot, lambda: len(order) == 2)
    assert order == ["second", "first"]


async def test_drain_waits_for_the_handlers_of_a_sync(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, sync_answer("s1", "!r:x", text("slow"), text("quick")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    done: list[str] = []

    @bot.on(TextMessage)
    async def handle(event: TextMessage) -> None:
        await asyncio.sleep(0.2 if event.body == "slow" else 0)
        done.append(event.body)

    async with bot:
        await bot.sync()
        assert done == [] and len(saved(tmp_path)["pending"]) == 2  # queued and saved, not handled yet
        await asyncio.wait_for(bot.drain(), 5)
    assert done == ["slow", "quick"] and saved(tmp_path)["pending"] == []


@pytest.mark.parametrize(("ordering", "concurrent", "expected"), [
    ("room", False, ["first", "second"]),
    ("room", True, ["second", "first"]),
    ("none", False, ["second", "first"]),
])
async def test_one_rooms_handlers_run_in_order_unless_asked(
    scripted: ScriptedHomeserver, tmp_path: Path, ordering: str, concurrent: bool, expected: list[str],
) -> None:
    scripted.script("GET", SYNC, sync_answer("s1", "!r:x", text("first")), sync_answer("s2", "!r:x", text("second")))
    bot = make_bot(scripted, tmp_path, ordering=ordering)
    bot.next_batch = "s0"
    order: list[str] = []

    @bot.on(TextMessage, concurrent=concurrent)
    async def handle(event: TextMessage) -> None:
        if event.body == "first":
            await asyncio.sleep(0.3)
        order.append(event.body)

    await run_until(bot, lambda: len(order) == 2)
    assert order == expected


async def test_the_first_sync_skips_old_messages(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, sync_answer("s1", "!r:x", text("old")), sync_answer("s2", "!r:x", text("new")))
    bot = make_bot(scripted, tmp_path)
    seen: list[str] = []
    bot.on(TextMessage)(lambda event: seen.append(event.body))
    await run_until(bot, lambda: seen)
    assert seen == ["new"]
    assert "since" not in scripted.syncs()[0].query and scripted.syncs()[1].query["since"] == "s1"


async def test_a_failing_handler_does_not_stop_the_bot(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, sync_answer("s1", "!r:x", text("boom"), text("fine")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    seen: list[str] = []

    @bot.on(TextMessage)
    def handle(event: TextMessage) -> None:
        if event.body == "boom":
            raise RuntimeError("handler bug")
        seen.append(event.body)

    await run_until(bot, lambda: bot.next_batch == "s1" and not bot.pending)
    assert seen == ["fine"] and saved(tmp_path)["pending"] == []


SIGNAL_BOT = textwrap.dedent(
    """
    import sys
    from granolin import Client
    bot = Client(sys.argv[1], hardcopy=sys.argv[2], timeout=100)
    bot.run()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signals_stop_the_loop_and_save(scripted: ScriptedHomeserver, tmp_path: Path, sig: signal.Signals) -> None:
    path = tmp_path / "bot.json"
    seed = Client(scripted.url, hardcopy=path)
    seed.user_id, seed.access_token, seed.next_batch = "@bot:scripted", "tok", "s0"
    seed.save_state()
    scripted.script("GET", SYNC, sync_answer("s7"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SIGNAL_BOT, scripted.url, str(path), env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        async with asyncio.timeout(10):
            while len(scripted.syncs()) < 2:
                await asyncio.sleep(0.02)
            process.send_signal(sig)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert orjson.loads(path.read_bytes())["next_batch"] == "s7"


async def test_a_stopped_bot_started_again_reruns_what_the_stop_cut_short(scripted: ScriptedHomeserver, tmp_path: Path) -> None:
    scripted.script("GET", SYNC, sync_answer("s1", "!r:x", text("cut")))
    bot = make_bot(scripted, tmp_path)
    bot.next_batch = "s0"
    bot.shutdown_grace = 0.05
    runs: list[str] = []
    first_time = True

    @bot.on(TextMessage)
    async def handle(event: TextMessage) -> None:
        runs.append(event.body)
        if first_time:
            await asyncio.Event().wait()

    loop_task = asyncio.create_task(bot.start(handle_signals=False))
    async with asyncio.timeout(5):
        while not runs:
            await asyncio.sleep(0.01)
    await stop(bot, loop_task)
    assert [job.remaining for job in bot.pending] == [[handle_id(bot)]]
    first_time = False
    await run_until(bot, lambda: not bot.pending)
    assert runs == ["cut", "cut"]
