"""What the client sends: message formatting, info objects, relations, media fallback.

The scripted peer records each request, so these check the exact JSON the
client puts on the wire; the live tests check the same calls against a real server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from granolin import Backoff, Client, MatrixError, SyncFilter, TextMessage, derived_txn_id, timeline_event
from scripted_server import Recorded, ScriptedHomeserver

ROOM = "!room:scripted"


@pytest.fixture
async def bot(scripted: ScriptedHomeserver, tmp_path: Path) -> Client:
    client = Client(scripted.url, hardcopy=None, encryption=False)  # the requests of a bot in clear rooms
    client.user_id, client.access_token = "@bot:scripted", "secret-token"
    yield client
    await client.close()


def sent(scripted: ScriptedHomeserver) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in scripted.requests if "/send/" in r.path]


def last(scripted: ScriptedHomeserver) -> Recorded:
    return scripted.requests[-1]


async def test_text_formatting_like_the_seed(bot: Client, scripted: ScriptedHomeserver) -> None:
    assert (await bot.send_text_message(ROOM, "{} rolled {:d}", "alice", 6)).startswith("$")
    await bot.send_text_message(ROOM, "braces {stay} without args")
    await bot.send_text_message(ROOM, "bold", html="<b>bold</b>")
    await bot.send_notice(ROOM, "{}!", "note")
    assert sent(scripted) == [
        {"msgtype": "m.text", "body": "alice rolled 6"},
        {"msgtype": "m.text", "body": "braces {stay} without args"},
        {"msgtype": "m.text", "body": "bold", "format": "org.matrix.custom.html", "formatted_body": "<b>bold</b>"},
        {"msgtype": "m.notice", "body": "note!"},
    ]
    paths = [r.path for r in scripted.requests]
    assert all(p.startswith(f"/_matrix/client/v3/rooms/{ROOM}/send/m.room.message/") for p in paths)
    assert len({p.rsplit("/", 1)[1] for p in paths}) == 4  # one transaction ID each
    assert all(r.headers["Authorization"] == "Bearer secret-token" for r in scripted.requests)


async def test_media_messages_build_info_from_keywords(bot: Client, scripted: ScriptedHomeserver) -> None:
    await bot.send_image_message(ROOM, "cat", "mxc://s/cat", mimetype="image/png", w=10, h=20, size=300)
    await bot.send_video_message(ROOM, "clip", "mxc://s/v", duration=5000, mimetype="video/mp4")
    await bot.send_audio_message(ROOM, "song", "mxc://s/a", info={"duration": 1})
    await bot.send_file_message(ROOM, "report", "mxc://s/f", filename="report.pdf", size=9)
    await bot.send_media_message(ROOM, "raw", "mxc://s/r", "m.image")
    assert sent(scripted) == [
        {"msgtype": "m.image", "body": "cat", "url": "mxc://s/cat", "info": {"mimetype": "image/png", "w": 10, "h": 20, "size": 300}},
        {"msgtype": "m.video", "body": "clip", "url": "mxc://s/v", "info": {"duration": 5000, "mimetype": "video/mp4"}},
        {"msgtype": "m.audio", "body": "song", "url": "mxc://s/a", "info": {"duration": 1}},
        {"msgtype": "m.file", "body": "report", "url": "mxc://s/f", "info": {"size": 9}, "filename": "report.pdf"},
        {"msgtype": "m.image", "body": "raw", "url": "mxc://s/r"},
    ]


async def test_reply_edit_react(bot: Client, scripted: ScriptedHomeserver) -> None:
    event = timeline_event({"type": "m.room.message", "event_id": "$q", "sender": "@alice:s", "content": {"msgtype": "m.text", "body": "hi"}}, ROOM)
    await bot.reply(event, "hello {}", "alice")
    scripted.script("GET", f"/_matrix/client/v3/rooms/{ROOM}/event/$mine",
                    (200, {"type": "m.room.message", "event_id": "$mine", "content": {"msgtype": "m.text", "body": "fixd"}}))
    await bot.edit(ROOM, "$mine", "fixed")
    await bot.react(ROOM, "$q", "👍")
    assert sent(scripted) == [
        {"msgtype": "m.text", "body": "hello alice", "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}, "m.mentions": {"user_ids": ["@alice:s"]}},
        {"msgtype": "m.text", "body": "* fixed", "m.new_content": {"msgtype": "m.text", "body": "fixed"},
         "m.relates_to": {"rel_type": "m.replace", "event_id": "$mine"}},
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$q", "key": "👍"}},
    ]
    assert scripted.requests[-1].path.split("/")[-2] == "m.reaction"


async def test_commands_and_generated_help(bot: Client, scripted: ScriptedHomeserver) -> None:
    rolls: list[tuple[int, int]] = []

    @bot.command("!roll", help="Roll dice")
    async def roll(event: TextMessage, sides: int = 6, count: int = 1) -> None:
        rolls.append((sides, count))

    def message(body: str, sender: str = "@alice:s") -> TextMessage:
        raw = {"type": "m.room.message", "event_id": f"${body}", "sender": sender, "content": {"msgtype": "m.text", "body": body}}
        return timeline_event(raw, ROOM)  # type: ignore[return-value]

    for body in ("!roll 20 2", "!roll", "!roll twenty", "!help", "roll 3"):
        await bot.handle_event(message(body))
    await bot.handle_event(message("!roll 4", sender="@bot:scripted"))  # its own message
    await bot.drain()
    assert rolls == [(20, 2), (6, 1)]
    answers = sent(scripted)
    assert [a["msgtype"] for a in answers] == ["m.notice", "m.notice"]
    assert answers[0]["body"].startswith("bad sides") and "Usage: !roll [sides] [count]" in answers[0]["body"]
    assert answers[1]["body"] == "!roll [sides] [count] - Roll dice\n!help - show this help"
    assert answers[1]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$!help"}}


async def test_room_calls(bot: Client, scripted: ScriptedHomeserver) -> None:
    v3 = "/_matrix/client/v3"
    scripted.script("POST", f"{v3}/createRoom", (200, {"room_id": "!new:s"}))
    scripted.script("POST", f"{v3}/join/#lobby:s", (200, {"room_id": "!lobby:s"}))
    assert await bot.create_room("Games", invite=["@a:s"], is_direct=True, preset="trusted_private_chat") == "!new:s"
    assert orjson.loads(last(scripted).body) == {"name": "Games", "preset": "trusted_private_chat", "visibility": "private", "invite": ["@a:s"], "is_direct": True}
    assert await bot.join_room("#lobby:s") == "!lobby:s"
    assert last(scripted).path == f"{v3}/join/#lobby:s"
    for path in (f"{v3}/rooms/{ROOM}/typing/@bot:scripted", f"{v3}/rooms/{ROOM}/receipt/m.read/$e"):
        scripted.script("PUT" if "typing" in path else "POST", path, (200, {}))
    await bot.set_typing(ROOM, timeout=5000)
    assert orjson.loads(last(scripted).body) == {"typing": True, "timeout": 5000}
    await bot.send_read_receipt(ROOM, "$e")
    assert last(scripted).path == f"{v3}/rooms/{ROOM}/receipt/m.read/$e"
    assert (await bot.redact(ROOM, "$bad", reason="spam")).startswith("$")
    assert last(scripted).path.startswith(f"{v3}/rooms/{ROOM}/redact/$bad/") and orjson.loads(last(scripted).body) == {"reason": "spam"}


async def test_upload_guesses_the_content_type(bot: Client, scripted: ScriptedHomeserver) -> None:
    scripted.script("POST", "/_matrix/media/v3/upload", (200, {"content_uri": "mxc://s/a"}), (200, {"content_uri": "mxc://s/b"}))
    assert await bot.upload("cat.png", b"\x89PNG") == "mxc://s/a"
    assert last(scripted).headers["Content-Type"] == "image/png" and last(scripted).query == {"filename": "cat.png"}
    assert await bot.upload("notes", "text", content_type="text/plain") == "mxc://s/b"
    assert last(scripted).body == b"text" and last(scripted).headers["Content-Type"] == "text/plain"


async def test_media_falls_back_to_the_old_endpoints(bot: Client, scripted: ScriptedHomeserver) -> None:
    async def media(request: web.Request) -> web.Response:
        return web.Response(body=b"bytes", content_type="image/png", headers={"Content-Disposition": 'inline; filename="cat.png"'})

    scripted.script("GET", "/_matrix/client/v1/media/download/s/abc", (404, {"errcode": "M_UNRECOGNIZED"}))
    scripted.script("GET", "/_matrix/media/v3/download/s/abc", media, media)
    scripted.script("GET", "/_matrix/media/v3/thumbnail/s/abc", media)
    first = await bot.download("mxc://s/abc")
    assert (first.content, first.content_type, first.filename) == (b"bytes", "image/png", "cat.png")
    await bot.download("mxc://s/abc")
    await bot.thumbnail("mxc://s/abc", 32, 32, method="crop")
    assert [r.path for r in scripted.requests] == [
        "/_matrix/client/v1/media/download/s/abc",
        "/_matrix/media/v3/download/s/abc",
        "/_matrix/media/v3/download/s/abc",
        "/_matrix/media/v3/thumbnail/s/abc",
    ]
    assert scripted.requests[-1].query == {"width": "32", "height": "32", "method": "crop"}


async def test_authenticated_media_is_used_when_served(bot: Client, scripted: ScriptedHomeserver) -> None:
    scripted.script("GET", "/_matrix/client/v1/media/download/s/abc", (404, {"errcode": "M_NOT_FOUND"}))
    with pytest.raises(MatrixError, match="M_NOT_FOUND"):
        await bot.download("mxc://s/abc")
    assert len(scripted.requests) == 1 and scripted.requests[0].headers["Authorization"] == "Bearer secret-token"
    with pytest.raises(ValueError):
        await bot.download("https://not-mxc")


async def test_sends_retry_5xx_and_network_errors_under_one_transaction_id(bot: Client, scripted: ScriptedHomeserver) -> None:
    bot.backoff = Backoff(base=0.01, cap=0.02)
    path = f"/_matrix/client/v3/rooms/{ROOM}/send/m.room.message/"
    attempts: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        attempts.append(request.path)
        if len(attempts) == 1:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "overloaded"}, status=502)
        assert request.transport is not None
        request.transport.close()  # the second attempt loses its connection
        return web.Response(status=500)

    bot.new_txn_id = lambda: "txn-fixed"  # type: ignore[method-assign]
    scripted.script("PUT", path + "txn-fixed", flaky, flaky, (200, {"event_id": "$once"}))
    assert await bot.send_text_message(ROOM, "hello") == "$once"
    assert len({r.path for r in scripted.requests}) == 1 and len(scripted.requests) == 3

    scripted.script("PUT", path + "txn-fixed", (403, {"errcode": "M_FORBIDDEN"}))
    with pytest.raises(MatrixError, match="M_FORBIDDEN"):
        await bot.send_text_message(ROOM, "not allowed")  # a 4xx is final
    assert len(scripted.requests) == 4


async def test_rate_limit_waits_are_capped(bot: Client, scripted: ScriptedHomeserver) -> None:
    bot.max_rate_limit_wait = 0.2
    scripted.script("GET", "/_matrix/client/v3/joined_rooms", (429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 3_600_000}),
                    (200, {"joined_rooms": []}))
    assert await asyncio.wait_for(bot.get_joined_rooms(), 2) == []
    first, second = scripted.requests
    assert 0.2 <= second.at - first.at < 1.0


async def test_transaction_ids_inside_handlers_are_derived_from_the_event(bot: Client, scripted: ScriptedHomeserver) -> None:
    @bot.on(TextMessage)
    async def answer(event: TextMessage) -> None:
        await bot.send_notice(event.room_id, "one")
        await bot.send_notice(event.room_id, "two")

    def message(event_id: str) -> TextMessage:
        raw = {"type": "m.room.message", "event_id": event_id, "sender": "@alice:s", "content": {"msgtype": "m.text", "body": "hi"}}
        return timeline_event(raw, ROOM)  # type: ignore[return-value]

    for event_id in ("$a", "$a", "$b"):  # "$a" twice: a handler re-run after a crash
        await bot.handle_event(message(event_id))
        await bot.drain()
    txn_ids = [r.path.rsplit("/", 1)[1] for r in scripted.requests]
    assert txn_ids[0:2] == txn_ids[2:4] and len(set(txn_ids)) == 4
    assert txn_ids[0] == derived_txn_id(f"{ROOM}|$a|on:{answer.__qualname__}", 0)
    assert len({bot.new_txn_id(), bot.new_txn_id()}) == 2  # outside a handler: random


async def test_the_sync_filter(bot: Client, scripted: ScriptedHomeserver) -> None:
    bot.timeout = 0
    await bot.sync()
    sent = orjson.loads(scripted.syncs()[-1].query["filter"])
    assert sent == {"room": {"timeline": {"limit": 50, "lazy_load_members": True}, "state": {"lazy_load_members": True}},
                    "presence": {"not_types": ["*"]}}
    bot.sync_filter = SyncFilter(timeline_limit=7, lazy_load_members=False, presence=True)
    await bot.sync()
    assert orjson.loads(scripted.syncs()[-1].query["filter"]) == {"room": {"timeline": {"limit": 7}, "state": {}}}
    bot.sync_filter = None
    await bot.sync()
    assert "filter" not in scripted.syncs()[-1].query
