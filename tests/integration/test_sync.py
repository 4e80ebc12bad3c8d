"""/sync: initial and incremental, long-poll, gaps, lazy loading, filters, membership changes."""

from __future__ import annotations

import asyncio
import json
import time

import nio



async def sync(api, token, **params):
    params = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in params.items()}
    status, body = await api.get("/sync", params=params, token=token)
    assert status == 200, body
    return body


def timeline_bodies(response, room_id):
    room = response["rooms"]["join"].get(room_id)
    if room is None:
        return []
    return [e["content"].get("body") for e in room["timeline"]["events"] if e["type"] == "m.room.message"]


async def test_initial_sync_shape(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], name="Room", invite=["@bob:localhost"])
    await api.send_text(alice["access_token"], room_id, "hello")
    body = await sync(api, alice["access_token"])
    room = body["rooms"]["join"][room_id]
    assert timeline_bodies(body, room_id) == ["hello"]
    assert room["timeline"]["limited"] is False and room["timeline"]["prev_batch"]
    assert room["summary"] == {"m.heroes": ["@bob:localhost"], "m.joined_member_count": 1, "m.invited_member_count": 1}
    assert room["unread_notifications"] == {"notification_count": 0, "highlight_count": 0} or "unread_notifications" not in room
    for key in ("presence", "account_data", "to_device", "device_lists", "device_one_time_keys_count"):
        assert key in body
    # ClientEventWithoutRoomID: the room is the key the events are listed under.
    events = room["timeline"]["events"] + room["state"]["events"]
    assert events and all("room_id" not in e and {"event_id", "sender", "type", "content", "origin_server_ts"} <= set(e)
                          and isinstance(e["unsigned"]["age"], int) for e in events)
    invited = await sync(api, bob["access_token"])
    stripped = invited["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert {(e["type"], e["state_key"]) for e in stripped} >= {("m.room.name", ""), ("m.room.member", "@bob:localhost")}
    assert all(set(e) == {"type", "state_key", "content", "sender"} for e in stripped)


async def test_incremental_sync_has_exactly_the_new_events(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    first = await sync(api, token)
    await api.send_text(token, room_id, "one")
    await api.send_text(token, room_id, "two")
    second = await sync(api, token, since=first["next_batch"])
    assert timeline_bodies(second, room_id) == ["one", "two"]
    assert all("room_id" not in e for e in second["rooms"]["join"][room_id]["timeline"]["events"])
    assert second["rooms"]["join"][room_id]["state"]["events"] == []
    third = await sync(api, token, since=second["next_batch"])
    assert third["rooms"]["join"] == {}


async def test_long_poll_wakes_on_a_new_event(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    start = await sync(api, bob["access_token"])

    async def send_later():
        await asyncio.sleep(0.5)
        await api.send_text(alice["access_token"], room_id, "wake up")

    began = time.monotonic()
    sender = asyncio.create_task(send_later())
    woke = await sync(api, bob["access_token"], since=start["next_batch"], timeout=10000)
    elapsed = time.monotonic() - began
    await sender
    assert timeline_bodies(woke, room_id) == ["wake up"]
    assert 0.45 <= elapsed < 2.0, elapsed


async def test_a_message_committed_while_a_poll_finds_nothing_wakes_it_at_once(homeserver, api):
    """A poll whose token is behind looks before it subscribes: what commits between that
    look and the subscription must still wake it (it looks again), not wait for the timeout."""
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    elsewhere = await api.create_room(alice["access_token"])
    start = await sync(api, bob["access_token"])
    await api.send_text(alice["access_token"], elsewhere, "not for bob")  # bob's token is behind, with no news
    compute = homeserver.sync._compute
    sent = []

    async def compute_then_send(*args):
        response = await compute(*args)
        if not sent:  # after the first look (which found nothing), before the subscription
            sent.append(await api.send_text(alice["access_token"], room_id, "in between"))
        return response

    homeserver.sync._compute = compute_then_send
    began = time.monotonic()
    woke = await sync(api, bob["access_token"], since=start["next_batch"], timeout=10000,
                      filter={"presence": {"not_types": ["*"]}})
    assert sent and timeline_bodies(woke, room_id) == ["in between"]
    assert time.monotonic() - began < 5.0


async def test_a_join_committed_while_a_poll_finds_nothing_wakes_it_with_the_room(homeserver, api):
    """The user's own join between a poll's first look and its subscription: the look after
    subscribing must read the user's rooms again, or it misses the new room and sleeps
    (the join's wake-up already sent) until the timeout."""
    alice, bob = await api.register_all("alice", "bob")
    joined_room = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{joined_room}/join", {}, token=bob["access_token"])
    new_room = await api.create_room(alice["access_token"], preset="public_chat")
    start = await sync(api, bob["access_token"])
    await api.send_text(alice["access_token"], new_room, "before bob")  # bob's token is behind, with no news
    compute = homeserver.sync._compute
    joins = []

    async def compute_then_join(*args):
        response = await compute(*args)
        if not joins:  # after the first look (which found nothing), before the subscription
            joins.append(await api.post(f"/join/{new_room}", {}, token=bob["access_token"]))
        return response

    homeserver.sync._compute = compute_then_join
    began = time.monotonic()
    woke = await sync(api, bob["access_token"], since=start["next_batch"], timeout=10000,
                      filter={"presence": {"not_types": ["*"]}})
    assert joins and joins[0][0] == 200
    assert list(woke["rooms"]["join"]) == [new_room]
    assert time.monotonic() - began < 5.0


async def test_long_poll_times_out_with_the_same_token(api):
    (alice,) = await api.register_all("alice")
    await api.create_room(alice["access_token"])
    start = await sync(api, alice["access_token"])
    began = time.monotonic()
    idle = await sync(api, alice["access_token"], since=start["next_batch"], timeout=300)
    assert 0.25 <= time.monotonic() - began < 2.0
    assert idle["rooms"]["join"] == {} and idle["next_batch"] == start["next_batch"]


async def test_no_duplicates_or_gaps_under_concurrent_sends_into_20_rooms(api):
    alice, bob = await api.register_all("alice", "bob")
    rooms = [await api.create_room(alice["access_token"], preset="public_chat") for _ in range(20)]
    for room_id in rooms:
        await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    token = (await sync(api, bob["access_token"]))["next_batch"]
    expected = {room_id: [f"{room_id}-{i}" for i in range(15)] for room_id in rooms}
    received = {room_id: [] for room_id in rooms}
    stop = asyncio.Event()

    async def sender(room_id):
        for body in expected[room_id]:
            await api.send_text(alice["access_token"], room_id, body)

    async def receiver():
        nonlocal token
        while not stop.is_set():
            body = await sync(api, bob["access_token"], since=token, timeout=1000,
                              filter={"room": {"timeline": {"limit": 100}}})
            for room_id in rooms:
                room = body["rooms"]["join"].get(room_id)
                if room is not None:
                    assert room["timeline"]["limited"] is False
                    received[room_id] += timeline_bodies(body, room_id)
            token = body["next_batch"]

    reader = asyncio.create_task(receiver())
    await asyncio.gather(*(sender(room_id) for room_id in rooms))
    deadline = time.monotonic() + 20
    while any(len(received[r]) < 15 for r in rooms) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await reader
    assert received == expected


async def test_gappy_sync_gives_limited_prev_batch_and_state_delta(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token, name="old name")
    start = await sync(api, token)
    await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": "new name"}, token=token)
    for i in range(12):
        await api.send_text(token, room_id, f"m{i}")
    gappy = await sync(api, token, since=start["next_batch"], filter={"room": {"timeline": {"limit": 5}}})
    room = gappy["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert timeline_bodies(gappy, room_id) == [f"m{i}" for i in range(7, 12)]
    assert [e["content"]["name"] for e in room["state"]["events"] if e["type"] == "m.room.name"] == ["new name"]
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"from": room["timeline"]["prev_batch"], "limit": "7"},
                                 token=token)
    assert [e["content"]["body"] for e in page["chunk"]] == [f"m{i}" for i in range(6, -1, -1)]


async def test_newly_joined_room_comes_with_full_state(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", name="Joined", topic="T")
    for i in range(15):
        await api.send_text(alice["access_token"], room_id, f"m{i}")
    start = await sync(api, bob["access_token"])
    assert room_id not in start["rooms"]["join"]
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    after = await sync(api, bob["access_token"], since=start["next_batch"])
    room = after["rooms"]["join"][room_id]
    everything = {(e["type"], e["state_key"]) for e in room["state"]["events"] + room["timeline"]["events"] if "state_key" in e}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.topic", ""), ("m.room.power_levels", ""),
            ("m.room.member", "@alice:localhost"), ("m.room.member", "@bob:localhost")} <= everything
    assert room["summary"]["m.joined_member_count"] == 2


async def test_left_room_appears_once_under_leave_for_kicks_and_bans(api):
    alice, bob = await api.register_all("alice", "bob")
    rooms = [await api.create_room(alice["access_token"], preset="public_chat") for _ in range(2)]
    for room_id in rooms:
        await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    start = await sync(api, bob["access_token"])
    await api.post(f"/rooms/{rooms[0]}/kick", {"user_id": "@bob:localhost", "reason": "out"}, token=alice["access_token"])
    await api.post(f"/rooms/{rooms[1]}/ban", {"user_id": "@bob:localhost"}, token=alice["access_token"])
    after = await sync(api, bob["access_token"], since=start["next_batch"])
    assert set(after["rooms"]["leave"]) == set(rooms)
    kicked = after["rooms"]["leave"][rooms[0]]["timeline"]["events"][-1]
    assert kicked["content"] == {"membership": "leave", "reason": "out"} and kicked["sender"] == "@alice:localhost"
    await api.send_text(alice["access_token"], rooms[0], "after the kick")
    later = await sync(api, bob["access_token"], since=after["next_batch"])
    assert later["rooms"]["leave"] == {} and later["rooms"]["join"] == {}
    archived = await sync(api, bob["access_token"], filter={"room": {"include_leave": True}})
    assert set(archived["rooms"]["leave"]) == set(rooms)
    assert "after the kick" not in json.dumps(archived)


async def test_lazy_loading_sends_each_member_once_per_connection(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    for user in (bob, carol):
        await api.post(f"/rooms/{room_id}/join", {}, token=user["access_token"])
    for i in range(12):
        await api.send_text(alice["access_token"], room_id, f"a{i}")
    lazy = {"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}}
    first = await sync(api, carol["access_token"], filter=lazy)
    members = {e["state_key"] for e in first["rooms"]["join"][room_id]["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@alice:localhost", "@carol:localhost"}, "only the senders and the syncing user"
    await api.send_text(bob["access_token"], room_id, "from bob")
    await api.send_text(alice["access_token"], room_id, "from alice")
    for i in range(5):
        await api.send_text(bob["access_token"], room_id, f"b{i}")
    second = await sync(api, carol["access_token"], since=first["next_batch"], filter=lazy)
    members = {e["state_key"] for e in second["rooms"]["join"][room_id]["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@bob:localhost"}, "alice was sent already on this connection"
    redundant = {"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True, "include_redundant_members": True}}}
    again = await sync(api, carol["access_token"], since=first["next_batch"], filter=redundant)
    members = {e["state_key"] for e in again["rooms"]["join"][room_id]["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@bob:localhost"}


async def test_stored_and_inline_filters(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    other = await api.create_room(token)
    await api.send_text(token, room_id, "wanted")
    definition = {"room": {"rooms": [room_id], "timeline": {"types": ["m.room.message"]}},
                  "event_fields": ["type", "content.body"]}
    status, created = await api.post("/user/@alice:localhost/filter", definition, token=token)
    assert status == 200
    status, fetched = await api.get(f"/user/@alice:localhost/filter/{created['filter_id']}", token=token)
    assert fetched == definition
    body = await sync(api, token, filter=created["filter_id"])
    assert list(body["rooms"]["join"]) == [room_id]
    assert body["rooms"]["join"][room_id]["timeline"]["events"] == [{"type": "m.room.message", "content": {"body": "wanted"}}]
    inline = await sync(api, token, filter={"room": {"not_rooms": [room_id]}})
    assert list(inline["rooms"]["join"]) == [other]
    for bad, errcode in [('{"room": {"timeline": {"limit": "ten"}}}', "M_BAD_JSON"), ("{nope", "M_INVALID_PARAM"),
                         ('{"event_format": "xml"}', "M_BAD_JSON")]:
        status, error = await api.get("/sync", params={"filter": bad}, token=token)
        assert (status, error["errcode"]) == (400, errcode), bad
    status, error = await api.get("/sync", params={"filter": "404"}, token=token)
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, error = await api.post("/user/@bob:localhost/filter", definition, token=token)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    status, error = await api.post("/user/@alice:localhost/filter", {"room": []}, token=token)
    assert (status, error["errcode"]) == (400, "M_BAD_JSON")


async def test_bad_since_token_is_refused(api):
    (alice,) = await api.register_all("alice")
    status, body = await api.get("/sync", params={"since": "garbage"}, token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_nio_syncs_and_sees_messages(homeserver, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@nio:localhost", store_path=str(tmp_path),
                             config=nio.AsyncClientConfig(encryption_enabled=False))
    other = nio.AsyncClient(homeserver.base_url, "@other:localhost", store_path=str(tmp_path),
                            config=nio.AsyncClientConfig(encryption_enabled=False))
    try:
        await client.register("nio", "correct horse")
        await other.register("other", "correct horse")
        created = await client.room_create(name="nio sync", invite=["@other:localhost"])
        first = await other.sync(timeout=0)
        assert isinstance(first, nio.SyncResponse), first
        assert created.room_id in first.rooms.invite
        await other.join(created.room_id)
        await client.room_send(created.room_id, "m.room.message", {"msgtype": "m.text", "body": "hi nio"})
        second = await other.sync(timeout=3000)
        assert isinstance(second, nio.SyncResponse), second
        events = second.rooms.join[created.room_id].timeline.events
        assert any(isinstance(e, nio.RoomMessageText) and e.body == "hi nio" for e in events)
        assert other.rooms[created.room_id].display_name == "nio sync"
    finally:
        await client.close()
        await other.close()


async def test_legacy_events_and_initial_sync(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token, name="legacy")
    await api.send_text(token, room_id, "old")
    status, snapshot = await api.get("/initialSync", params={"limit": "5"}, token=token)
    assert status == 200
    (room,) = snapshot["rooms"]
    assert room["room_id"] == room_id and room["membership"] == "join"
    assert [e["content"].get("body") for e in room["messages"]["chunk"]][-1] == "old"
    assert all(e["room_id"] == room_id for e in room["messages"]["chunk"])  # the older API's events name their room
    await api.send_text(token, room_id, "new")
    status, stream = await api.get("/events", params={"from": snapshot["end"], "timeout": "1000"}, token=token)
    assert [e["content"]["body"] for e in stream["chunk"] if e["type"] == "m.room.message"] == ["new"]
    status, room_snapshot = await api.get(f"/rooms/{room_id}/initialSync", token=token)
    assert room_snapshot["room_id"] == room_id and any(e["type"] == "m.room.name" for e in room_snapshot["state"])
    event_id = stream["chunk"][-1]["event_id"]
    from urllib.parse import quote

    status, event = await api.get(f"/events/{quote(event_id, safe='')}", token=token)
    assert (status, event["content"]["body"]) == (200, "new")


async def test_stopping_the_server_answers_long_polls_at_once(server_config):
    import aiohttp

    from ranvier.server import Homeserver
    from tests.conftest import Api

    hs = Homeserver(server_config)
    await hs.start()
    async with aiohttp.ClientSession() as session:
        api = Api(session, hs.base_url)
        (alice,) = await api.register_all("alice")
        start = await sync(api, alice["access_token"])
        poll = asyncio.create_task(api.get("/sync", params={"since": start["next_batch"], "timeout": "30000"},
                                           token=alice["access_token"]))
        await asyncio.sleep(0.3)
        began = time.monotonic()
        await hs.stop()
        status, body = await poll
        assert time.monotonic() - began < 5
        assert status == 200 and body["next_batch"] == start["next_batch"]


async def test_unread_counts_reach_sync_and_receipts_reset_them(api):
    from urllib.parse import quote

    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="trusted_private_chat", invite=["@bob:localhost"],
                                    is_direct=True)
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.send_text(alice["access_token"], room_id, "one")
    last = await api.send_text(alice["access_token"], room_id, "two, bob")
    root = await api.send_text(alice["access_token"], room_id, "thread root")
    status, reply = await api.put(f"/rooms/{room_id}/send/m.room.message/thr", {
        "msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
        token=alice["access_token"])
    body = await sync(api, bob["access_token"])
    assert body["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 4
    threaded = await sync(api, bob["access_token"], filter={"room": {"timeline": {"unread_thread_notifications": True}}})
    section = threaded["rooms"]["join"][room_id]
    assert section["unread_notifications"]["notification_count"] == 3
    assert section["unread_thread_notifications"][root]["notification_count"] == 1
    assert section["unread_notifications"]["highlight_count"] == 1, "'two, bob' mentions bob's display name"
    await api.post(f"/rooms/{room_id}/receipt/m.read/{quote(last, safe='')}", {}, token=bob["access_token"])
    after = await sync(api, bob["access_token"], since=body["next_batch"])
    assert after["rooms"]["join"][room_id]["unread_notifications"] == {"notification_count": 2, "highlight_count": 0}


async def test_ignored_users_messages_and_invites_are_not_delivered(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat",
                                    power_level_content_override={"events": {"m.room.topic": 0}})
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    status, _ = await api.put("/user/@alice:localhost/account_data/m.ignored_user_list",
                              {"ignored_users": {"@bob:localhost": {}}}, token=alice["access_token"])
    assert status == 200
    start = await sync(api, alice["access_token"])
    await api.send_text(bob["access_token"], room_id, "you will not see this")
    status, _ = await api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "bob's topic"},
                              token=bob["access_token"])
    assert status == 200
    await api.send_text(alice["access_token"], room_id, "alice speaks")
    invite_room = await api.create_room(bob["access_token"], invite=["@alice:localhost"])
    changes = await sync(api, alice["access_token"], since=start["next_batch"])
    events = changes["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"].get("body") for e in events if e["type"] == "m.room.message"] == ["alice speaks"]
    assert any(e["type"] == "m.room.topic" for e in events), "state events of ignored users still arrive"
    assert invite_room not in changes["rooms"]["invite"]

    await api.put("/user/@alice:localhost/account_data/m.ignored_user_list", {"ignored_users": {}},
                  token=alice["access_token"])
    await api.send_text(bob["access_token"], room_id, "heard again")
    after = await sync(api, alice["access_token"], since=changes["next_batch"])
    bodies = [e["content"].get("body") for e in after["rooms"]["join"][room_id]["timeline"]["events"]
              if e["type"] == "m.room.message"]
    assert bodies == ["heard again"], "missed events are not replayed; a fresh sync fetches them"
