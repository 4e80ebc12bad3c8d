"""The examples end to end: matrix-nio users talk to the echo bot and play roshambot."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import pytest
from nio import AsyncClient, RoomCreateResponse, SyncResponse

from granolin import Client, TextMessage, timeline_event
from granolin.testing import TestHomeserver
from live_support import eventually, notices_in, nio_user, nio_wait, requires_endpoint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
V3 = "/_matrix/client/v3"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"granolin_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def running(bot: Client) -> AsyncIterator[Client]:
    loop = asyncio.create_task(bot.start(handle_signals=False))
    try:
        yield bot
    finally:
        bot.stop()
        await asyncio.wait_for(loop, 10)


def handler_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The errors the bot logged: a handler that raised is logged, not propagated."""
    return [record.getMessage() for record in caplog.records if record.name.startswith("granolin") and record.levelno >= logging.ERROR]


async def needs_rooms(hs: TestHomeserver, token: str) -> None:
    for method, path in (("POST", f"{V3}/createRoom"), ("GET", f"{V3}/sync")):
        await requires_endpoint(hs, method, path, token=token)


async def test_echo_bot(live_hs: TestHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    echo = example("echo_bot")
    bot_user = await live_hs.register_user("echo")
    await needs_rooms(live_hs, bot_user.access_token)
    printed = io.StringIO()
    bot = echo.make_bot(live_hs.base_url, str(tmp_path / "echo.json"), output=printed)
    bot.timeout = 500
    assert await bot.login(bot_user.localpart, bot_user.password) == bot_user.user_id
    alice = await nio_user(live_hs, "alice")
    try:
        async with running(bot):
            created = await alice.room_create(name="echo test", invite=[bot.user_id])
            assert isinstance(created, RoomCreateResponse)
            room = created.room_id
            joined = await nio_wait(alice, lambda r: bot.user_id in (alice.rooms[room].users if room in alice.rooms else {}) or None,
                                    what="the echo bot to join")
            assert joined
            await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hello, echo"})
            bodies = await nio_wait(alice, notices_in(room, bot.user_id), what="the echo")
            assert bodies == ["hello, echo"]
            await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "!ping"})
            bodies = await nio_wait(alice, lambda r: [b for b in (notices_in(room, bot.user_id)(r) or []) if b == "pong"] or None, what="pong")
            assert bodies == ["pong"]
    finally:
        await alice.close()
    assert handler_failures(caplog) == []
    # Like the seed's shell echo bot: every event it saw, printed as a block of fields.
    blocks = printed.getvalue().split("\n\n")
    assert any(block.startswith("Invitation Event\nroom: " + room) for block in blocks)
    assert any(block.startswith("Joined Room State Event\n") and "event type: m.room.member" in block for block in blocks)
    said = [block for block in blocks if block.startswith("Joined Room Message/Timeline Event\n") and "message body: hello, echo" in block]
    assert said and f"sender: {alice.user_id}\n" in said[0] and "message type: m.text\n" in said[0]


def accept_invites(response: SyncResponse) -> list[str] | None:
    return list(response.rooms.invite) or None


async def test_roshambot(live_hs: TestHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    roshambo = example("roshambot")
    bot_user = await live_hs.register_user("roshambot")
    await needs_rooms(live_hs, bot_user.access_token)
    bot = live_hs.client(bot_user, client_class=roshambo.Roshambot, hardcopy=tmp_path / "roshambot.json", timeout=500)
    alice, bob, carol = await nio_user(live_hs, "alice"), await nio_user(live_hs, "bob"), await nio_user(live_hs, "carol")
    name = {user.user_id: user.user_id[1:].split(":")[0] for user in (alice, bob, carol)}

    def said(player: AsyncClient, room_id: str, fragment: str) -> Awaitable[list[str]]:
        return nio_wait(player, lambda r: [b for b in (notices_in(room_id, bot.user_id)(r) or []) if fragment in b] or None,
                        what=f"the bot to say {fragment!r}")

    try:
        async with running(bot):
            created = await alice.room_create(name="games", invite=[bot.user_id, bob.user_id, carol.user_id])
            room = created.room_id
            for player in (bob, carol):
                await nio_wait(player, lambda r: room if room in r.rooms.invite else None, what="the invitation")
                await player.join(room)
            await nio_wait(alice, lambda r: bot.user_id in (alice.rooms[room].users if room in alice.rooms else {}) or None,
                           what="roshambot to join")
            await eventually(lambda: set(bot.client_contacts()) >= {alice.user_id, bob.user_id, carol.user_id} or None,
                             what="the bot to know the players")

            # The seed's plain-language challenge; "bob" is found among the room's members by substring (:like).
            await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "Hey, I challenge bob to roshambo!"})
            direct: dict[str, str] = {}
            for player, question in ((alice, f"You have challenged {name[bob.user_id]} to roshambo"),
                                     (bob, f"{name[alice.user_id]} has challenged you to roshambo")):
                invited = await nio_wait(player, accept_invites, what="the direct room invitation")
                direct[player.user_id] = invited[0]
                await player.join(invited[0])
                asked = await said(player, invited[0], "roshambo")
                assert asked[0].startswith(question) and "Rock, Paper, Scissors" in asked[0] and "Cancel" in asked[0]

            # One match per player at a time.
            await carol.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"!challenge {bob.user_id}"})
            busy = await said(carol, room, "already in a match")
            assert busy == [f"Sorry, {name[bob.user_id]} is already in a match."]

            await alice.room_send(direct[alice.user_id], "m.room.message", {"msgtype": "m.text", "body": "I pick Rock"})
            await bob.room_send(direct[bob.user_id], "m.room.message", {"msgtype": "m.text", "body": "scissors"})
            result = await said(alice, room, "winner")
            assert result == [f"{name[alice.user_id]}'s rock beats {name[bob.user_id]}'s scissors! {name[alice.user_id]} is the winner!"]
            assert bot.matches == {}
            saved = roshambo.Roshambot(live_hs.base_url, hardcopy=tmp_path / "roshambot.json")
            assert saved.direct_rooms_with(alice.user_id) == [direct[alice.user_id]]

            # A new match, called off by a Cancel.
            await carol.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "i challenge alice to roshambo"})
            carol_room = (await nio_wait(carol, accept_invites, what="carol's direct room"))[0]
            await carol.join(carol_room)
            await said(carol, carol_room, "roshambo")
            await carol.room_send(carol_room, "m.room.message", {"msgtype": "m.text", "body": "cancel"})
            cancelled = await said(alice, room, "canceled")
            assert cancelled == [f"The match between {name[carol.user_id]} and {name[alice.user_id]} was canceled by {name[carol.user_id]}."]
            assert bot.matches == {}

            await bob.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "!play paper"})
            answer = await said(bob, room, "I played")
            assert any(verdict in answer[0] for verdict in ("A draw.", "You win!", "I win!"))
    finally:
        for player in (alice, bob, carol):
            await player.close()
    assert handler_failures(caplog) == []


def test_roshambo_rules() -> None:
    outcome = example("roshambot").outcome
    assert [outcome(a, b) for a, b in [("rock", "scissors"), ("scissors", "rock"), ("paper", "paper"), ("paper", "rock")]] == [1, 2, 0, 1]


def test_roshambot_saves_its_matches(tmp_path: Path) -> None:
    module = example("roshambot")
    bot = module.Roshambot("https://hs.example.org", hardcopy=tmp_path / "r.json")
    bot.matches["m"] = {"room": "!r:x", "moves": {"@a:x": "rock", "@b:x": None}}
    bot.save_state()
    again = module.Roshambot("https://hs.example.org", hardcopy=tmp_path / "r.json")
    assert again.matches == bot.matches
    assert again.commands.get("!play").usage == "!play <rock|paper|scissors>"
    assert again.commands.get("!challenge").usage == "!challenge <opponent>"


async def test_roshambot_closes_a_match_once_when_both_move_at_once() -> None:
    bot = example("roshambot").Roshambot("https://hs.example.org", hardcopy=None)
    bot.direct = {"@a:x": ["!da:x"], "@b:x": ["!db:x"]}
    bot.matches["m"] = {"room": "!r:x", "moves": {"@a:x": None, "@b:x": None}}
    sent: list[tuple[str, str]] = []

    async def send_notice(room_id: str, message: str, *args: object) -> str:
        await asyncio.sleep(0.01)  # both handlers are now between their move and their answer
        sent.append((room_id, message.format(*args)))
        return "$sent"

    bot.send_notice = send_notice  # type: ignore[method-assign]

    def move(sender: str, room_id: str, body: str) -> TextMessage:
        raw = {"type": "m.room.message", "sender": sender, "event_id": f"${sender}", "content": {"msgtype": "m.text", "body": body}}
        event = timeline_event(raw, room_id)
        assert isinstance(event, TextMessage)
        return event

    await asyncio.gather(bot.read_message(move("@a:x", "!da:x", "rock")), bot.read_message(move("@b:x", "!db:x", "Paper!")))
    assert bot.matches == {}
    assert [text for room, text in sent if room == "!r:x"] == ["b's paper beats a's rock! b is the winner!"]
