"""Notification counts from the default push rules, on a real server on both engines.

Messages are sent over HTTP; counts and read positions go through `hs.push` directly, as
/sync and the receipts endpoint will.
"""

from __future__ import annotations

import itertools

import pytest

_txn = itertools.count()


class User:
    def __init__(self, api, registered: dict) -> None:
        self.api = api
        self.user_id = registered["user_id"]
        self.token = registered["access_token"]

    async def send(self, room_id: str, content: dict, event_type: str = "m.room.message") -> str:
        status, body = await self.api.put(f"/rooms/{room_id}/send/{event_type}/t{next(_txn)}", content, token=self.token)
        assert status == 200, body
        return body["event_id"]

    async def say(self, room_id: str, text: str, **extra) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": text, **extra})

    async def join(self, room_id: str) -> None:
        status, body = await self.api.post(f"/rooms/{room_id}/join", {}, token=self.token)
        assert status == 200, body


@pytest.fixture
async def people(api):
    return [User(api, await api.register(name)) for name in ("alice", "bob", "carol")]


async def create_room(user: User, **body) -> str:
    status, result = await user.api.post("/createRoom", body, token=user.token)
    assert status == 200, result
    return result["room_id"]


async def public_room(creator: User, *members: User) -> str:
    """A public room made by `creator` and joined by `members`."""
    room = await create_room(creator, preset="public_chat")
    for member in members:
        await member.join(room)
    return room


async def counts(hs, user: User, room_id: str) -> dict:
    return (await hs.push.counts(user.user_id, [room_id]))[room_id]


def pair(room: dict) -> tuple[int, int]:
    return room["notification_count"], room["highlight_count"]


async def read_all(hs, user: User, room_id: str, event_id: str, thread_id: str | None = None) -> None:
    await hs.push.mark_read(user.user_id, room_id, await hs.push.stream_ordering_of(event_id), thread_id)


async def test_one_to_one_room_notifies_the_other_member_only(homeserver, people):
    alice, bob, _ = people
    room = await create_room(alice, preset="trusted_private_chat", invite=[bob.user_id], is_direct=True)
    await bob.join(room)
    await alice.say(room, "hi")
    await alice.say(room, "are you there?")
    assert pair(await counts(homeserver, bob, room)) == (2, 0)  # bob's join read his invite
    assert pair(await counts(homeserver, alice, room)) == (0, 0)


async def test_group_room_counts_mentions_and_resets_on_read(homeserver, people):
    hs = homeserver
    alice, bob, carol = people
    room = await public_room(alice, bob, carol)
    status, body = await bob.api.put(f"/rooms/{room}/state/m.room.member/{bob.user_id}",
                                     {"membership": "join", "displayname": "Bobby Tables"}, token=bob.token)
    assert status == 200, body

    await alice.say(room, "morning all")
    assert pair(await counts(hs, bob, room)) == (1, 0)
    assert pair(await counts(hs, carol, room)) == (1, 0)

    await alice.say(room, "bobby tables, lunch?")  # display name
    await alice.say(room, "ask Bob")  # user ID localpart
    assert pair(await counts(hs, bob, room)) == (3, 2)
    assert pair(await counts(hs, carol, room)) == (3, 0)

    # m.mentions decides alone: carol's name in the body no longer highlights her.
    await alice.say(room, "carol said so", **{"m.mentions": {"user_ids": [bob.user_id]}})
    assert pair(await counts(hs, bob, room)) == (4, 3)
    assert pair(await counts(hs, carol, room)) == (4, 0)

    # @room needs the sender's notification power level (50): alice has 100, carol 0.
    await carol.say(room, "@room hello", **{"m.mentions": {"room": True}})
    last = await alice.say(room, "@room hello", **{"m.mentions": {"room": True}})
    assert pair(await counts(hs, bob, room)) == (6, 4)
    assert pair(await counts(hs, carol, room)) == (1, 1)  # sending read everything before

    await alice.send(room, {"msgtype": "m.notice", "body": "bobby tables, a notice"})
    assert pair(await counts(hs, bob, room)) == (6, 4)

    await read_all(hs, bob, room, last)
    assert pair(await counts(hs, bob, room)) == (0, 0)
    assert pair(await counts(hs, carol, room)) == (1, 1)
    # Read positions never move back.
    await hs.push.mark_read(bob.user_id, room, 1)
    assert pair(await counts(hs, bob, room)) == (0, 0)


async def test_threads_are_counted_apart_and_read_apart(homeserver, people):
    hs = homeserver
    alice, bob, carol = people
    room = await create_room(alice, preset="public_chat")
    other = await create_room(alice, preset="public_chat")
    for user in (bob, carol):
        await user.join(room)
        await user.join(other)
    root = await alice.say(room, "thread root")
    thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    first = await bob.say(room, "in the thread", **thread)
    await carol.say(room, "alice, look", **thread)
    await carol.say(other, "elsewhere")
    await carol.send(room, {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "x"}}, "m.reaction")
    main = await bob.say(room, "main timeline")

    both = await hs.push.counts(alice.user_id, [room, other])
    assert pair(both[room]) == (3, 1)
    assert both[room]["main"] == {"notification_count": 1, "highlight_count": 0}
    assert both[room]["threads"] == {root: {"notification_count": 2, "highlight_count": 1}}
    assert pair(both[other]) == (1, 0) and both[other]["threads"] == {}

    # A threaded receipt reads only its thread; the main timeline is "main".
    await read_all(hs, alice, room, first, root)
    assert (await counts(hs, alice, room))["threads"] == {root: {"notification_count": 1, "highlight_count": 1}}
    await read_all(hs, alice, room, main, "main")
    room_counts = await counts(hs, alice, room)
    assert pair(room_counts) == (1, 1) and pair(room_counts["main"]) == (0, 0)

    # An unthreaded receipt reads the main timeline and every thread up to it.
    await bob.say(room, "more", **thread)
    await read_all(hs, alice, room, main)
    room_counts = await counts(hs, alice, room)
    assert pair(room_counts) == (1, 0)
    assert room_counts["threads"] == {root: {"notification_count": 1, "highlight_count": 0}}


async def test_sending_reads_what_came_before_in_its_thread(homeserver, people):
    hs = homeserver
    alice, bob, _ = people
    room = await public_room(alice, bob)
    root = await bob.say(room, "hello")
    thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    await bob.say(room, "in a thread", **thread)
    assert pair(await counts(hs, alice, room)) == (2, 0)
    await alice.say(room, "hi bob")
    room_counts = await counts(hs, alice, room)
    assert pair(room_counts["main"]) == (0, 0)
    assert pair(room_counts) == (1, 0)
    assert await hs.push.store.unread(alice.user_id, [room]) == [(room, root, 1, 0)], "memory and database agree"
    await alice.say(room, "me too", **thread)
    room_counts = await counts(hs, alice, room)
    assert pair(room_counts) == (0, 0) and room_counts["threads"] == {}
    assert await hs.push.store.unread(alice.user_id, [room]) == []


async def test_invites_and_edits_and_members(homeserver, people):
    hs = homeserver
    alice, bob, carol = people
    room = await public_room(alice, bob)
    status, body = await alice.api.post(f"/rooms/{room}/invite", {"user_id": carol.user_id}, token=alice.token)
    assert status == 200, body
    assert pair(await counts(hs, carol, room)) == (1, 0)  # .m.rule.invite_for_me
    assert pair(await counts(hs, bob, room)) == (0, 0)  # .m.rule.member_event
    original = await alice.say(room, "typo")
    await alice.say(room, "* fixed", **{"m.new_content": {"msgtype": "m.text", "body": "fixed"},
                                        "m.relates_to": {"rel_type": "m.replace", "event_id": original}})
    assert pair(await counts(hs, bob, room)) == (1, 0)
    assert await hs.push.counts(bob.user_id, []) == {}


def counting_queries(hs, during=None) -> list[str]:
    """Wrap the count query: each call appends the user; `during(user_id)` (if given) is
    awaited while the query is in flight, before it reads, to commit something meanwhile."""
    asked: list[str] = []
    unread = hs.push.store.unread

    async def wrapped(user_id, room_ids):
        asked.append(user_id)
        if during is not None:
            await during(user_id)
        return await unread(user_id, room_ids)

    hs.push.store.unread = wrapped
    return asked


async def test_kept_counts_follow_new_highlights_and_receipts_without_a_query(homeserver, people):
    hs = homeserver
    alice, bob, carol = people
    room = await public_room(alice, bob, carol)
    await alice.say(room, "hello")
    asked = counting_queries(hs)
    assert pair(await counts(hs, bob, room)) == (1, 0)
    assert asked == [bob.user_id]

    await alice.say(room, "hello bob")  # a highlight, counted into what is kept
    await carol.say(room, "hi", **{"m.mentions": {"user_ids": [alice.user_id]}})  # bob: the generic outcome
    assert pair(await counts(hs, bob, room)) == (3, 1)
    assert asked == [bob.user_id], "served from memory"
    stored = await hs.push.store.unread(bob.user_id, [room])
    assert (sum(row[2] for row in stored), sum(row[3] for row in stored)) == (3, 1), "memory and database agree"

    last = await carol.say(room, "bye")
    await read_all(hs, bob, room, last)  # a receipt drops the kept counts: read afresh
    assert pair(await counts(hs, bob, room)) == (0, 0)
    assert asked == [bob.user_id, bob.user_id, bob.user_id]
    await alice.say(room, "bob?")
    assert pair(await counts(hs, bob, room)) == (1, 1)
    assert asked == [bob.user_id, bob.user_id, bob.user_id]


async def test_counts_read_while_another_room_changes_are_kept(homeserver, people):
    hs = homeserver
    alice, bob, carol = people
    room = await create_room(alice, preset="public_chat")
    other = await create_room(carol, preset="public_chat")
    await bob.join(room)
    await alice.join(other)
    await alice.say(room, "hello")
    receipt_room = await alice.say(other, "elsewhere")

    async def meanwhile(user_id):  # a message and a receipt in another room while bob's counts are read
        await carol.say(other, "busy elsewhere")
        await read_all(hs, alice, other, receipt_room)

    asked = counting_queries(hs, meanwhile)
    assert pair(await counts(hs, bob, room)) == (1, 0)
    assert pair(await counts(hs, bob, room)) == (1, 0)
    assert asked == [bob.user_id], "the change elsewhere did not stop the counts from being kept"


async def test_counts_read_while_their_room_changes_are_read_again(homeserver, people):
    hs = homeserver
    alice, bob, _ = people
    room = await public_room(alice, bob)
    await alice.say(room, "hello")
    sent = []

    async def meanwhile(user_id):  # a message into the same room commits while the query runs
        if not sent:
            sent.append(await alice.say(room, "while you were counting"))

    asked = counting_queries(hs, meanwhile)
    assert pair(await counts(hs, bob, room)) == (2, 0)
    assert pair(await counts(hs, bob, room)) == (2, 0), "not counted twice"
    assert asked == [bob.user_id, bob.user_id], "the first answer raced with the message: not kept"
    await alice.say(room, "and one more")
    assert pair(await counts(hs, bob, room)) == (3, 0)
    assert asked == [bob.user_id, bob.user_id]


async def test_counts_read_while_the_user_reads_are_read_again(homeserver, people):
    hs = homeserver
    alice, bob, _ = people
    room = await public_room(alice, bob)
    await alice.say(room, "hello")
    last = await alice.say(room, "anyone?")

    async def meanwhile(user_id):  # bob's receipt commits while his counts are read
        if len(asked) == 1:
            await read_all(hs, bob, room, last)

    asked = counting_queries(hs, meanwhile)
    assert pair(await counts(hs, bob, room)) == (0, 0)
    assert pair(await counts(hs, bob, room)) == (0, 0)
    assert asked == [bob.user_id, bob.user_id], "the first answer raced with the receipt: not kept"
