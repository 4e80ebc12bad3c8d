"""Two ranvier servers share rooms: joins, messages both ways, typing, receipts, presence,
invites, kicks and bans of a remote user, backfilled history, and a fork both servers
resolve alike, and what a server missed while it was down reaches it afterwards."""

from __future__ import annotations

import asyncio

import aiohttp

from federation_support import bodies_paging_back, chat_both_ways, eventually, room_bodies
from ranvier.server import Homeserver
from tests.conftest import Api


async def public_room(server, user) -> str:
    return await server.api.create_room(user["access_token"], preset="public_chat")


async def test_a_user_joins_the_other_servers_room_and_they_chat_both_ways(pair):
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    room_id = await public_room(a, alice)
    await a.api.send_text(alice["access_token"], room_id, "before bob")
    status, joined = await b.api.post(f"/join/{room_id}", {}, token=bob["access_token"],
                                      params={"via": a.name})
    assert status == 200, joined
    await chat_both_ways(b, bob, a, alice, room_id)
    status, members = await a.api.get(f"/rooms/{room_id}/joined_members", token=alice["access_token"])
    assert set(members["joined"]) == {alice["user_id"], bob["user_id"]}


async def joined_pair(a, b):
    """Alice's public room on `a`, which Bob of `b` has joined; (alice, bob, room_id)."""
    alice = await a.user("alice")
    bob = await b.user("bob")
    room_id = await public_room(a, alice)
    status, joined = await b.api.post(f"/join/{room_id}", {}, token=bob["access_token"], params={"via": a.name})
    assert status == 200, joined
    return alice, bob, room_id


async def test_what_a_server_missed_while_down_reaches_it_after_the_sender_restarts(pair):
    """b is down while Alice writes; a then restarts with the deliveries still queued,
    and once b is back the queue (kept in a's database) brings b everything, in order."""
    a, b = pair
    alice, bob, room_id = await joined_pair(a, b)
    await b.hs.stop()
    missed = [f"while b was down {n}" for n in range(3)]
    for body in missed:
        await a.api.send_text(alice["access_token"], room_id, body)
    await a.hs.stop()
    restarted_a, restarted_b = Homeserver(a.hs.config), Homeserver(b.hs.config)
    try:
        await restarted_a.start()
        await restarted_b.start()
        async with aiohttp.ClientSession() as session:
            b_api = Api(session, restarted_b.base_url)

            async def b_has_all():
                bodies = await room_bodies(b_api, bob["access_token"], room_id)
                return missed[-1] in bodies and bodies

            bodies = await eventually(b_has_all)
        assert [body for body in bodies if body in missed] == missed
    finally:
        await restarted_a.stop()
        await restarted_b.stop()


async def sync_until(api, token, check, since=None):
    """Long-poll /sync until `check(response)` is truthy; returns it."""
    async def synced():
        nonlocal since
        body = await api.sync(token, timeout=500, **({"since": since} if since else {}))
        since = body["next_batch"]
        return check(body)
    return await eventually(synced)


def ephemeral(body, room_id, event_type):
    room = body["rooms"]["join"].get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


async def test_typing_receipts_and_presence_cross(pair):
    a, b = pair
    alice, bob, room_id = await joined_pair(a, b)
    status, _ = await a.api.put(f"/rooms/{room_id}/typing/{alice['user_id']}", {"typing": True, "timeout": 10000},
                                token=alice["access_token"])
    assert status == 200
    typing = await sync_until(b.api, bob["access_token"], lambda body: [
        e for e in ephemeral(body, room_id, "m.typing") if alice["user_id"] in e["content"]["user_ids"]])
    assert typing

    event_id = await b.api.send_text(bob["access_token"], room_id, "read me")
    await eventually(lambda: _has_event(a, alice, room_id, event_id))
    status, _ = await a.api.post(f"/rooms/{room_id}/receipt/m.read/{event_id}", {}, token=alice["access_token"])
    assert status == 200
    receipts = await sync_until(b.api, bob["access_token"], lambda body: [
        e for e in ephemeral(body, room_id, "m.receipt")
        if alice["user_id"] in e["content"].get(event_id, {}).get("m.read", {})])
    assert receipts

    status, _ = await b.api.put(f"/presence/{bob['user_id']}/status", {"presence": "online", "status_msg": "at b"},
                                token=bob["access_token"])
    assert status == 200

    async def alice_sees_bob_online():
        status, presence = await a.api.get(f"/presence/{bob['user_id']}/status", token=alice["access_token"])
        return status == 200 and presence.get("status_msg") == "at b" and presence

    assert (await eventually(alice_sees_bob_online))["presence"] == "online"


async def _has_event(server, user, room_id, event_id):
    status, _ = await server.api.get(f"/rooms/{room_id}/event/{event_id}", token=user["access_token"])
    return status == 200


async def test_a_remote_user_is_invited_kicked_and_banned(pair):
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    room_id = await a.api.create_room(alice["access_token"], preset="private_chat")
    status, body = await a.api.post(f"/rooms/{room_id}/invite", {"user_id": bob["user_id"]},
                                    token=alice["access_token"])
    assert status == 200, body
    invited = await sync_until(b.api, bob["access_token"], lambda body: body["rooms"]["invite"].get(room_id))
    state_types = {e["type"] for e in invited["invite_state"]["events"]}
    assert {"m.room.create", "m.room.join_rules", "m.room.member"} <= state_types
    status, body = await b.api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    assert status == 200, body
    await b.api.send_text(bob["access_token"], room_id, "thanks")
    await eventually(lambda: _bodies_contain(a, alice, room_id, "thanks"))

    status, body = await a.api.post(f"/rooms/{room_id}/kick", {"user_id": bob["user_id"], "reason": "out"},
                                    token=alice["access_token"])
    assert status == 200, body
    left = await sync_until(b.api, bob["access_token"], lambda body: body["rooms"]["leave"].get(room_id))
    assert left is not None
    status, _ = await b.api.put(f"/rooms/{room_id}/send/m.room.message/t1", {"msgtype": "m.text", "body": "x"},
                                token=bob["access_token"])
    assert status == 403

    status, body = await a.api.post(f"/rooms/{room_id}/ban", {"user_id": bob["user_id"]}, token=alice["access_token"])
    assert status == 200, body

    async def bob_banned_on_b():
        status, member = await b.api.get(f"/rooms/{room_id}/state/m.room.member/{bob['user_id']}",
                                         token=bob["access_token"])
        return status == 200 and member.get("membership") == "ban"

    await eventually(bob_banned_on_b)
    status, _ = await b.api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"], params={"via": a.name})
    assert status == 403


async def _bodies_contain(server, user, room_id, text):
    return text in await room_bodies(server.api, user["access_token"], room_id)


async def test_history_from_before_the_join_is_backfilled(pair):
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    room_id = await public_room(a, alice)
    sent = [f"old {n}" for n in range(40)]
    for body in sent:
        await a.api.send_text(alice["access_token"], room_id, body)
    status, _ = await b.api.post(f"/join/{room_id}", {}, token=bob["access_token"], params={"via": a.name})
    assert status == 200
    assert await bodies_paging_back(b.api, bob["access_token"], room_id, page_size=15, pages=10) == sent


async def test_both_servers_sending_at_once_resolve_to_the_same_state(pair):
    """Alice (on a) and Bob (on b), both at 100, change the topic and the power levels at
    the same moment; each server takes its own first, then the other's: the room forks and
    both servers resolve it to the same state."""
    a, b = pair
    alice, bob, room_id = await joined_pair(a, b)
    status, levels = await a.api.get(f"/rooms/{room_id}/state/m.room.power_levels/", token=alice["access_token"])
    levels["users"][bob["user_id"]] = 100
    status, _ = await a.api.put(f"/rooms/{room_id}/state/m.room.power_levels", levels, token=alice["access_token"])
    assert status == 200

    async def bob_is_admin_on_b():
        status, seen = await b.api.get(f"/rooms/{room_id}/state/m.room.power_levels/", token=bob["access_token"])
        return status == 200 and seen["users"].get(bob["user_id"]) == 100

    await eventually(bob_is_admin_on_b)
    await _both_quiet(a, b, room_id)
    # Both send at once: each server's event names only what it had.
    await asyncio.gather(
        a.api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "alice's"}, token=alice["access_token"]),
        b.api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "bob's"}, token=bob["access_token"]),
        a.api.put(f"/rooms/{room_id}/state/m.room.power_levels", {**levels, "events_default": 10},
                  token=alice["access_token"]),
        b.api.put(f"/rooms/{room_id}/state/m.room.power_levels", {**levels, "state_default": 60},
                  token=bob["access_token"]),
    )

    async def same_state():
        head_a = await a.hs.rooms.head(room_id)
        head_b = await b.hs.rooms.head(room_id)
        ids_a = {k: e.event_id for k, e in head_a.state.items()}
        ids_b = {k: e.event_id for k, e in head_b.state.items()}
        return ids_a == ids_b and ids_a

    state = await eventually(same_state)
    assert ("m.room.topic", "") in state
    # And the next events of either server merge the branches.
    await a.api.send_text(alice["access_token"], room_id, "after the fork")
    await eventually(lambda: _bodies_contain(b, bob, room_id, "after the fork"))
    for server in (a, b):  # the room did fork: an event names two prev events
        merges = await server.hs.rooms.store.db.fetchval(
            "SELECT COUNT(*) FROM (SELECT event_id FROM event_edges WHERE room_id = ? GROUP BY event_id "
            "HAVING COUNT(*) > 1) AS merges", room_id)
        assert merges >= 1


async def _both_quiet(a, b, room_id):
    """Wait until both servers have the same single forward extremity."""
    async def same_head():
        head_a = await a.hs.rooms.head(room_id)
        head_b = await b.hs.rooms.head(room_id)
        return head_a.extremities == head_b.extremities and len(head_a.extremities) == 1

    await eventually(same_head)
