"""Every token the server hands out pages /messages and places /members: the room
tokens of /messages and prev_batch, and the stream tokens of /sync, /initialSync and /events."""

from __future__ import annotations

from tests.conftest import message_bodies


async def page(api, token, room_id, **params):
    status, body = await api.get(f"/rooms/{room_id}/messages", params={k: str(v) for k, v in params.items()}, token=token)
    assert status == 200, body
    return body


async def test_a_sync_token_pages_messages_both_ways(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    for i in range(3):
        await api.send_text(token, room_id, f"before {i}")
    other = await api.create_room(token)
    await api.send_text(token, other, "elsewhere")  # moves the stream, not this room
    middle = (await api.sync(token))["next_batch"]
    for i in range(3):
        await api.send_text(token, room_id, f"after {i}")

    backwards = await page(api, token, room_id, dir="b", limit=3, **{"from": middle})
    assert message_bodies(backwards["chunk"]) == ["before 2", "before 1", "before 0"]
    assert backwards["start"] == middle
    forwards = await page(api, token, room_id, dir="f", limit=10, **{"from": middle})
    assert message_bodies(forwards["chunk"]) == ["after 0", "after 1", "after 2"]
    # the end of a page continues exactly where it stopped
    rest = await page(api, token, room_id, dir="b", limit=2, **{"from": backwards["end"]})
    assert "before 0" not in message_bodies(rest["chunk"]) and len(rest["chunk"]) == 2

    # a sync token as `to`: everything from the room's start up to the token
    oldest = await page(api, token, room_id, dir="f", limit=100, to=middle)
    assert message_bodies(oldest["chunk"]) == ["before 0", "before 1", "before 2"]
    newest = await page(api, token, room_id, dir="b", limit=100, to=middle)
    assert message_bodies(newest["chunk"]) == ["after 2", "after 1", "after 0"]


async def test_tokens_of_initial_sync_events_and_prev_batch_page_messages(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    await api.send_text(token, room_id, "one")
    status, snapshot = await api.get("/initialSync", params={"limit": "1"}, token=token)
    assert status == 200
    await api.send_text(token, room_id, "two")
    status, stream = await api.get("/events", params={"from": snapshot["end"], "timeout": "0"}, token=token)
    assert status == 200 and message_bodies(stream["chunk"]) == ["two"]
    await api.send_text(token, room_id, "three")
    initial = await api.sync(token, filter={"room": {"timeline": {"limit": 1}}})
    prev_batch = initial["rooms"]["join"][room_id]["timeline"]["prev_batch"]

    for name, from_token, expected in [("initialSync end", snapshot["end"], ["one"]),
                                       ("events end", stream["end"], ["two", "one"]),
                                       ("sync prev_batch", prev_batch, ["two", "one"]),
                                       ("sync next_batch", initial["next_batch"], ["three", "two", "one"])]:
        body = await page(api, token, room_id, dir="b", limit=10, **{"from": from_token})
        assert message_bodies(body["chunk"]) == expected, name
    forwards = await page(api, token, room_id, dir="f", limit=10, **{"from": snapshot["end"]})
    assert message_bodies(forwards["chunk"]) == ["two", "three"]


async def test_members_at_any_token(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.send_text(alice["access_token"], room_id, "alone")
    before_bob = await api.sync(alice["access_token"], filter={"room": {"timeline": {"limit": 1}}})
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.send_text(bob["access_token"], room_id, "hi")
    after_bob = await api.sync(alice["access_token"])

    async def members(at):
        status, body = await api.get(f"/rooms/{room_id}/members", params={"at": at}, token=alice["access_token"])
        assert status == 200, body
        return {e["state_key"] for e in body["chunk"] if e["content"]["membership"] == "join"}

    assert await members(before_bob["next_batch"]) == {"@alice:localhost"}
    assert await members(before_bob["rooms"]["join"][room_id]["timeline"]["prev_batch"]) == {"@alice:localhost"}
    assert await members(after_bob["next_batch"]) == {"@alice:localhost", "@bob:localhost"}
    backwards = await page(api, alice["access_token"], room_id, dir="b", limit=1)
    assert await members(backwards["start"]) == {"@alice:localhost", "@bob:localhost"}


async def test_tokens_that_are_not_ours_are_refused(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    for bad in ("garbage", "s", "sx_1", "t1", "t1_x", "s1_2_3_4_5_6_7_8_9"):
        status, body = await api.get(f"/rooms/{room_id}/messages", params={"from": bad}, token=token)
        assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM"), bad
        status, body = await api.get(f"/rooms/{room_id}/members", params={"at": bad}, token=token)
        assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM"), bad
