"""Receipts and read markers: forward-only, private ones hidden, threads, m.fully_read, push counts."""

from __future__ import annotations

import nio



async def joined_room(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    status, _ = await api.post(f"/join/{room_id}", {}, token=bob["access_token"])
    assert status == 200
    return alice, bob, room_id


async def receipt(api, user, room_id, event_id, receipt_type="m.read", body=None):
    return await api.post(f"/rooms/{room_id}/receipt/{receipt_type}/{event_id}", body or {},
                          token=user["access_token"])


async def test_receipts_only_move_forward(api, homeserver):
    alice, bob, room_id = await joined_room(api)
    first = await api.send_text(alice["access_token"], room_id, "one", "t1")
    second = await api.send_text(alice["access_token"], room_id, "two", "t2")
    assert (await receipt(api, bob, room_id, second))[0] == 200
    position = homeserver.receipts.position
    assert (await receipt(api, bob, room_id, first))[0] == 200  # accepted, but ignored
    assert homeserver.receipts.position >= position
    events = await homeserver.receipts.events("@alice:localhost", [room_id], 0, homeserver.receipts.position)
    content = events[room_id]["content"]
    assert events[room_id]["type"] == "m.receipt"
    assert list(content) == [second]
    assert set(content[second]["m.read"]) == {"@bob:localhost"}
    assert "thread_id" not in content[second]["m.read"]["@bob:localhost"]
    assert isinstance(content[second]["m.read"]["@bob:localhost"]["ts"], int)
    # Nothing changed after the ignored receipt.
    assert await homeserver.receipts.events("@alice:localhost", [room_id], position, homeserver.receipts.position) == {}


async def test_private_receipts_are_only_shown_to_their_owner(api, homeserver):
    alice, bob, room_id = await joined_room(api)
    event_id = await api.send_text(alice["access_token"], room_id, "secret", "t1")
    start = homeserver.receipts.position
    with homeserver.notifier.subscribe([f"room:{room_id}"]) as room_wait, \
            homeserver.notifier.subscribe(["user:@bob:localhost"]) as bob_wait:
        assert (await receipt(api, bob, room_id, event_id, "m.read.private"))[0] == 200
        assert await bob_wait.wait(1)
        assert not await room_wait.wait(0.05)
    upto = homeserver.receipts.position
    mine = await homeserver.receipts.events("@bob:localhost", [room_id], start, upto)
    assert mine[room_id]["content"][event_id]["m.read.private"]["@bob:localhost"]["ts"] > 0
    assert await homeserver.receipts.events("@alice:localhost", [room_id], start, upto) == {}
    assert await homeserver.receipts.events("@alice:localhost", [room_id], 0, upto) == {}


async def test_threaded_receipts_are_kept_per_thread(api, homeserver):
    alice, bob, room_id = await joined_room(api)
    root = await api.send_text(alice["access_token"], room_id, "root", "t1")
    status, reply = await api.put(f"/rooms/{room_id}/send/m.room.message/t2",
                                  {"msgtype": "m.text", "body": "in thread",
                                   "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
                                  token=alice["access_token"])
    assert status == 200, reply
    in_thread = reply["event_id"]
    later = await api.send_text(alice["access_token"], room_id, "main again", "t3")
    assert (await receipt(api, bob, room_id, in_thread, body={"thread_id": root}))[0] == 200
    assert (await receipt(api, bob, room_id, root, body={"thread_id": "main"}))[0] == 200
    # The main-timeline receipt on an earlier event does not hold back the thread's, and vice versa.
    assert (await receipt(api, bob, room_id, later, body={"thread_id": "main"}))[0] == 200
    content = (await homeserver.receipts.events("@alice:localhost", [room_id], 0,
                                                homeserver.receipts.position))[room_id]["content"]
    assert content[in_thread]["m.read"]["@bob:localhost"]["thread_id"] == root
    assert content[later]["m.read"]["@bob:localhost"]["thread_id"] == "main"
    assert root not in content

    for body, errcode in (({"thread_id": ""}, "M_INVALID_PARAM"), ({"thread_id": 5}, "M_INVALID_PARAM"),
                          ({"thread_id": "main"}, "M_INVALID_PARAM")):
        status, error = await receipt(api, bob, room_id, in_thread, body=body)
        assert (status, error["errcode"]) == (400, errcode), body
    status, error = await receipt(api, bob, room_id, later, body={"thread_id": root})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    status, error = await receipt(api, bob, room_id, later, "m.fully_read", body={"thread_id": "main"})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")


async def test_receipt_errors(api):
    alice, bob, room_id = await joined_room(api)
    (carol,) = await api.register_all("carol")
    event_id = await api.send_text(alice["access_token"], room_id, "hello", "t1")
    other_room = await api.create_room(alice["access_token"])
    elsewhere = await api.send_text(alice["access_token"], other_room, "elsewhere", "t2")
    status, body = await receipt(api, carol, room_id, event_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await receipt(api, bob, room_id, "$nothing")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await receipt(api, bob, room_id, elsewhere)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await receipt(api, bob, room_id, event_id, "m.unknown")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.post(f"/rooms/{room_id}/read_markers", {}, token=bob["access_token"])
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.post(f"/rooms/{room_id}/read_markers", {"m.read": 5}, token=bob["access_token"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    # One bad event in /read_markers changes nothing at all.
    status, body = await api.post(f"/rooms/{room_id}/read_markers", {"m.fully_read": event_id, "m.read": "$nothing"},
                                  token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, _ = await api.get(f"/user/@bob:localhost/rooms/{room_id}/account_data/m.fully_read",
                              token=bob["access_token"])
    assert status == 404


async def test_nio_read_markers_set_fully_read_and_receipts(homeserver, tmp_path, api):
    client = nio.AsyncClient(homeserver.base_url, "@reader:localhost", store_path=str(tmp_path),
                             config=nio.AsyncClientConfig(encryption_enabled=False))
    try:
        await client.register("reader", "correct horse")
        room = await client.room_create()
        first = (await client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": "1"})).event_id
        second = (await client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": "2"})).event_id
        response = await client.room_read_markers(room.room_id, second, read_event=second, private_read_event=first)
        assert isinstance(response, nio.RoomReadMarkersResponse), response
        path = f"/user/@reader:localhost/rooms/{room.room_id}/account_data/m.fully_read"
        assert await api.get(path, token=client.access_token) == (200, {"event_id": second})
        # The marker does not move back, through either endpoint.
        await client.room_read_markers(room.room_id, first)
        status, _ = await api.post(f"/rooms/{room.room_id}/receipt/m.fully_read/{first}", {},
                                   token=client.access_token)
        assert status == 200
        assert await api.get(path, token=client.access_token) == (200, {"event_id": second})
        marker = await client.update_receipt_marker(room.room_id, second)
        assert isinstance(marker, nio.UpdateReceiptMarkerResponse), marker
        events = await homeserver.receipts.events("@reader:localhost", [room.room_id], 0, homeserver.receipts.position)
        content = events[room.room_id]["content"]
        assert set(content[second]["m.read"]["@reader:localhost"]) == {"ts", "thread_id"}
        assert "@reader:localhost" in content[second]["m.read"]
        assert "@reader:localhost" in content[first]["m.read.private"]
        # m.fully_read never appears among receipts.
        assert all("m.fully_read" not in by_type for by_type in content.values())
    finally:
        await client.close()


async def test_a_receipt_clears_notification_counts(api, homeserver):
    alice, bob, room_id = await joined_room(api)
    await api.send_text(alice["access_token"], room_id, "one", "t1")
    last = await api.send_text(alice["access_token"], room_id, "two", "t2")
    before = (await homeserver.push.counts("@bob:localhost", [room_id]))[room_id]["notification_count"]
    assert before == 2
    assert (await receipt(api, bob, room_id, last, "m.read.private"))[0] == 200
    assert (await homeserver.push.counts("@bob:localhost", [room_id]))[room_id]["notification_count"] == 0


async def test_a_sync_that_sees_a_receipt_sees_the_counts_it_cleared(api, homeserver, monkeypatch):
    """Element sends m.fully_read and a receipt together (/read_markers): the fully-read
    marker wakes the user's other sessions at once, and a sync made while the receipt is
    written must not see the receipt with the counts from before it. Else it moves past the
    receipt and the session shows the room unread until something else happens there."""
    import asyncio

    alice, bob, room_id = await joined_room(api)
    last = await api.send_text(alice["access_token"], room_id, "unread", "t1")
    since = (await api.sync(bob["access_token"]))["next_batch"]
    counting, release = asyncio.Event(), asyncio.Event()
    mark_read = homeserver.push.mark_read

    async def slow_mark_read(*args, **kwargs):
        counting.set()
        await release.wait()
        await mark_read(*args, **kwargs)

    monkeypatch.setattr(homeserver.push, "mark_read", slow_mark_read)
    markers = asyncio.ensure_future(api.post(f"/rooms/{room_id}/read_markers",
                                             {"m.fully_read": last, "m.read.private": last}, token=bob["access_token"]))
    await asyncio.wait_for(counting.wait(), 10)
    seen = {}
    during = await api.sync(bob["access_token"], since=since, timeout="0")
    seen.update({room: joined.get("unread_notifications") for room, joined in during["rooms"]["join"].items()})
    release.set()
    assert (await markers)[0] == 200
    after = await api.sync(bob["access_token"], since=during["next_batch"], timeout="0")
    seen.update({room: joined.get("unread_notifications") for room, joined in after["rooms"]["join"].items()})
    assert seen[room_id] == {"notification_count": 0, "highlight_count": 0}
