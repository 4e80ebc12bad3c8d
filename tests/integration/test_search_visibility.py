"""What POST /search may find, over real HTTP on both engines: only what /messages shows
(late joiners, leavers, invitees, forgotten rooms, strangers), never redacted or
encrypted events, nothing from ignored users; and an existing database indexed by the
migration."""

from __future__ import annotations

import logging
from urllib.parse import quote

import aiohttp
import pytest

from ranvier.server import Homeserver
from ranvier.storage.engine import open_database
from tests.conftest import Api
from tests.integration.test_search import ids, search, send


async def visible_through_messages(api: Api, token: str, room_id: str) -> set[str]:
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "100"}, token=token)
    if status == 403:
        return set()
    assert status == 200, page
    return {e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"}


@pytest.mark.parametrize("visibility, sees_earlier", [("shared", True), ("joined", False), ("invited", False),
                                                      ("world_readable", True)])
async def test_a_late_joiner_finds_what_messages_shows_them(api, visibility, sees_earlier):
    alice_reg, bob_reg = await api.register_all("alice", "bob")
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    room = await api.create_room(alice, preset="public_chat")
    await api.put(f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": visibility}, token=alice)
    early = await api.send_text(alice, room, "plans made before bob")
    await api.post(f"/rooms/{room}/join", {}, token=bob)
    late = await api.send_text(alice, room, "plans made with bob")
    found = set(ids(await search(api, bob, "plans")))
    assert found == ({early, late} if sees_earlier else {late})
    assert found == await visible_through_messages(api, bob, room)
    assert (await search(api, bob, "plans"))["count"] == len(found)


async def test_a_leaver_finds_nothing_said_after_leaving_and_a_forgetter_nothing_at_all(api):
    alice_reg, bob_reg = await api.register_all("alice", "bob")
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    room = await api.create_room(alice, preset="public_chat")
    await api.put(f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "shared"}, token=alice)
    await api.post(f"/rooms/{room}/join", {}, token=bob)
    during = await api.send_text(alice, room, "gossip while bob is here")
    await api.post(f"/rooms/{room}/leave", {}, token=bob)
    await api.send_text(alice, room, "gossip after bob left")
    answer = await search(api, bob, "gossip", order_by="recent")
    assert ids(answer) == [during] and answer["count"] == 1
    assert set(ids(answer)) == await visible_through_messages(api, bob, room)
    assert (await api.post(f"/rooms/{room}/join", {}, token=bob))[0] == 200  # back: shared history is readable again
    assert len(ids(await search(api, bob, "gossip"))) == 2
    await api.post(f"/rooms/{room}/leave", {}, token=bob)
    assert (await api.post(f"/rooms/{room}/forget", {}, token=bob))[0] == 200
    assert (await search(api, bob, "gossip"))["results"] == []


async def test_an_invitee_finds_what_the_invited_setting_shows_and_a_stranger_nothing(api):
    alice_reg, bob_reg, carol_reg = await api.register_all("alice", "bob", "carol")
    alice, bob, carol = alice_reg["access_token"], bob_reg["access_token"], carol_reg["access_token"]
    room = await api.create_room(alice)
    await api.put(f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "invited"}, token=alice)
    await api.send_text(alice, room, "agenda before the invite")
    await api.post(f"/rooms/{room}/invite", {"user_id": bob_reg["user_id"]}, token=alice)
    invited = await api.send_text(alice, room, "agenda while bob is invited")
    assert ids(await search(api, bob, "agenda")) == [invited]
    assert await search(api, carol, "agenda") == {"results": [], "count": 0, "highlights": ["agenda"]}


async def test_history_before_joining_stays_hidden_in_a_busy_room_over_several_pages(api):
    alice_reg, bob_reg = await api.register_all("alice", "bob")
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    room = await api.create_room(alice, preset="public_chat")
    await api.put(f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "joined"}, token=alice)
    for i in range(15):
        await api.send_text(alice, room, f"status update {i}")
    await api.post(f"/rooms/{room}/join", {}, token=bob)
    after = [await api.send_text(alice, room, f"status update {i} for bob") for i in range(4)]
    for order in ("rank", "recent"):
        first = await search(api, bob, "status", order_by=order, filter={"limit": 3})
        assert first["count"] == 4
        second = await search(api, bob, "status", order_by=order, filter={"limit": 3}, next_batch=first["next_batch"])
        assert sorted(ids(first) + ids(second)) == sorted(after) and "next_batch" not in second


async def test_a_redacted_event_leaves_the_index(api):
    alice = (await api.register("alice"))["access_token"]
    room = await api.create_room(alice, name="Secret room")
    kept = await api.send_text(alice, room, "secret number one")
    gone = await api.send_text(alice, room, "secret number two")
    assert set(ids(await search(api, alice, "secret"))) == {kept, gone, (await api.get(
        f"/rooms/{room}/state/m.room.name?format=event", token=alice))[1]["event_id"]}
    status, _ = await api.put(f"/rooms/{room}/redact/{quote(gone, safe='')}/r1", {"reason": "oops"}, token=alice)
    assert status == 200
    answer = await search(api, alice, "number")
    assert ids(answer) == [kept] and answer["count"] == 1
    assert ids(await search(api, alice, "two")) == []


async def test_encrypted_events_and_ignored_users_are_not_found(api):
    alice_reg, bob_reg = await api.register_all("alice", "bob")
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    room = await api.create_room(alice, preset="public_chat")
    await api.post(f"/rooms/{room}/join", {}, token=bob)
    await send(api, alice, room, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "lunch", "body": "lunch"},
               "m.room.encrypted")
    mine = await api.send_text(alice, room, "lunch at noon")
    theirs = await api.send_text(bob, room, "lunch at one")
    assert set(ids(await search(api, alice, "lunch"))) == {mine, theirs}
    status, _ = await api.put(f"/user/{quote(alice_reg['user_id'])}/account_data/m.ignored_user_list",
                              {"ignored_users": {bob_reg["user_id"]: {}}}, token=alice)
    assert status == 200
    assert ids(await search(api, alice, "lunch")) == [mine]


async def test_the_migration_indexes_an_existing_database_with_progress(server_config, engine, caplog):
    hs = Homeserver(server_config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            alice = (await api.register("alice"))["access_token"]
            room = await api.create_room(alice, topic="old topic")
            old = [await api.send_text(alice, room, f"old message {i}") for i in range(3)]
            redacted = await api.send_text(alice, room, "old message redacted")
            await api.put(f"/rooms/{room}/redact/{quote(redacted, safe='')}/r", {}, token=alice)
    finally:
        await hs.stop()
    db = await open_database(server_config.database_url)  # as a database from before the search index
    try:
        async with db.transaction() as txn:
            if engine == "sqlite":
                await txn.execute("DROP TABLE search_text")
            await txn.execute("DROP TABLE search_events")
            await txn.execute("DELETE FROM schema_versions WHERE component = 'search'")
    finally:
        await db.close()
    caplog.set_level(logging.INFO, logger="ranvier.search")
    hs = Homeserver(server_config)
    await hs.start()
    try:
        messages = [r.getMessage() for r in caplog.records if r.name.startswith("ranvier.search")]
        assert "search: indexing the 4 searchable events already stored" in messages  # 3 messages and the topic
        assert messages[-1] == "search: 4 of 4 events indexed (100%)"
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            status, login = await api.post("/login", {"type": "m.login.password", "user": "alice",
                                                      "password": "correct horse"})
            assert status == 200
            assert sorted(ids(await search(api, login["access_token"], "old message"))) == sorted(old)
            assert len(ids(await search(api, login["access_token"], "topic"))) == 1
    finally:
        await hs.stop()
