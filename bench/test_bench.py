"""Smoke tests of the harness's pure parts: a wrong percentile or a PSS reader that reads
nothing would silently skew every figure the table shows."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import cpu_seconds, median, percentile, process_tree, pss_bytes, ratio  # noqa: E402
from poller import Closed, _frame  # noqa: E402
from report import fmt, markdown_table  # noqa: E402
from scenarios import QUICK, first_error  # noqa: E402
from servers import Server, ceiling, free_port  # noqa: E402


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7, 1, 3], 99) == 7
    assert percentile([5], 0) == 5
    with pytest.raises(ValueError):
        percentile([], 50)


def test_median_ignores_missing_rounds():
    assert median([3, 1, 2]) == 2
    assert median([1, None, 3]) == 2
    assert median([None]) is None


def test_ratio():
    assert ratio(50, 100) == 0.5
    assert ratio(None, 100) is None
    assert ratio(1, None) is None
    assert ratio(1, 0) is None


def test_fmt():
    assert fmt(None) == "—"
    assert fmt(0) == "0"
    assert fmt(12345.6) == "12346"
    assert fmt(12.34) == "12.3"
    assert fmt(1.234) == "1.23"
    assert fmt(3.0) == "3"


def test_first_error_unwraps_nested_groups():
    error = ValueError("inner")
    assert first_error(ExceptionGroup("outer", [ExceptionGroup("mid", [error])])) is error


def record(server, database, scenario, metrics=None, reason=""):
    return {"round": 1, "database": database, "server": server, "scenario": scenario,
            "status": "ok" if metrics else "not served", "reason": reason,
            "metrics": metrics or {}}


def test_table_medians_ratios_and_reasons():
    records = [
        record("ranvier", "sqlite", "send", {"rate": 300.0}),
        record("ranvier", "sqlite", "send", {"rate": 100.0}),
        record("ranvier", "sqlite", "send", {"rate": 200.0}),
        record("synapse", "sqlite", "send", {"rate": 100.0}),
        record("ranvier", "postgresql", "send", {"rate": 40.0}),
        record("ranvier", "postgresql", "send", reason="POST /createRoom → 404"),
        record("ceiling", None, "send", {"rate": 5000.0}),
        record("ranvier", "sqlite", "media", reason="POST /upload → 404 M_UNRECOGNIZED"),
        record("synapse", "sqlite", "media", {"upload_mib_s": 80.0, "download_mib_s": 90.0}),
    ]
    table = markdown_table(records, ["ranvier", "synapse", "ceiling"], ["sqlite"],
                           QUICK.labels())
    lines = table.splitlines()
    assert lines[0] == "| figure | ranvier (sqlite) | synapse (sqlite) | ratio (sqlite) | ceiling |"
    send = next(line for line in lines if line.startswith("| send, 16 senders in own rooms"))
    assert send.endswith("| 200 | 100 | 2.00 | 5000 |")
    upload = next(line for line in lines if line.startswith("| media upload, 4 × 1024 KiB"))
    assert "| not served [1] | 80 | — | — |" in upload
    assert "[1] ranvier: POST /upload → 404 M_UNRECOGNIZED" in lines
    assert not any("delivery" in line for line in lines), "scenarios not run get no row"
    partial = markdown_table(records, ["ranvier"], ["postgresql"], QUICK.labels())
    assert "| 40 (1 of 2 rounds) |" in partial


def test_pss_and_cpu_of_this_process():
    pss = pss_bytes([os.getpid()])
    assert 1 << 20 < pss < 4 << 30
    assert pss_bytes([2**22 + 12345]) == 0, "a vanished PID counts as nothing"
    before = cpu_seconds([os.getpid()])
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds([os.getpid()]) > before


def test_process_tree_finds_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert child.pid in tree
    finally:
        child.kill()
        child.wait()


async def test_ceiling_delivers_what_was_sent_to_every_long_poll(tmp_path):
    """The ceiling's figures bound what a real server can do here, so it must deliver
    what it is sent, to every poller, in order, and wait when there is nothing new."""
    port = free_port()
    server = Server(ceiling(tmp_path, port), tmp_path, port)
    server.start()
    base = f"http://127.0.0.1:{port}/_matrix/client/v3"
    try:
        async with aiohttp.ClientSession() as session:
            async def sync(since=None, timeout=0):
                params = {"timeout": str(timeout), **({"since": since} if since else {})}
                async with session.get(f"{base}/sync", params=params) as resp:
                    return await resp.json()

            start = (await sync())["next_batch"]
            polls = [asyncio.ensure_future(sync(start, 5000)) for _ in range(3)]
            await asyncio.sleep(0.2)
            assert not any(p.done() for p in polls), "a long poll answered before anything was sent"
            for seq in range(2):
                async with session.put(f"{base}/rooms/!r:localhost/send/m.room.message/t{seq}",
                                       json={"body": "x", "seq": seq}) as resp:
                    assert resp.status == 200
            for doc in await asyncio.gather(*polls):
                events = doc["rooms"]["join"]["!r:localhost"]["timeline"]["events"]
                assert [e["content"]["seq"] for e in events][:1] == [0]
            caught_up = await sync(start, 0)
            assert [e["content"]["seq"] for e in caught_up["rooms"]["join"]["!r:localhost"]["timeline"]["events"]] == [0, 1]
            idle = await sync(caught_up["next_batch"], 100)
            assert idle == {"next_batch": caught_up["next_batch"], "rooms": {}}
    finally:
        server.stop()


def test_poller_frames_answers_whole_and_only_whole():
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bc\"}!"
    for cut in range(len(answer) - 1):
        assert _frame(bytearray(answer[:cut])) is None, cut
    assert _frame(bytearray(answer + b"HTTP/1.1")) == (200, b'{"a":"bc"}!', len(answer))
    chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n"
    for cut in range(len(chunked) - 1):
        assert _frame(bytearray(chunked[:cut])) is None, cut
    assert _frame(bytearray(chunked)) == (404, b'{"a":1}', len(chunked))
    with pytest.raises(Closed):
        _frame(bytearray(b"HTTP/1.0 200 OK\r\n\r\n"))
    with pytest.raises(Closed):
        _frame(bytearray(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}"))
