"""A scripted client that behaves like Element X (bench/sliding_client.py) against ranvier over
HTTP on both engines: it must see the rooms, new messages, members, device-list changes, a
to-device message, its key counts, an invitation, a name change, typing and a read receipt,
in the order they happened. The same script runs against
Synapse from bench/sliding_sync_compare.py."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from scenarios import Api  # noqa: E402
from sliding_client import ROOMS, new_bench, run_script  # noqa: E402


def in_order(transcript: list[tuple], expected: list[tuple]) -> bool:
    position = 0
    for observation in transcript:
        if position < len(expected) and observation == expected[position]:
            position += 1
    return position == len(expected)


async def test_an_element_x_like_client_sees_everything_in_order(homeserver):
    transcript = []
    async with aiohttp.ClientSession() as session:
        await run_script(new_bench(Api(session, homeserver.base_url)), transcript)
    newest, first_rooms = f"room {ROOMS - 1:02}", ROOMS - 20
    expected = [
        ("count", ROOMS),
        ("top", (newest, f"room {ROOMS - 2:02}", f"room {ROOMS - 3:02}")),
        ("rooms", 20),
        ("rooms", 40),
        ("keys", (("signed_curve25519", 5),), ()),
        ("devices changed", "bob"),
        ("member", newest, "bob", "join"),
        ("message", newest, "bob", "hello from bob"),
        ("top", (newest, f"room {ROOMS - 2:02}", f"room {ROOMS - 3:02}")),
        ("devices changed", "bob"),
        ("to-device", "bob", "org.example.ping", '{"n": 1}'),
        ("keys", (("signed_curve25519", 4),), ()),
        ("count", ROOMS + 1),
        ("invite", "bob's room", "bob"),
        ("name", "room 30", "renamed room"),
        ("typing", newest, ("bob",)),
        ("receipt", newest, "bob", f"message {ROOMS - 1:02}"),
        ("message", "room 00", "alice", "back on top"),
        ("top", ("room 00", newest, f"room {ROOMS - 2:02}")),
    ]
    assert in_order(transcript, expected), transcript
    messages = [o for o in transcript if o[0] == "message"]
    assert len(messages) == len(set(messages)), "no message is shown twice"
    assert {o[1] for o in messages[:20]} == {f"room {i:02}" for i in range(first_rooms, ROOMS)}, "the top 20 first"
    assert {o[1] for o in messages[20:40]} == {f"room {i:02}" for i in range(first_rooms - 20, first_rooms)}
