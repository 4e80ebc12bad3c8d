"""Account data and tags over real HTTP, and the account data stream /sync reads."""

from __future__ import annotations

from ranvier.server import Homeserver


async def test_global_and_room_account_data_round_trip(api, homeserver):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    base = "/user/@alice:localhost"
    status, body = await api.get(f"{base}/account_data/org.example.settings", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    start = homeserver.account_data.position

    assert (await api.put(f"{base}/account_data/org.example.settings", {"theme": "dark"}, token=token))[0] == 200
    assert await api.get(f"{base}/account_data/org.example.settings", token=token) == (200, {"theme": "dark"})
    # Room data of the same type is separate and does not fall back to the global one.
    status, body = await api.get(f"{base}/rooms/{room_id}/account_data/org.example.settings", token=token)
    assert status == 404
    assert (await api.put(f"{base}/rooms/{room_id}/account_data/org.example.settings", {"theme": "light"},
                          token=token))[0] == 200
    assert await api.get(f"{base}/rooms/{room_id}/account_data/org.example.settings", token=token) == (
        200, {"theme": "light"})
    assert await api.get(f"{base}/account_data/org.example.settings", token=token) == (200, {"theme": "dark"})

    middle = homeserver.account_data.position
    assert middle == start + 2
    assert (await api.put(f"{base}/account_data/org.example.settings", {"theme": "blue"}, token=token))[0] == 200
    end = homeserver.account_data.position
    everything = await homeserver.account_data.changes("@alice:localhost", 0, end)
    # From the start, every user also has m.push_rules (computed by the push service).
    assert [e["type"] for e in everything[0]] == ["org.example.settings", "m.push_rules"]
    assert everything == ([{"type": "org.example.settings", "content": {"theme": "blue"}}, everything[0][1]],
                          {room_id: [{"type": "org.example.settings", "content": {"theme": "light"}}]})
    assert await homeserver.account_data.changes("@alice:localhost", middle, end) == (
        [{"type": "org.example.settings", "content": {"theme": "blue"}}], {})
    assert await homeserver.account_data.changes("@alice:localhost", end, end) == ([], {})
    assert [e["type"] for e in (await homeserver.account_data.changes("@bob:localhost", 0, end))[0]] == ["m.push_rules"]


async def test_account_data_is_private_and_server_types_are_refused(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    status, body = await api.put("/user/@bob:localhost/account_data/org.example.x", {}, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.get("/user/@bob:localhost/account_data/org.example.x", token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    for data_type in ("m.fully_read", "m.push_rules"):
        status, body = await api.put(f"/user/@alice:localhost/account_data/{data_type}", {}, token=token)
        assert (status, body["errcode"]) == (405, "M_BAD_JSON")
        status, body = await api.put(f"/user/@alice:localhost/rooms/!r:localhost/account_data/{data_type}", {},
                                     token=token)
        assert (status, body["errcode"]) == (405, "M_BAD_JSON")
    status, body = await api.put("/user/@alice:localhost/rooms/not-a-room/account_data/org.example.x", {},
                                 token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.request("PUT", "/user/@alice:localhost/account_data/org.example.x", data=b"[1]",
                                     token=token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_ignored_user_list_is_validated_and_exposed(api, homeserver):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    path = "/user/@alice:localhost/account_data/m.ignored_user_list"
    for bad, errcode in (({"ignored_users": ["@bob:localhost"]}, "M_BAD_JSON"), ({}, "M_BAD_JSON"),
                         ({"ignored_users": {"bob": {}}}, "M_INVALID_PARAM"),
                         ({"ignored_users": {"@alice:localhost": {}}}, "M_INVALID_PARAM")):
        status, body = await api.put(path, bad, token=token)
        assert (status, body["errcode"]) == (400, errcode), bad
    assert await homeserver.account_data.ignored_users("@alice:localhost") == set()
    content = {"ignored_users": {"@bob:localhost": {}, "@eve:elsewhere": {}}}
    assert (await api.put(path, content, token=token))[0] == 200
    assert await homeserver.account_data.ignored_users("@alice:localhost") == {"@bob:localhost", "@eve:elsewhere"}


async def test_tags(api, homeserver):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    base = f"/user/@alice:localhost/rooms/{room_id}/tags"
    assert await api.get(base, token=token) == (200, {"tags": {}})
    assert (await api.put(f"{base}/m.favourite", {"order": 0.25}, token=token))[0] == 200
    assert (await api.put(f"{base}/u.work", {}, token=token))[0] == 200
    assert await api.get(base, token=token) == (200, {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}})
    status, body = await api.put(f"{base}/u.bad", {"order": "first"}, token=token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    assert (await api.delete(f"{base}/u.work", token=token))[0] == 200
    assert (await api.delete(f"{base}/u.never", token=token))[0] == 200
    assert await api.get(base, token=token) == (200, {"tags": {"m.favourite": {"order": 0.25}}})
    # Tags are the m.tag room account data, and reach /sync through the stream.
    status, content = await api.get(f"/user/@alice:localhost/rooms/{room_id}/account_data/m.tag", token=token)
    assert content == {"tags": {"m.favourite": {"order": 0.25}}}
    _, rooms = await homeserver.account_data.changes("@alice:localhost", 0, homeserver.account_data.position)
    assert rooms == {room_id: [{"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25}}}}]}
    status, body = await api.get(f"/user/@bob:localhost/rooms/{room_id}/tags", token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_room_joined_since_the_last_sync_brings_its_older_account_data(api):
    """Tags set on a room before joining it (a room upgrade copies them so) were written at
    an account data position the user's syncs have passed: the sync that shows the join
    carries all the room's account data; later ones only what changed."""
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    base = f"/user/@bob:localhost/rooms/{room_id}"
    assert (await api.put(f"{base}/tags/m.lowpriority", {}, token=bob["access_token"]))[0] == 200
    assert (await api.put(f"{base}/account_data/org.example.seen", {"at": 1}, token=bob["access_token"]))[0] == 200
    first = await api.sync(bob["access_token"])
    assert room_id not in first["rooms"]["join"]
    assert (await api.post(f"/join/{room_id}", {}, token=bob["access_token"]))[0] == 200
    joined = await api.sync(bob["access_token"], since=first["next_batch"])
    assert {event["type"]: event["content"] for event in joined["rooms"]["join"][room_id]["account_data"]["events"]} == {
        "m.tag": {"tags": {"m.lowpriority": {}}}, "org.example.seen": {"at": 1}}
    await api.send_text(alice["access_token"], room_id, "hello")
    later = await api.sync(bob["access_token"], since=joined["next_batch"])
    assert later["rooms"]["join"][room_id]["account_data"]["events"] == []


async def test_account_data_write_wakes_the_user(api, homeserver):
    (alice,) = await api.register_all("alice")
    with homeserver.notifier.subscribe(["user:@alice:localhost"]) as subscription:
        assert await subscription.wait(0.05) is False
        await api.put("/user/@alice:localhost/account_data/org.example.x", {"a": 1}, token=alice["access_token"])
        assert await subscription.wait(5) is True


async def test_positions_continue_after_a_restart(server_config, homeserver, api):
    (alice,) = await api.register_all("alice")
    await api.put("/user/@alice:localhost/account_data/org.example.x", {"a": 1}, token=alice["access_token"])
    position = homeserver.account_data.position
    assert position > 0
    await homeserver.stop()
    other = Homeserver(server_config)
    await other.start()
    try:
        assert other.account_data.position == position
    finally:
        await other.stop()
