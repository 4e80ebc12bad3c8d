"""mautrix-python (the asyncio framework under maubot and the mautrix bridges) against a real
ranvier, driven through its own API as a bot drives it: password login and the versions check,
rooms, state and members, messages with replies, edits, reactions and redactions read back,
threads, the sync loop with its event handlers (an invite joined at once, another user's
message answered, a rename told from a join), typing, receipts, account data, profile and
presence, media (authenticated download, thumbnails, a streamed upload, an upload to a
reserved media ID), aliases and the room directory, filters, push rules, to-device messages,
direct chats, knocks and moderation. A test fails if mautrix logged that an answer did not
parse or a sync failed.
Its end-to-end encryption is in test_mautrix_encryption.py."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from mautrix.api import MediaPath, Method, Path
from mautrix.client import Client, InternalEventType
from mautrix.errors import MatrixRequestError, MForbidden, MNotFound, MRoomInUse, MUnknownToken, MUnrecognized
from mautrix.types import (
    ContentURI,
    EventID,
    EventType,
    Filter,
    LoginType,
    Membership,
    MessageType,
    PaginationDirection,
    PowerLevelStateEventContent,
    PresenceState,
    PushActionType,
    PushRuleKind,
    PushRuleScope,
    RoomAlias,
    RoomCreatePreset,
    RoomDirectoryVisibility,
    RoomEventFilter,
    RoomFilter,
    RoomID,
    RoomNameStateEventContent,
    RoomTagInfo,
    RoomTopicStateEventContent,
    SpecVersions,
    StateEvent,
    TextMessageEventContent,
    UserID,
)

from mautrix_support import PASSWORD, bots, mautrix_trouble, wait_for  # noqa: F401 (fixtures)

pytestmark = pytest.mark.interop


async def test_login_versions_whoami_logout(bots, homeserver):
    bot = await bots("loginbot")
    versions = await bot.versions()
    assert versions.supports(SpecVersions.V111), versions.versions  # authenticated media
    assert versions.supports(SpecVersions.V13)
    flows = await bot.get_login_flows()
    assert flows.supports_type(LoginType.PASSWORD)

    who = await bot.whoami()
    assert who.user_id == "@loginbot:localhost" and who.device_id == bot.device_id

    second = Client(mxid=UserID("@loginbot:localhost"), base_url=homeserver.base_url)
    try:
        login = await second.login(password=PASSWORD, device_name="second")
        assert login.device_id != bot.device_id
        # What mautrix's update_hs_url would move to (0.21.1 then stores it as a str and its
        # next request fails, so a bot cannot use it as it is).
        assert login.well_known.homeserver.base_url == homeserver.base_url
        await second.logout(clear_access_token=False)
        with pytest.raises(MUnknownToken):
            await second.whoami()
    finally:
        await second.api.session.close()
    assert (await bot.whoami()).user_id == "@loginbot:localhost"  # the other device is untouched

    wrong = Client(mxid=UserID("@loginbot:localhost"), base_url=homeserver.base_url)
    try:
        with pytest.raises(MForbidden):
            await wrong.login(password="wrong")
    finally:
        await wrong.api.session.close()


async def test_rooms_state_and_members(bots):
    bot = await bots("statebot")
    friend = await bots("friend")
    room_id = await bot.create_room(name="Bot room", topic="first topic", preset=RoomCreatePreset.PRIVATE)
    assert await bot.get_joined_rooms() == [room_id]
    before_invite = (await bot.sync(timeout=0))["next_batch"]
    await bot.invite_user(room_id, friend.mxid)
    invited = await bot.get_members(room_id, membership=Membership.INVITE)
    assert [m.state_key for m in invited] == [friend.mxid]
    assert await friend.join_room_by_id(room_id) == room_id

    await bot.send_state_event(room_id, EventType.ROOM_NAME, RoomNameStateEventContent(name="Renamed"))
    await bot.send_state_event(room_id, EventType.ROOM_TOPIC, RoomTopicStateEventContent(topic="second topic"))
    levels = await bot.get_state_event(room_id, EventType.ROOM_POWER_LEVELS)
    assert isinstance(levels, PowerLevelStateEventContent) and levels.get_user_level(bot.mxid) == 100
    levels.set_user_level(friend.mxid, 50)
    await bot.send_state_event(room_id, EventType.ROOM_POWER_LEVELS, levels)

    assert (await friend.get_state_event(room_id, EventType.ROOM_NAME)).name == "Renamed"
    topic_event = await friend.get_state_event(room_id, EventType.ROOM_TOPIC, format="event")
    assert isinstance(topic_event, StateEvent) and topic_event.content.topic == "second topic"
    assert topic_event.sender == bot.mxid
    assert (await friend.get_state_event(room_id, EventType.ROOM_POWER_LEVELS)).get_user_level(friend.mxid) == 50
    with pytest.raises(MNotFound):
        await friend.get_state_event(room_id, EventType.ROOM_AVATAR)

    state = await friend.get_state(room_id)
    by_key = {(e.type, e.state_key): e for e in state}
    assert by_key[(EventType.ROOM_CREATE, "")].sender == bot.mxid
    assert by_key[(EventType.ROOM_MEMBER, friend.mxid)].content.membership == Membership.JOIN
    assert by_key[(EventType.ROOM_NAME, "")].content.name == "Renamed"

    joined = await friend.get_joined_members(room_id)
    assert set(joined) == {bot.mxid, friend.mxid}
    assert joined[friend.mxid].displayname == "friend"

    # The member list at a token from before the invite (a sync's, or a page's end) shows the
    # room creator alone.
    assert [m.state_key for m in await bot.get_members(room_id, at=before_invite)] == [bot.mxid]
    early = await bot.get_messages(room_id, PaginationDirection.FORWARD, limit=3)
    members_then = await bot.get_members(room_id, at=early.end)
    assert {m.state_key for m in members_then if m.content.membership == Membership.JOIN} == {bot.mxid}
    members_now = await bot.get_members(room_id, membership=Membership.JOIN)
    assert {m.state_key for m in members_now} == {bot.mxid, friend.mxid}

    await friend.leave_room(room_id)
    left = await bot.get_members(room_id, not_membership=Membership.JOIN)
    assert [(m.state_key, m.content.membership) for m in left] == [(friend.mxid, Membership.LEAVE)]
    await bot.ban_user(room_id, friend.mxid, reason="spam")
    banned = await bot.get_members(room_id, membership=Membership.BAN)
    assert [m.state_key for m in banned] == [friend.mxid] and banned[0].content.reason == "spam"


async def test_messages_replies_edits_reactions_redactions(bots):
    bot = await bots("chatbot")
    room_id = await bot.create_room(name="Chat")
    text_id = await bot.send_text(room_id, "hello", html="<b>hello</b>")
    notice_id = await bot.send_notice(room_id, "a notice")
    emote_id = await bot.send_emote(room_id, "waves")
    reply = TextMessageEventContent(msgtype=MessageType.TEXT, body="a reply")
    reply.set_reply(text_id)
    reply_id = await bot.send_message(room_id, reply)
    edit = TextMessageEventContent(msgtype=MessageType.TEXT, body="hello again")
    edit.set_edit(text_id)  # mautrix writes m.new_content and the "* " fallback itself
    edit_id = await bot.send_message(room_id, edit)
    reaction_id = await bot.react(room_id, text_id, "👍")
    redaction_id = await bot.redact(room_id, notice_id, reason="oops")

    page = await bot.get_messages(room_id, PaginationDirection.BACKWARD, limit=7)
    newest_first = [e.event_id for e in page.events]
    assert newest_first == [redaction_id, reaction_id, edit_id, reply_id, emote_id, notice_id, text_id]
    assert page.end and page.start
    by_id = {e.event_id: e for e in page.events}
    assert by_id[text_id].content.formatted_body == "<b>hello</b>"
    assert by_id[emote_id].content.msgtype == MessageType.EMOTE and by_id[emote_id].content.body == "waves"
    assert by_id[reply_id].content.get_reply_to() == text_id
    assert by_id[edit_id].content.get_edit() == text_id
    assert by_id[edit_id].content.body == "hello again"  # mautrix reads m.new_content
    assert by_id[reaction_id].content.relates_to.key == "👍"
    assert by_id[redaction_id].redacts == notice_id
    assert by_id[notice_id].content.serialize() == {}  # redacted in place

    fetched = await bot.get_event(room_id, text_id)
    assert fetched.content.body == "hello" and fetched.sender == bot.mxid
    redacted = await bot.get_event(room_id, notice_id)
    assert redacted.type == EventType.ROOM_MESSAGE and "body" not in redacted.content.serialize()
    raw_redacted = await bot.api.request(Method.GET, Path.v3.rooms[room_id].event[notice_id])
    assert raw_redacted["unsigned"]["redacted_because"]["event_id"] == redaction_id
    assert (await bot.get_event(room_id, redaction_id)).content.reason == "oops"

    context = await bot.get_event_context(room_id, reply_id, limit=2)
    assert context.event.event_id == reply_id
    assert [e.event_id for e in context.events_before] == [emote_id]
    assert [e.event_id for e in context.events_after] == [edit_id]

    # mautrix has no method for /relations; a bot calls it through mautrix's own request and paths.
    relations = await bot.api.request(Method.GET, Path.v1.rooms[room_id].relations[text_id])
    assert {e["event_id"] for e in relations["chunk"]} == {edit_id, reaction_id}
    raw_edit = next(e for e in relations["chunk"] if e["event_id"] == edit_id)
    assert raw_edit["content"]["body"] == "* hello again"
    assert raw_edit["content"]["m.new_content"] == {"msgtype": "m.text", "body": "hello again"}
    annotations = await bot.api.request(Method.GET, Path.v1.rooms[room_id].relations[text_id]["m.annotation"])
    assert [e["event_id"] for e in annotations["chunk"]] == [reaction_id]

    # The page after the first goes on from its end token.
    older = await bot.get_messages(room_id, PaginationDirection.BACKWARD, from_token=page.end, limit=100)
    assert older.events and all(e.event_id not in by_id for e in older.events)
    assert older.events[-1].type == EventType.ROOM_CREATE


async def test_sync_loop_joins_on_invite_and_answers(bots, api):
    bot = await bots("echobot")
    friend = await bots("human")
    answered = asyncio.Event()
    seen: list = []
    stopped: list = []

    async def on_member(evt: StateEvent) -> None:
        if evt.state_key == bot.mxid and evt.content.membership == Membership.INVITE:
            await bot.join_room_by_id(evt.room_id)
        elif evt.state_key == friend.mxid:
            seen.append(evt)

    async def on_message(evt) -> None:
        if evt.sender == bot.mxid:
            return
        seen.append(evt)
        reply = TextMessageEventContent(msgtype=MessageType.NOTICE, body=f"you said {evt.content.body}")
        reply.set_reply(evt)
        await bot.send_message(evt.room_id, reply)
        answered.set()

    async def on_typing(evt) -> None:
        seen.append(evt)

    async def on_stopped(error=None, **_) -> None:
        stopped.append(error)

    bot.add_event_handler(EventType.ROOM_MEMBER, on_member)
    bot.add_event_handler(EventType.ROOM_MESSAGE, on_message)
    bot.add_event_handler(EventType.TYPING, on_typing)
    bot.add_event_handler(InternalEventType.SYNC_STOPPED, on_stopped)
    bot.ignore_initial_sync = True
    bot.presence = PresenceState.UNAVAILABLE  # sent as each sync's set_presence
    bot.start(Filter())
    await wait_for(lambda: bot.sync_store.get_next_batch(), what="the first sync")

    room_id = await friend.create_room(invitees=[bot.mxid])
    await wait_for(lambda: bot.get_joined_rooms(), what="the bot to join")
    assert (await friend.get_joined_members(room_id)).keys() == {bot.mxid, friend.mxid}
    await friend.set_typing(room_id, 5000)
    message_id = await friend.send_text(room_id, "ping")
    await asyncio.wait_for(answered.wait(), 10)
    messages = [e for e in seen if getattr(e, "type", None) == EventType.ROOM_MESSAGE]
    assert [(e.event_id, e.content.body, e.room_id) for e in messages] == [(message_id, "ping", room_id)]
    await wait_for(lambda: any(e.type == EventType.TYPING and friend.mxid in e.content.user_ids for e in seen),
                   what="the typing notification")

    page = await friend.get_messages(room_id, PaginationDirection.BACKWARD, limit=1)
    answer = page.events[0]
    assert answer.sender == bot.mxid and answer.content.body == "you said ping"
    assert answer.content.get_reply_to() == message_id

    # A bot tells a rename from a join by the member event's previous content (unsigned.prev_content).
    await friend.set_displayname("Human Being")
    renamed = await wait_for(lambda: [e for e in seen if getattr(e, "type", None) == EventType.ROOM_MEMBER
                                      and e.content.displayname == "Human Being"], what="the rename")
    assert renamed[0].content.membership == Membership.JOIN
    assert (renamed[0].prev_content.membership, renamed[0].prev_content.displayname) == (Membership.JOIN, "human")
    assert (await friend.get_presence(bot.mxid)).presence == PresenceState.UNAVAILABLE
    assert not stopped, stopped


async def test_typing_receipts_account_data_profile_presence(bots):
    bot = await bots("busybot")
    friend = await bots("reader")
    room_id = await bot.create_room(invitees=[friend.mxid])
    await friend.join_room_by_id(room_id)
    event_id = await bot.send_text(room_id, "read me")

    await friend.set_typing(room_id, 10000)
    await friend.send_receipt(room_id, event_id)
    await friend.set_fully_read_marker(room_id, event_id, read_receipt=event_id)
    synced = await bot.sync(timeout=0)
    ephemeral = {e["type"]: e["content"] for e in synced["rooms"]["join"][room_id]["ephemeral"]["events"]}
    assert ephemeral["m.typing"]["user_ids"] == [friend.mxid]
    assert friend.mxid in ephemeral["m.receipt"][event_id]["m.read"]
    await friend.set_typing(room_id, 0)
    after = await bot.sync(since=synced["next_batch"], timeout=0)
    typing = [e for e in after["rooms"]["join"][room_id]["ephemeral"]["events"] if e["type"] == "m.typing"]
    assert typing and typing[-1]["content"]["user_ids"] == []
    fully_read = await friend.get_account_data("m.fully_read", room_id)
    assert fully_read == {"event_id": event_id}

    await bot.set_account_data("org.example.bot.config", {"prefix": "!"})
    await bot.set_account_data("org.example.bot.room", {"muted": True}, room_id)
    assert await bot.get_account_data("org.example.bot.config") == {"prefix": "!"}
    assert await bot.get_account_data("org.example.bot.room", room_id) == {"muted": True}
    with pytest.raises(MNotFound):
        await friend.get_account_data("org.example.bot.config")
    await bot.set_room_tag(room_id, "u.bots", RoomTagInfo(order=0.5))
    assert (await bot.get_room_tag(room_id, "u.bots")).order == 0.5

    await bot.set_displayname("Busy Bot")
    await bot.set_avatar_url(ContentURI("mxc://localhost/avatar"))
    assert await friend.get_displayname(bot.mxid) == "Busy Bot"
    assert await friend.get_avatar_url(bot.mxid) == "mxc://localhost/avatar"
    profile = await friend.get_profile(bot.mxid)
    assert (profile.displayname, profile.avatar_url) == ("Busy Bot", "mxc://localhost/avatar")
    joined = await friend.get_joined_members(room_id)
    assert joined[bot.mxid].displayname == "Busy Bot"  # the member event follows the profile

    await bot.set_presence(PresenceState.UNAVAILABLE, status="thinking")
    presence = await friend.get_presence(bot.mxid)
    assert presence.presence == PresenceState.UNAVAILABLE and presence.status_msg == "thinking"
    await bot.set_presence(PresenceState.ONLINE)
    assert (await friend.get_presence(bot.mxid)).presence == PresenceState.ONLINE


async def test_media_upload_download_thumbnail(bots):
    from PIL import Image

    bot = await bots("mediabot")
    config = await bot.get_media_repo_config()
    assert config.upload_size and config.upload_size > 1024

    data = b"plain bytes from a bot\n" * 100
    mxc = await bot.upload_media(data, mime_type="text/plain", filename="notes.txt")
    assert mxc.startswith("mxc://localhost/")
    assert await bot.download_media(mxc) == data  # over /_matrix/client/v1/media, with the token

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 40)).save(buffer, "PNG")
    image_mxc = await bot.upload_media(buffer.getvalue(), mime_type="image/png", filename="red.png")
    thumbnail = await bot.download_thumbnail(image_mxc, width=64, height=48, resize_method="scale")
    small = Image.open(io.BytesIO(thumbnail))
    # At least the size asked for, in the picture's proportions, and smaller than the picture.
    assert 64 <= small.width < 640 and 48 <= small.height < 480 and small.width * 3 == small.height * 4
    assert small.convert("RGB").getpixel((10, 10))[0] > 150

    async def stream():  # a bridge passes a file on as it arrives: no Content-Length, chunked
        for n in range(8):
            yield bytes([n]) * 65536

    streamed = await bot.upload_media(stream(), mime_type="application/octet-stream")
    assert await bot.download_media(streamed) == b"".join(bytes([n]) * 65536 for n in range(8))

    room_id = await bot.create_room()
    file_event = await bot.send_file(room_id, mxc, file_name="notes.txt", file_type=MessageType.FILE)
    sent = await bot.get_event(room_id, file_event)
    assert sent.content.msgtype == MessageType.FILE and sent.content.url == mxc


async def test_aliases_and_room_directory(bots):
    bot = await bots("dirbot")
    visitor = await bots("visitor")
    room_id = await bot.create_room(name="Bot lobby", topic="ask the bot", alias_localpart="lobby",
                                    visibility=RoomDirectoryVisibility.PUBLIC, preset=RoomCreatePreset.PUBLIC)
    assert (await visitor.resolve_room_alias(RoomAlias("#lobby:localhost"))).room_id == room_id
    await bot.add_room_alias(room_id, "lobby2")
    info = await visitor.resolve_room_alias(RoomAlias("#lobby2:localhost"))
    assert info.room_id == room_id and info.servers == ["localhost"]
    with pytest.raises(MRoomInUse):
        await bot.add_room_alias(room_id, "lobby2")
    await bot.add_room_alias(room_id, "lobby2", override=True)

    assert await visitor.get_room_directory_visibility(room_id) == RoomDirectoryVisibility.PUBLIC
    listing = await visitor.get_room_directory()
    entry = next(r for r in listing.chunk if r.room_id == room_id)
    assert (entry.name, entry.topic, entry.canonical_alias, entry.num_joined_members) == (
        "Bot lobby", "ask the bot", "#lobby:localhost", 1)
    searched = await visitor.get_room_directory(search_query="lobby", limit=5)
    assert [r.room_id for r in searched.chunk] == [room_id]

    assert await visitor.join_room("#lobby2:localhost") == room_id
    assert (await bot.get_joined_members(room_id)).keys() == {bot.mxid, visitor.mxid}

    await bot.set_room_directory_visibility(room_id, RoomDirectoryVisibility.PRIVATE)
    assert await visitor.get_room_directory_visibility(room_id) == RoomDirectoryVisibility.PRIVATE
    assert room_id not in [r.room_id for r in (await visitor.get_room_directory(search_query="lobby")).chunk]
    await bot.remove_room_alias("lobby2")
    with pytest.raises(MNotFound):
        await visitor.resolve_room_alias(RoomAlias("#lobby2:localhost"))


async def test_filters_directory_push_rules_to_device_and_dms(bots, homeserver):
    bot = await bots("toolbot")
    friend = await bots("toolfriend")
    await friend.set_displayname("Tool Friend")

    filter_id = await bot.create_filter(Filter(room=RoomFilter(timeline=RoomEventFilter(limit=5))))
    stored = await bot.get_filter(filter_id)
    assert stored.room.timeline.limit == 5
    busy_room = await bot.create_room()
    sent = [await bot.send_text(busy_room, f"line {n}") for n in range(6)]
    timeline = (await bot.sync(filter_id=filter_id, timeout=0))["rooms"]["join"][busy_room]["timeline"]
    assert [e["event_id"] for e in timeline["events"]] == sent[1:] and timeline["limited"] is True

    await bot.set_push_rule(PushRuleScope.GLOBAL, PushRuleKind.CONTENT, "bot.keyword",
                            [PushActionType.NOTIFY], pattern="deploy")
    rule = await bot.get_push_rule(PushRuleScope.GLOBAL, PushRuleKind.CONTENT, "bot.keyword")
    assert (rule.rule_id, rule.pattern, rule.enabled, rule.default) == ("bot.keyword", "deploy", True, False)
    await bot.remove_push_rule(PushRuleScope.GLOBAL, PushRuleKind.CONTENT, "bot.keyword")
    with pytest.raises(MNotFound):
        await bot.get_push_rule(PushRuleScope.GLOBAL, PushRuleKind.CONTENT, "bot.keyword")

    first = await friend.sync(timeout=0)
    await bot.send_to_device(EventType("org.example.ping", EventType.Class.TO_DEVICE),
                             {friend.mxid: {friend.device_id: {"n": 1}}})
    later = await friend.sync(since=first["next_batch"], timeout=0)
    assert [(e["type"], e["sender"], e["content"]) for e in later["to_device"]["events"]] == [
        ("org.example.ping", bot.mxid, {"n": 1})]
    await bot.send_to_device(EventType("org.example.ping", EventType.Class.TO_DEVICE), {friend.mxid: {"*": {"n": 2}}})
    latest = await friend.sync(since=later["next_batch"], timeout=0)
    assert [e["content"] for e in latest["to_device"]["events"]] == [{"n": 2}]  # "*": every device

    # A direct chat as bots open one: trusted private preset, is_direct, the power levels overridden.
    levels = PowerLevelStateEventContent(users={bot.mxid: 100, friend.mxid: 100})
    dm_id = await bot.create_room(preset=RoomCreatePreset.TRUSTED_PRIVATE, is_direct=True,
                                  invitees=[friend.mxid], power_level_override=levels, room_version="10")
    invite = (await friend.sync(timeout=0))["rooms"]["invite"][dm_id]["invite_state"]["events"]
    mine = next(e for e in invite if e["type"] == "m.room.member" and e["state_key"] == friend.mxid)
    assert mine["content"]["is_direct"] is True
    create = await bot.get_state_event(dm_id, EventType.ROOM_CREATE)
    assert create.room_version == "10"
    assert (await bot.get_state_event(dm_id, EventType.ROOM_POWER_LEVELS)).get_user_level(friend.mxid) == 100
    assert (await bot.search_users("tool friend")).results == []  # no room shared yet
    await friend.join_room_by_id(dm_id)
    found = await bot.search_users("tool friend")
    assert [u.user_id for u in found.results] == [friend.mxid] and not found.limit
    # mautrix 0.21.1 reads a result's name from `displayname`; the spec (and Synapse) name it `display_name`.
    raw = await bot.api.request(Method.POST, Path.v3.user_directory.search, {"search_term": "tool friend"})
    assert [(u["user_id"], u["display_name"]) for u in raw["results"]] == [(friend.mxid, "Tool Friend")]
    await friend.leave_room(dm_id)
    await friend.forget_room(dm_id)
    assert dm_id not in (await friend.get_joined_rooms())

    # Knocking on a room whose join rule allows it; the bot lets the knocker in.
    knock_room = await bot.create_room(room_version="10", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}])
    assert await friend.knock_room(knock_room, reason="let me in") == knock_room
    knocks = await bot.get_members(knock_room, membership=Membership.KNOCK)
    assert [(m.state_key, m.content.reason) for m in knocks] == [(friend.mxid, "let me in")]
    await bot.invite_user(knock_room, friend.mxid)
    assert await friend.join_room(knock_room) == knock_room

    await bot.logout_all(clear_access_token=False)
    with pytest.raises(MUnknownToken):
        await bot.whoami()


async def test_asynchronous_upload_to_a_created_media_id(bots):
    bot = await bots("asyncbot")
    created = await bot.create_mxc()
    assert created.content_uri.startswith("mxc://localhost/")
    # mautrix 0.21.1 reads the expiry as `unused_expired_at`; the spec names it `unused_expires_at`.
    raw = await bot.api.request(Method.POST, MediaPath.v1.create)
    assert raw["unused_expires_at"] > time.time() * 1000 and raw["content_uri"] != created.content_uri
    data = b"uploaded after the ID was handed out"
    assert await bot.upload_media(data, mime_type="text/plain", mxc=created.content_uri) == created.content_uri
    assert await bot.download_media(created.content_uri, timeout_ms=5000) == data
    with pytest.raises(MatrixRequestError) as again:
        await bot.upload_media(b"a second time", mime_type="text/plain", mxc=created.content_uri)
    assert again.value.errcode == "M_CANNOT_OVERWRITE_MEDIA"

    background = await bot.upload_media(data[::-1], mime_type="text/plain", async_upload=True)
    assert await bot.download_media(background, timeout_ms=10000) == data[::-1]


async def test_moderation_private_receipts_and_errors(bots):
    bot = await bots("modbot")
    member = await bots("member")
    room_id = await bot.create_room(preset=RoomCreatePreset.PUBLIC)
    await member.join_room_by_id(room_id)
    event_id = await member.send_text(room_id, "hi")

    await bot.send_receipt(room_id, event_id, "m.read.private")
    synced = await bot.sync(timeout=0)
    receipts = [e["content"] for e in synced["rooms"]["join"][room_id]["ephemeral"]["events"] if e["type"] == "m.receipt"]
    assert receipts and bot.mxid in receipts[-1][event_id]["m.read.private"]
    member_view = await member.sync(timeout=0)
    theirs = [e["content"] for e in member_view["rooms"]["join"][room_id]["ephemeral"]["events"] if e["type"] == "m.receipt"]
    assert all("m.read.private" not in c.get(event_id, {}) for c in theirs)  # private to the bot

    await bot.kick_user(room_id, member.mxid, reason="cool down")
    kicked = await bot.get_state_event(room_id, EventType.ROOM_MEMBER, member.mxid, format="event")
    assert (kicked.content.membership, kicked.content.reason, kicked.sender) == (Membership.LEAVE, "cool down", bot.mxid)
    await bot.ban_user(room_id, member.mxid, reason="again")
    with pytest.raises(MForbidden):
        await member.join_room_by_id(room_id)
    await bot.unban_user(room_id, member.mxid, reason="forgiven")
    assert await member.join_room_by_id(room_id) == room_id
    with pytest.raises(MForbidden):  # power level 0 may not kick
        await member.kick_user(room_id, bot.mxid)

    with pytest.raises(MNotFound):
        await bot.get_profile(UserID("@nobody:localhost"))
    with pytest.raises(MNotFound):
        await bot.get_event(room_id, EventID("$doesnotexist"))
    with pytest.raises((MForbidden, MNotFound)):  # ranvier says the room is unknown; Synapse, 403
        await bot.get_messages(RoomID("!notjoined:localhost"), PaginationDirection.BACKWARD)
    with pytest.raises(MUnrecognized):  # URL previews are off unless configured, as in Synapse
        await bot.get_url_preview("http://127.0.0.1:9/")


async def test_threads_as_bots_answer_in_them(bots):
    bot = await bots("threadbot")
    room_id = await bot.create_room()
    root_id = await bot.send_text(room_id, "!help")
    answer = TextMessageEventContent(msgtype=MessageType.NOTICE, body="commands: ...")
    answer.set_thread_parent(root_id)  # with the reply fallback to the root, as mautrix writes it
    answer_id = await bot.send_message(room_id, answer)
    follow = TextMessageEventContent(msgtype=MessageType.TEXT, body="thanks")
    follow.set_thread_parent(root_id, last_event_in_thread=answer_id)
    follow_id = await bot.send_message(room_id, follow)

    sent = await bot.get_event(room_id, follow_id)
    assert sent.content.get_thread_parent() == root_id and sent.content.get_reply_to() == answer_id
    thread = await bot.api.request(Method.GET, Path.v1.rooms[room_id].relations[root_id]["m.thread"])
    assert [e["event_id"] for e in thread["chunk"]] == [follow_id, answer_id]
    threads = await bot.api.request(Method.GET, Path.v1.rooms[room_id].threads)
    assert [e["event_id"] for e in threads["chunk"]] == [root_id]
    summary = threads["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2 and summary["latest_event"]["event_id"] == follow_id
    assert summary["current_user_participated"] is True
