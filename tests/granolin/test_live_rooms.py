"""Rooms, messages, relations, state, account data and the directory against a real homeserver."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import pytest

from granolin import (
    Client,
    EphemeralEvent,
    Event,
    InvitationEvent,
    MatrixError,
    MemberEvent,
    NoticeMessage,
    ReactionEvent,
    RedactionEvent,
    RoomStateEvent,
    TextMessage,
    current_room_id,
)
from granolin.testing import TestHomeserver, TestUser
from live_support import eventually, requires_endpoint

V3 = "/_matrix/client/v3"


def make_png(width: int, height: int) -> bytes:
    """A valid RGB PNG of a colour gradient."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 5 % 256, 128)) for x in range(width)) for y in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def pair(hs: TestHomeserver) -> tuple[Client, Client, TestUser]:
    """Alice and a bot, both granolin clients; skips while rooms or sync are not served."""
    alice_user, bot_user = await hs.register_user("alice"), await hs.register_user("bot")
    for method, path in (("POST", f"{V3}/createRoom"), ("GET", f"{V3}/sync")):
        await requires_endpoint(hs, method, path, token=alice_user.access_token)
    return hs.client(alice_user, timeout=500), hs.client(bot_user, timeout=500), bot_user


async def test_rooms_messages_and_dispatch(live_hs: TestHomeserver, tmp_path: Path) -> None:
    alice, bot, _ = await pair(live_hs)
    seen: list[tuple[Event, str | None]] = []
    # own=True: the bot's join, reply and edit are among the events checked below.
    bot.on(Event, own=True)(lambda event: seen.append((event, current_room_id.get())))
    async with alice, bot:
        await bot.sync()  # the first sync: nothing yet
        room = await alice.create_room("Lobby", invite=[bot.user_id], topic="chat")
        await bot.sync()
        await bot.drain()  # the handlers run as tasks: wait for them
        assert any(isinstance(e, InvitationEvent) and e.room_id == room and e.state_key == bot.user_id for e, _ in seen)
        assert await bot.join_room(room) == room
        assert room in await bot.get_joined_rooms()

        first = await alice.send_text_message(room, "hello {}", "bot")
        notice = await alice.send_notice(room, "a notice")
        await alice.send_text_message(room, "plain", html="<b>plain</b>")
        seen.clear()
        await bot.sync()
        await bot.drain()
        texts = [e for e, _ in seen if isinstance(e, TextMessage)]
        assert [t.body for t in texts] == ["hello bot", "plain"] and texts[1].formatted_body == "<b>plain</b>"
        assert texts[0].event_id == first and texts[0].sender == alice.user_id and texts[0].room_id == room
        assert any(isinstance(e, NoticeMessage) and e.event_id == notice for e, _ in seen)
        assert any(isinstance(e, MemberEvent) and e.state_key == bot.user_id and e.membership == "join" for e, _ in seen)
        assert all(r == e.room_id for e, r in seen)

        reply = await bot.reply(texts[0], "hi {}", "alice")
        edit = await bot.edit(room, reply, "hi again")
        reaction = await alice.react(room, reply, "👍")
        redaction = await alice.redact(room, first, reason="typo")
        await bot.set_typing(room, True, timeout=5000)
        await bot.send_read_receipt(room, first)
        seen.clear()
        await bot.sync()
        await bot.drain()
        ids = {getattr(e, "event_id", None): e for e, _ in seen}
        assert ids[reply].in_reply_to == first and ids[edit].replaces == reply
        assert isinstance(ids[reaction], ReactionEvent) and ids[reaction].key == "👍"
        assert isinstance(ids[redaction], RedactionEvent) and ids[redaction].redacts == first
        ephemeral = {e.type: e.content for e, _ in seen if isinstance(e, EphemeralEvent) and e.room_id == room}
        assert bot.user_id in ephemeral["m.typing"]["user_ids"]
        assert bot.user_id in ephemeral["m.receipt"][first]["m.read"]

        assert (await bot.get_state(room, "m.room.name"))["name"] == "Lobby"
        state = await bot.get_state(room)
        assert {"m.room.create", "m.room.member", "m.room.topic"} <= {e["type"] for e in state}
        assert set(await bot.get_room_members(room)) == {alice.user_id, bot.user_id}

        levels = await alice.get_state(room, "m.room.power_levels")  # only the creator may set state so far
        await alice.send_state_event(room, "m.room.power_levels", {**levels, "users": {**levels.get("users", {}), bot.user_id: 50}})
        await bot.send_state_event(room, "m.room.topic", {"topic": "new"})
        assert (await alice.get_state(room, "m.room.topic"))["topic"] == "new"

        await bot.leave_room(room)
        seen.clear()
        await bot.sync()
        await bot.drain()
        assert any(isinstance(e, RoomStateEvent) and e.state_key == bot.user_id for e, _ in seen)
        assert room not in await bot.get_joined_rooms()
        with pytest.raises(MatrixError):
            await bot.send_text_message(room, "not a member any more")


async def test_invite_and_create_direct_room(live_hs: TestHomeserver) -> None:
    alice, bot, _ = await pair(live_hs)
    async with alice, bot:
        room = await alice.create_room("Private")
        await alice.invite(room, bot.user_id)
        assert await bot.join_room(room) == room
        direct = await bot.create_room(invite=[alice.user_id], is_direct=True, preset="trusted_private_chat")
        assert await alice.join_room(direct) == direct
        assert set(await alice.get_room_members(direct)) == {alice.user_id, bot.user_id}


async def test_account_data(live_hs: TestHomeserver) -> None:
    alice, bot, bot_user = await pair(live_hs)
    await requires_endpoint(live_hs, "GET", f"{V3}/user/{bot_user.user_id}/account_data/m.direct", token=bot_user.access_token)
    async with bot:
        await bot.update_account_data("org.example.settings", {"colour": "green"})
        assert await bot.get_account_data("org.example.settings") == {"colour": "green"}


async def test_user_search(live_hs: TestHomeserver) -> None:
    alice, bot, bot_user = await pair(live_hs)
    await requires_endpoint(live_hs, "POST", f"{V3}/user_directory/search", token=bot_user.access_token)
    async with alice, bot:
        shared = await alice.create_room(invite=[bot.user_id])
        await bot.join_room(shared)
        localpart = alice.user_id[1:].split(":")[0]

        async def found() -> list | None:
            results = (await bot.user_search(localpart, limit=5))["results"]
            return results or None

        results = await eventually(found, what="alice in the user directory")
        assert alice.user_id in [r["user_id"] for r in results]


async def test_media_upload_download_thumbnail(live_hs: TestHomeserver) -> None:
    user = await live_hs.register_user("bot")
    await requires_endpoint(live_hs, "POST", "/_matrix/media/v3/upload", token=user.access_token)
    png = make_png(64, 48)
    async with live_hs.client(user) as bot:
        uri = await bot.upload("dot.png", png)
        assert uri.startswith("mxc://")
        media = await bot.download(uri)
        assert media.content == png and media.content_type.startswith("image/png")
        thumb = await bot.thumbnail(uri, 32, 32)
        assert thumb.content and thumb.content_type.startswith("image/")
        if await live_hs.serves("POST", f"{V3}/createRoom", token=user.access_token):
            room = await bot.create_room()
            await bot.send_image_message(room, "dot", uri, mimetype="image/png", w=64, h=48, size=len(png))
            await bot.send_file_message(room, "dot", uri, filename="dot.png")


async def test_an_attachment_in_a_clear_room_is_sent_by_url_and_read_back(live_hs: TestHomeserver) -> None:
    alice, bot, _ = await pair(live_hs)
    png, small = make_png(64, 48), make_png(16, 12)
    async with alice, bot:
        room = await alice.create_room(invite=[str(bot.user_id)])
        await bot.join_room(room)
        event_id = await bot.send_attachment(room, png, "dot.png", info={"w": 64, "h": 48}, thumbnail=small,
                                             thumbnail_info={"mimetype": "image/png", "w": 16, "h": 12})
        event = await alice.get_event(room, event_id)
        assert event.type == "m.room.message" and event.content["url"].startswith("mxc://") and "file" not in event.content
        assert event.content["info"]["mimetype"] == "image/png" and event.content["info"]["size"] == len(png)
        image = await alice.download_attachment(event)
        assert (image.content, image.content_type) == (png, "image/png")
        assert (await alice.download_attachment(event, thumbnail=True)).content == small


async def test_handlers_run_from_the_sync_loop(live_hs: TestHomeserver, tmp_path: Path) -> None:
    alice, bot, _ = await pair(live_hs)
    bot.hardcopy = tmp_path / "bot.json"
    answered = asyncio.Event()

    @bot.command("!add", help="Add two numbers")
    async def add(event: TextMessage, a: int, b: int) -> None:
        await bot.reply(event, "{}", a + b, notice=True)
        answered.set()

    async with alice:
        room = await alice.create_room(invite=[bot.user_id])
        await bot.join_room(room)
        loop = asyncio.create_task(bot.start(handle_signals=False))
        try:
            await eventually(lambda: bot.next_batch, what="the bot's first sync")
            await alice.send_text_message(room, "!add 2 40")
            await asyncio.wait_for(answered.wait(), 15)
        finally:
            bot.stop()
            await asyncio.wait_for(loop, 10)
        texts = [e for e in await _timeline(alice, room) if e.get("content", {}).get("msgtype") == "m.notice"]
        assert texts and texts[-1]["content"]["body"] == "42"


async def _timeline(client: Client, room: str) -> list[dict]:
    answer = await client.api("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": "20"})
    return list(reversed(answer["chunk"]))
