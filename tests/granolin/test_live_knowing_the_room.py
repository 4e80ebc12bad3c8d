"""The room store, its helpers, history reading, profile and edits against a real homeserver."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from granolin import Client, GranolinError, NoticeMessage, ServerDirectory, SyncFilter, TextMessage
from granolin.testing import TestHomeserver, TestUser
from live_support import requires_endpoint

V3 = "/_matrix/client/v3"


class Directory(ServerDirectory, Client):
    pass


async def setup(hs: TestHomeserver, **bot_options: object) -> tuple[Client, Client, TestUser, Directory, str]:
    alice_user, bob_user, bot_user = [await hs.register_user(name) for name in ("alice", "bob", "bot")]
    await requires_endpoint(hs, "POST", f"{V3}/createRoom", token=alice_user.access_token)
    alice, bob = hs.client(alice_user), hs.client(bob_user)
    bot = hs.client(bot_user, client_class=Directory, timeout=0, **bot_options)
    assert isinstance(bot, Directory)
    room = await alice.create_room("Lab", topic="experiments", room_alias_name=f"lab-{alice_user.localpart}",
                                   invite=[bob_user.user_id, bot_user.user_id])
    await bob.join_room(room)
    await bot.join_room(room)
    await bot.sync()  # the first sync: the room's state, no backlog
    return alice, bob, bob_user, bot, room


async def test_the_room_store_follows_the_state(live_hs: TestHomeserver) -> None:
    alice, bob, bob_user, bot, room = await setup(live_hs)
    async with alice, bob, bot:
        known = bot.get_room(room)
        assert known is not None and bot.get_room("!nowhere:x") is None
        assert (known.name, known.topic, known.join_rule, known.encrypted) == ("Lab", "experiments", "invite", False)
        assert known.canonical_alias is not None and known.canonical_alias.startswith("#lab-")
        assert bot.find_rooms_by_name("lab") == [room] and bot.find_rooms_by_name("la") == []
        assert bot.find_rooms_by_name("LA", like=True) == [room] and bot.find_rooms_by_name("la", like=True, full=True) == [known]

        await alice.send_state_event(room, "m.room.name", {"name": "Laboratory"})
        await alice.send_state_event(room, "m.room.power_levels", {**await alice.get_state(room, "m.room.power_levels"),
                                                                     "users": {alice.user_id: 100, bob.user_id: 50}})
        await bob.set_display_name("Robert")
        await bot.sync()
        await bot.drain()
        assert known.name == "Laboratory" and bot.room_name(room) == "Laboratory"
        assert bot.is_admin(room, alice.user_id) and not bot.is_admin(room, bob.user_id)
        assert (bot.power_level(room, bob.user_id), bot.power_level(room, "@stranger:x")) == (50, 0)
        assert bot.display_name(room, bob.user_id) == "Robert"
        text, html = bot.mention(room, bob.user_id)
        assert text == "Robert" and html == f'<a href="https://matrix.to/#/{bob.user_id}">Robert</a>'
        assert set(bot.client_contacts()) == {alice.user_id, bob.user_id}
        assert await bot.find_contact("robert") == bob.user_id
        assert await bot.find_contact(bob_user.localpart[:5], like=True) == bob.user_id  # "bob-1" in "@bob-1234abcd:..."

        restarted = Directory(bot.homeserver.url, hardcopy=None)
        restarted.restore_hardcopy_state(bot.hardcopy_state())
        assert restarted.get_room(room) == known  # saved with the hardcopy: an incremental sync does not resend it


async def test_admin_only_commands(live_hs: TestHomeserver) -> None:
    alice, bob, _, bot, room = await setup(live_hs)
    ran: list[str] = []

    @bot.command("!shutdown", help="Stop the experiment", power_level=50)
    async def shutdown(event: TextMessage) -> None:
        ran.append(event.sender or "")

    async with alice, bob, bot:
        await bob.send_text_message(room, "!shutdown")
        await alice.send_text_message(room, "!shutdown")
        await bot.sync()
        await bot.drain()
        assert ran == [alice.user_id]
        answers = [event async for event in alice.messages(room) if isinstance(event, NoticeMessage)]
        assert [event.body for event in answers] == ["!shutdown needs power level 50; yours is 0."]
        assert answers[0].in_reply_to is not None
        assert "!shutdown - Stop the experiment (power level 50)" in bot.commands.help_text()


async def test_reading_history_events_and_threads(live_hs: TestHomeserver) -> None:
    alice, bob, _, bot, room = await setup(live_hs)
    await requires_endpoint(live_hs, "GET", f"/_matrix/client/v1/rooms/{room}/threads", token=bot.access_token)
    async with alice, bob, bot:
        sent = [await alice.send_text_message(room, f"line {n}") for n in range(5)]
        root = sent[2]
        for n in range(3):
            await bob.send_event(room, "m.room.message", {"msgtype": "m.text", "body": f"reply {n}",
                                                          "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        newest_first = [event async for event in bot.messages(room, page_size=2) if isinstance(event, TextMessage)]
        assert [event.body for event in newest_first[:8]] == [*(f"reply {n}" for n in (2, 1, 0)), *(f"line {n}" for n in (4, 3, 2, 1, 0))]
        oldest_first = [event.body async for event in bot.messages(room, direction="f", event_filter={"types": ["m.room.message"]})]
        assert oldest_first[:2] == ["line 0", "line 1"]
        fetched = await bot.get_event(room, root)
        assert isinstance(fetched, TextMessage) and fetched.body == "line 2" and fetched.room_id == room
        assert [event.event_id async for event in bot.threads(room)] == [root]
        assert [event.body async for event in bot.thread(room, root, page_size=2)] == ["reply 0", "reply 1", "reply 2"]


async def test_profile_and_edits_keep_the_msgtype(live_hs: TestHomeserver) -> None:
    alice, bob, _, bot, room = await setup(live_hs)
    async with alice, bob, bot:
        avatar = await bot.upload("face.png", b"\x89PNG not really", content_type="image/png")
        await bot.set_display_name("Lab Bot")
        await bot.set_avatar(avatar)
        assert await bot.get_profile() == {"displayname": "Lab Bot", "avatar_url": avatar} | (await bot.get_profile())
        assert (await alice.get_profile(bot.user_id))["displayname"] == "Lab Bot"
        await bot.sync()
        member = bot.get_room(room).members[bot.user_id]  # type: ignore[union-attr]
        assert (member.displayname, member.avatar_url) == ("Lab Bot", avatar)

        notice = await bot.send_notice(room, "status: running")
        await bot.edit(room, notice, "status: {}", "done")  # known from its own send
        stranger = Client(live_hs.base_url, hardcopy=None)
        stranger.user_id, stranger.access_token, stranger.device_id = bot.user_id, bot.access_token, bot.device_id
        async with stranger:
            await stranger.edit(room, notice, "status: archived")  # read from the server
        edits = [event async for event in alice.messages(room) if isinstance(event, NoticeMessage) and event.replaces == notice]
        assert [(e.content["m.new_content"]["msgtype"], e.content["m.new_content"]["body"]) for e in edits] == [
            ("m.notice", "status: archived"), ("m.notice", "status: done")]


async def test_without_the_encryption_extra_an_encrypted_room_is_reported_once(
    live_hs: TestHomeserver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vodozemac", None)  # as where granolin[e2e] is not installed: the import fails
    alice, bob, _, bot, room = await setup(live_hs)
    assert bot.encryption is None and alice.encryption is None
    async with alice, bob, bot:
        with caplog.at_level(logging.WARNING, logger="granolin"):
            await alice.send_state_event(room, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
            for n in range(2):
                await alice.send_event(room, "m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": f"c{n}"})
                await bot.sync()
        assert bot.get_room(room).encrypted  # type: ignore[union-attr]
        warnings = [r.getMessage() for r in caplog.records if r.name == "granolin" and "encrypted" in r.getMessage()]
        assert len(warnings) == 1 and room in warnings[0] and "cannot decrypt" in warnings[0]
        # Nor does it write there in the clear: the server (and anyone reading its database) would see it.
        with pytest.raises(GranolinError, match="not sent in the clear"):
            await bot.send_text_message(room, "hello")
        assert not [event async for event in alice.messages(room) if event.type == "m.room.message"]


async def test_a_gap_past_the_limit_is_reported(live_hs: TestHomeserver, tmp_path: Path) -> None:
    gaps: list[tuple[str, str | None]] = []

    class Reporting(Directory):
        gap_fill_limit = 4

        async def on_gap(self, room_id: str, older_from: str | None) -> None:
            gaps.append((room_id, older_from))

    alice, bob, _, bot, room = await setup(live_hs, sync_filter=SyncFilter(timeline_limit=3))
    bot.__class__ = Reporting
    seen: list[str] = []
    bot.on(TextMessage)(lambda event: seen.append(event.body))
    async with alice, bob, bot:
        for n in range(12):
            await alice.send_text_message(room, f"m{n}")
        await bot.sync()
        await bot.drain()
        assert seen == [f"m{n}" for n in range(5, 12)]  # the 3 of the timeline and the 4 filled in
        ((gap_room, older_from),) = gaps
        assert gap_room == room and older_from is not None
        older = [event.body async for event in bot.messages(room, start=older_from) if isinstance(event, TextMessage)]
        assert older == [f"m{n}" for n in range(4, -1, -1)]
