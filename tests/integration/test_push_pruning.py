"""Pruning notification rows (push/retention.py): what receipts made obsolete goes once
past the retention, and the counts and /notifications stay what they were."""

from __future__ import annotations

import time
from urllib.parse import quote

from ranvier.push.retention import DAY_MS
from tests.integration.test_push_counts import User, create_room, read_all

ROOM_ROWS = "SELECT COUNT(*) FROM room_notifications WHERE room_id = ?"
MEMBER_ROWS = "SELECT COUNT(*) FROM member_notifications WHERE room_id = ? AND user_id = ?"


async def _setup(api):
    alice, bob, carol, dave = [User(api, await api.register(name)) for name in ("alice", "bob", "carol", "dave")]
    room = await create_room(alice, preset="public_chat")
    for user in (bob, carol, dave):
        await user.join(room)
    # dave mutes the room: his own rows say "not for me" where the room's rows notify
    status, body = await api.put(f"/pushrules/global/room/{quote(room)}", {"actions": []}, token=dave.token)
    assert status == 200, body
    return alice, bob, carol, dave, room


async def _db_counts(hs, user: User, room: str) -> tuple[int, int]:
    """The counts as the database has them (not the server's cache of them)."""
    rows = await hs.push.store.unread(user.user_id, [room])
    return sum(r[2] for r in rows), sum(r[3] for r in rows)


async def _listed(api, user: User, **params) -> list[str]:
    status, body = await api.get("/notifications", token=user.token, params=params or None)
    assert status == 200, body
    return [n["event"]["event_id"] for n in body["notifications"]]


async def test_counts_stay_right_after_pruning(make_server):
    api = await make_server()
    hs = api.homeserver
    alice, bob, carol, dave, room = await _setup(api)
    sent = [await bob.say(room, f"message {n}") for n in range(6)]
    mention = await bob.say(room, "hello alice", **{"m.mentions": {"user_ids": [alice.user_id]}})
    sent.append(await bob.say(room, "after the mention"))
    await read_all(hs, alice, room, sent[2])  # alice has read three of the messages
    await read_all(hs, carol, room, sent[-1])  # carol, all of them
    await read_all(hs, dave, room, sent[-1])
    before = {user.user_id: await _db_counts(hs, user, room) for user in (alice, bob, carol, dave)}
    assert before[alice.user_id] == (5, 1) and before[carol.user_id] == (0, 0) and before[dave.user_id] == (0, 0)
    rows_before = await hs.db.fetchval(ROOM_ROWS, room)

    await hs.notification_pruner.prune(now_ms=int(time.time() * 1000) + 40 * DAY_MS)

    assert await hs.db.fetchval(ROOM_ROWS, room) == rows_before - 3  # what everyone has read
    after = {user.user_id: await _db_counts(hs, user, room) for user in (alice, bob, carol, dave)}
    assert after == before
    assert await hs.db.fetchval(MEMBER_ROWS, room, alice.user_id) == 1  # her unread mention
    # dave's rows say the room's remaining rows are not his: they stay with them
    assert await hs.db.fetchval(MEMBER_ROWS, room, dave.user_id) == rows_before - 3
    assert await _listed(api, dave) == []

    await read_all(hs, alice, room, sent[-1])
    await hs.notification_pruner.prune(now_ms=int(time.time() * 1000) + 40 * DAY_MS)
    assert await hs.db.fetchval(ROOM_ROWS, room) == 0
    assert await hs.db.fetchval(MEMBER_ROWS, room, alice.user_id) == 0
    assert await hs.db.fetchval(MEMBER_ROWS, room, dave.user_id) == 0
    assert mention not in await _listed(api, alice)
    for user in (alice, bob, carol, dave):
        assert await _db_counts(hs, user, room) == (0, 0)


async def test_notifications_stay_listed_for_their_retention(make_server):
    api = await make_server()
    hs = api.homeserver
    alice, bob, carol, dave, room = await _setup(api)
    plain = [await bob.say(room, f"message {n}") for n in range(3)]
    mention = await bob.say(room, "hello alice", **{"m.mentions": {"user_ids": [alice.user_id]}})
    for user in (alice, carol, dave):
        await read_all(hs, user, room, mention)
    listed = await _listed(api, alice)
    assert listed == [mention, *reversed(plain)]
    now = int(time.time() * 1000)

    await hs.notification_pruner.prune(now_ms=now)  # read, but younger than a day: all stay
    assert await _listed(api, alice) == listed
    assert await _listed(api, carol) == [mention, *reversed(plain)]

    await hs.notification_pruner.prune(now_ms=now + 2 * DAY_MS)  # a read notification stays a day
    assert await _listed(api, alice) == [mention]  # a highlight, 30 days
    assert await _listed(api, alice, only="highlight") == [mention]
    assert await _listed(api, carol) == []
    page = await _listed(api, alice, limit="1")
    assert page == [mention]

    unread = await bob.say(room, "nobody has read this one")
    await hs.notification_pruner.prune(now_ms=now + 40 * DAY_MS)
    assert await _listed(api, alice) == [unread]  # unread: kept whatever its age
    assert await _listed(api, carol) == [unread]
    assert await _listed(api, alice, only="highlight") == []
