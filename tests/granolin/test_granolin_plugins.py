"""The seed's plugins as mixins: MessageLog, AutoJoiner, ServerDirectory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from granolin import AutoJoiner, Client, InvitationEvent, MessageLog, ServerDirectory, TextMessage
from scripted_server import ScriptedHomeserver

V3 = "/_matrix/client/v3"


class Bot(AutoJoiner, ServerDirectory, MessageLog, Client):
    """All three plugins at once."""


def member(user: str, membership: str, name: str | None = None) -> dict[str, Any]:
    return {"type": "m.room.member", "state_key": user, "sender": user, "event_id": f"${user}{membership}",
            "content": {"membership": membership, **({"displayname": name} if name else {})}}


def joined(room_id: str, state: list[dict[str, Any]], timeline: list[dict[str, Any]] = ()) -> dict[str, Any]:
    return {room_id: {"state": {"events": state}, "timeline": {"events": list(timeline)}}}


@pytest.fixture
async def bot(scripted: ScriptedHomeserver, tmp_path: Path) -> Bot:
    client = Bot(scripted.url, hardcopy=tmp_path / "bot.json")
    client.user_id, client.access_token = "@bot:s", "token"
    yield client
    await client.close()


async def test_directory_tracks_rooms_members_and_direct(bot: Bot) -> None:
    await bot.dispatch({
        "next_batch": "s1",
        "rooms": {"join": {
            **joined("!games:s", [{"type": "m.room.name", "state_key": "", "content": {"name": "Games"}},
                                  {"type": "m.room.canonical_alias", "state_key": "", "content": {"alias": "#games:s"}},
                                  member("@bot:s", "join"), member("@alice:s", "join", "Alice")],
                     [member("@bob:s", "join", "Bobby"), member("@carol:s", "invite")]),
            **joined("!dm:s", [member("@bot:s", "join"), member("@alice:s", "join", "Alice")]),
        }},
        "account_data": {"events": [{"type": "m.direct", "content": {"@alice:s": ["!dm:s", "!gone:s"]}}]},
    })
    assert bot.room_name("!games:s") == "Games"
    assert bot.room_members("!games:s") == {"@bot:s": None, "@alice:s": "Alice", "@bob:s": "Bobby", "@carol:s": None}
    assert bot.find_rooms_by_name("games") == ["!games:s"] and bot.find_rooms_by_name("#GAMES:s") == ["!games:s"]
    assert bot.direct_rooms_with("@alice:s") == ["!dm:s"]
    assert await bot.ensure_direct_room("@alice:s") == "!dm:s"
    assert await bot.find_contact("bobby") == "@bob:s" and await bot.find_contact("alice") == "@alice:s"

    await bot.dispatch({"next_batch": "s2", "rooms": {
        "join": joined("!games:s", [], [member("@bob:s", "leave")]),
        "leave": {"!dm:s": {"timeline": {"events": [member("@bot:s", "leave")]}}},
    }})
    assert "@bob:s" not in bot.room_members("!games:s")
    assert "!dm:s" not in bot.rooms and bot.direct_rooms_with("@alice:s") == []

    restarted = Bot(bot.homeserver.url, hardcopy=bot.hardcopy)
    assert restarted.rooms == bot.rooms and restarted.direct == bot.direct and restarted.next_batch == "s2"


async def test_direct_room_creation_records_m_direct(bot: Bot, scripted: ScriptedHomeserver) -> None:
    scripted.script("POST", f"{V3}/createRoom", (200, {"room_id": "!new:s"}))
    scripted.script("PUT", f"{V3}/user/@bot:s/account_data/m.direct", (200, {}))
    assert await bot.ensure_direct_room("@dave:s") == "!new:s"
    create, account_data = scripted.requests
    assert orjson.loads(create.body) | {"visibility": "private"} == {
        "invite": ["@dave:s"], "is_direct": True, "preset": "trusted_private_chat", "visibility": "private"}
    assert orjson.loads(account_data.body) == {"@dave:s": ["!new:s"]}
    assert await bot.ensure_direct_room("@dave:s") == "!new:s"  # known now: no second room
    assert len(scripted.requests) == 2


async def test_find_contact_falls_back_to_the_user_directory(bot: Bot, scripted: ScriptedHomeserver) -> None:
    scripted.script("POST", f"{V3}/user_directory/search",
                    (200, {"limited": False, "results": [{"user_id": "@erin:s", "display_name": "Erin"}]}),
                    (200, {"limited": False, "results": []}))
    assert await bot.find_contact("Erin") == "@erin:s"
    assert orjson.loads(scripted.requests[0].body) == {"search_term": "Erin", "limit": 10}
    assert await bot.find_contact("nobody") is None


async def test_auto_joiner_joins_its_invitations_only(bot: Bot, scripted: ScriptedHomeserver) -> None:
    scripted.script("POST", f"{V3}/join/!inv:s", (200, {"room_id": "!inv:s"}))
    invite_state = [{"type": "m.room.name", "state_key": "", "sender": "@alice:s", "content": {"name": "Party"}},
                    {"type": "m.room.member", "state_key": "@bot:s", "sender": "@alice:s", "content": {"membership": "invite"}}]
    other = [{"type": "m.room.member", "state_key": "@someone:s", "sender": "@alice:s", "content": {"membership": "invite"}}]
    await bot.dispatch({"next_batch": "s1", "rooms": {"invite": {
        "!inv:s": {"invite_state": {"events": invite_state}},
        "!other:s": {"invite_state": {"events": other}},
    }}})
    assert [r.path for r in scripted.requests] == [f"{V3}/join/!inv:s"]


async def test_auto_joiner_can_be_selective(scripted: ScriptedHomeserver) -> None:
    class Picky(AutoJoiner, Client):
        def should_join(self, invitation: InvitationEvent) -> bool:
            return invitation.sender == "@friend:s"

    bot = Picky(scripted.url, hardcopy=None)
    bot.user_id = "@bot:s"
    await bot.handle_event(InvitationEvent({"type": "m.room.member", "state_key": "@bot:s", "sender": "@stranger:s",
                                            "content": {"membership": "invite"}}, "!r:s"))
    assert scripted.requests == []


async def test_message_log_writes_one_line_per_event(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    bot.on(TextMessage)(lambda event: seen.append(event.body))
    message = {"type": "m.room.message", "sender": "@alice:s", "event_id": "$m", "content": {"msgtype": "m.text", "body": "hello"}}
    with caplog.at_level(logging.INFO, logger="granolin.messages"):
        await bot.dispatch({"next_batch": "s1", "rooms": {"join": joined("!r:s", [member("@alice:s", "join")], [message])}})
        await bot.drain()
    lines = [r.getMessage() for r in caplog.records if r.name == "granolin.messages"]
    assert lines == ["!r:s @alice:s m.room.member [@alice:s]", "!r:s @alice:s m.room.message m.text: hello"]
    assert seen == ["hello"]  # the mixins call super(): decorators still run
