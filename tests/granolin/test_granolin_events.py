"""Typed events: classification, fallbacks, raw JSON, and what a sync dispatches."""

from __future__ import annotations

import pytest

from granolin import (
    AccountDataEvent,
    AudioMessage,
    Client,
    EmoteMessage,
    EphemeralEvent,
    Event,
    FileMessage,
    ImageMessage,
    InvitationEvent,
    LocationMessage,
    MemberEvent,
    MessageEvent,
    NoticeMessage,
    ReactionEvent,
    RedactionEvent,
    RoomStateEvent,
    TextMessage,
    TimelineEvent,
    VideoMessage,
    current_room_id,
    timeline_event,
)


def message(msgtype: str | None, body: str = "hi", **extra: object) -> dict:
    content = {"body": body, **extra} | ({"msgtype": msgtype} if msgtype else {})
    return {"type": "m.room.message", "event_id": "$e", "sender": "@a:x", "content": content}


@pytest.mark.parametrize(
    ("msgtype", "cls"),
    [("m.text", TextMessage), ("m.image", ImageMessage), ("m.audio", AudioMessage), ("m.file", FileMessage),
     ("m.video", VideoMessage), ("m.emote", EmoteMessage), ("m.notice", NoticeMessage),
     ("m.location", LocationMessage), ("org.example.custom", MessageEvent), (None, MessageEvent)],
)
def test_messages_are_classified_by_msgtype(msgtype: str | None, cls: type) -> None:
    event = timeline_event(message(msgtype), "!r:x")
    assert type(event) is cls
    assert event.room_id == "!r:x" and event.body == "hi" and event.sender == "@a:x"


def test_other_timeline_events() -> None:
    assert type(timeline_event({"type": "org.example.unknown", "content": {}})) is TimelineEvent
    assert type(timeline_event({"type": "m.room.message", "content": "garbage"})) is MessageEvent
    reaction = timeline_event({"type": "m.reaction", "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$t", "key": "👍"}}})
    assert isinstance(reaction, ReactionEvent) and reaction.key == "👍" and reaction.reacts_to == "$t"
    redaction = timeline_event({"type": "m.room.redaction", "redacts": "$old", "content": {}})
    assert isinstance(redaction, RedactionEvent) and redaction.redacts == "$old"


def test_state_events() -> None:
    name = timeline_event({"type": "m.room.name", "state_key": "", "content": {"name": "Lobby"}, "unsigned": {"prev_content": {"name": "Old"}}})
    assert type(name) is RoomStateEvent and name.room_name == "Lobby" and name.prev_content == {"name": "Old"}
    aliases = timeline_event({"type": "m.room.canonical_alias", "state_key": "", "content": {"alias": "#a:x", "alt_aliases": ["#b:x"]}})
    assert aliases.room_aliases == ["#a:x", "#b:x"] and aliases.room_name is None
    old_aliases = timeline_event({"type": "m.room.aliases", "state_key": "x", "content": {"aliases": ["#c:x"]}})
    assert old_aliases.room_aliases == ["#c:x"]
    member = timeline_event({"type": "m.room.member", "state_key": "@b:x", "content": {"membership": "join", "displayname": "B"}})
    assert isinstance(member, MemberEvent) and member.membership == "join" and member.displayname == "B"


def test_media_and_reply_properties() -> None:
    image = timeline_event(message("m.image", "cat.png", url="mxc://x/abc", info={"w": 3}))
    assert image.url == "mxc://x/abc" and image.info == {"w": 3} and image.filename == "cat.png"
    reply = timeline_event(message("m.text", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}}))
    assert reply.in_reply_to == "$q" and reply.replaces is None
    edit = timeline_event(message("m.text", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}))
    assert edit.replaces == "$o"


def test_raw_json_is_always_reachable() -> None:
    raw = message("m.text", extra_field={"nested": [1]})
    event = timeline_event(raw)
    assert event.raw is raw and event.content["extra_field"] == {"nested": [1]}


def test_repr_shows_no_content() -> None:
    assert "secret" not in repr(timeline_event(message("m.text", "secret")))


SYNC = {
    "next_batch": "s2",
    "rooms": {
        "join": {
            "!r:x": {
                "state": {"events": [{"type": "m.room.name", "state_key": "", "content": {"name": "Lobby"}, "event_id": "$s"}]},
                "timeline": {"events": [message("m.text", "one"), message("m.text", "two"),
                                        {"type": "m.room.topic", "state_key": "", "content": {"topic": "t"}, "event_id": "$t"}]},
                "ephemeral": {"events": [{"type": "m.typing", "content": {"user_ids": []}}]},
                "account_data": {"events": [{"type": "m.tag", "content": {}}]},
            }
        },
        "invite": {"!i:x": {"invite_state": {"events": [{"type": "m.room.member", "state_key": "@bot:x", "sender": "@a:x", "content": {"membership": "invite"}}]}}},
        "leave": {"!l:x": {"timeline": {"events": [message("m.text", "gone"), {"type": "m.room.member", "state_key": "@bot:x", "content": {"membership": "leave"}}]}}},
    },
    "account_data": {"events": [{"type": "m.direct", "content": {}}]},
}


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(type(event).__name__, event.room_id) for event in events]


def test_sync_events_order_and_sections() -> None:
    client = Client("example.org", hardcopy=None)
    assert kinds(list(client.sync_events(SYNC))) == [
        ("RoomStateEvent", "!r:x"), ("TextMessage", "!r:x"), ("TextMessage", "!r:x"), ("RoomStateEvent", "!r:x"),
        ("EphemeralEvent", "!r:x"), ("AccountDataEvent", "!r:x"), ("InvitationEvent", "!i:x"),
        ("MemberEvent", "!l:x"), ("AccountDataEvent", None),
    ]


def test_first_sync_skips_the_backlog_but_keeps_state() -> None:
    client = Client("example.org", hardcopy=None)
    first = list(client.sync_events(SYNC, initial=True))
    assert not any(isinstance(event, MessageEvent) for event in first)
    assert sum(isinstance(event, RoomStateEvent) for event in first) == 3
    assert any(isinstance(event, InvitationEvent) for event in first)
    keeping = Client("example.org", hardcopy=None, skip_backlog=False)
    assert sum(isinstance(event, TextMessage) for event in keeping.sync_events(SYNC, initial=True)) == 2


async def test_each_event_is_its_own_object_and_knows_its_room() -> None:
    client = Client("example.org", hardcopy=None)
    client.user_id = "@bot:x"
    seen: list[tuple[Event, str | None]] = []

    @client.on(TextMessage, InvitationEvent, EphemeralEvent, AccountDataEvent)
    def keep(event: Event) -> None:
        seen.append((event, current_room_id.get()))

    await client.dispatch(SYNC)
    await client.drain()
    texts = [event for event, _ in seen if isinstance(event, TextMessage)]
    assert [event.body for event in texts] == ["one", "two"]
    assert texts[0] is not texts[1]
    assert all(room == event.room_id for event, room in seen)
    assert {type(event) for event, _ in seen} == {TextMessage, InvitationEvent, EphemeralEvent, AccountDataEvent}
    assert client.next_batch == "s2"
