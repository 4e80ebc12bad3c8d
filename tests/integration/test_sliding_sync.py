"""Simplified sliding sync (MSC4186): the proposal's examples, lists, ordering, room results,
deltas per connection, positions and long polls, over HTTP on both engines."""

from __future__ import annotations

import asyncio
import time

from tests.integration.sliding_support import PAIRS, SLIDING_SYNC, Connection, a_list, bodies, state_keys


async def login(api, user: str, device_id: str) -> str:
    status, body = await api.post("/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                                             "password": "correct horse", "device_id": device_id})
    assert status == 200, body
    return body["access_token"]


async def test_versions_advertises_simplified_sliding_sync(api):
    status, body = await api.get("/_matrix/client/versions")
    assert status == 200
    assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_the_proposals_example_request(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    dm = await api.create_room(token, invite=["@bob:localhost"], is_direct=True, preset="trusted_private_chat")
    await api.post(f"/rooms/{dm}/join", {}, token=bob["access_token"])
    await api.put("/user/@alice:localhost/account_data/m.direct", {"@bob:localhost": [dm]}, token=token)
    other = await api.create_room(token, name="not a DM", topic="topic")
    hidden = await api.create_room(bob["access_token"], name="bob only")
    body = {
        "conn_id": "main",
        "lists": {"foo-list": {"range": [0, 99],
                               "required_state": {"include": [{"type": "m.room.create", "state_key": ""}],
                                                  "lazy_members": True},
                               "timeline_limit": 10, "filters": {"is_dm": True}}},
        "room_subscriptions": {other: {"required_state": {"include": [{}]}, "timeline_limit": 10},
                               hidden: {"required_state": {"include": [{}]}, "timeline_limit": 10},
                               "!unknown:localhost": {"required_state": {"include": [{}]}, "timeline_limit": 10}},
    }
    response = await Connection(api, token).sync(body)
    assert response["pos"]
    assert response["lists"] == {"foo-list": {"count": 1}}
    assert set(response["rooms"]) == {dm, other}, "rooms one may not see are ignored"
    listed = response["rooms"][dm]
    assert listed["initial"] is True and listed["lists"] == ["foo-list"] and listed["is_dm"] is True
    assert listed["membership"] == "join" and listed["joined_count"] == 2 and listed["invited_count"] == 0
    # The create event, and lazily the members of the timeline's senders (alice, and bob who joined).
    assert state_keys(listed) == {("m.room.create", ""), ("m.room.member", "@alice:localhost"),
                                  ("m.room.member", "@bob:localhost")}
    assert listed["timeline"][-1]["type"] == "m.room.member" and listed["timeline"][-1]["state_key"] == "@bob:localhost"
    assert listed["limited"] is False and listed["num_live"] == 0 and listed["prev_batch"]
    subscribed = response["rooms"][other]
    assert "lists" not in subscribed and "is_dm" not in subscribed
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.topic", ""), ("m.room.power_levels", ""),
            ("m.room.member", "@alice:localhost")} <= state_keys(subscribed)
    assert subscribed["name"] == "not a DM" and "heroes" not in subscribed


async def test_lists_cut_the_activity_order_to_their_ranges(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    rooms = [await api.create_room(token, name=f"room {i}") for i in range(12)]
    for i, room_id in enumerate(rooms):
        await api.send_text(token, room_id, f"message {i}")
    connection = Connection(api, token)
    first = await connection.sync({"lists": {"all": a_list([0, 4])}})
    assert first["lists"]["all"]["count"] == 12
    assert set(first["rooms"]) == set(rooms[7:])
    assert all(room["lists"] == ["all"] and bodies(room) == [f"message {rooms.index(rid)}"]
               for rid, room in first["rooms"].items())
    stamps = [first["rooms"][rid]["bump_stamp"] for rid in reversed(rooms[7:])]
    assert stamps == sorted(stamps, reverse=True), "the newest message has the highest bump_stamp"
    # Sliding the window sends only the rooms it did not hold.
    second = await connection.sync({"lists": {"all": a_list([5, 9])}})
    assert set(second["rooms"]) == set(rooms[2:7])
    # A new event in an old room brings it to the top of the list, with only that event.
    await api.send_text(token, rooms[0], "back to the top")
    third = await connection.sync({"lists": {"all": a_list([0, 0])}})
    assert set(third["rooms"]) == {rooms[0]}
    room = third["rooms"][rooms[0]]
    assert room["initial"] is True and bodies(room) == ["back to the top"] and room["num_live"] == 1
    # Several ranges (the deployed dialect's `ranges`), and no range at all.
    fourth = await Connection(api, token).sync({"lists": {"all": {"ranges": [[0, 0], [11, 11]], "timeline_limit": 0}}})
    assert set(fourth["rooms"]) == {rooms[0], rooms[1]}
    everything = await Connection(api, token).sync({"lists": {"all": {"timeline_limit": 0, "required_state": []}}})
    assert set(everything["rooms"]) == set(rooms) and everything["lists"]["all"]["count"] == 12


async def test_any_event_orders_rooms_but_only_proper_activity_bumps(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    first_room = await api.create_room(token)
    second_room = await api.create_room(token)
    connection = Connection(api, token)
    initial = await connection.sync({"lists": {"all": a_list([0, 1])}})
    assert set(initial["rooms"]) == {first_room, second_room}
    bump = initial["rooms"][first_room]["bump_stamp"]
    await api.put(f"/rooms/{first_room}/state/m.room.topic", {"topic": "not a bump"}, token=token)
    ordered = await Connection(api, token, conn_id="other").sync({"lists": {"all": a_list([0, 0])}})
    assert set(ordered["rooms"]) == {first_room}, "the topic change is the newest activity"
    assert ordered["rooms"][first_room]["bump_stamp"] == bump, "but not proper activity"
    changed = await connection.sync({"lists": {"all": a_list([0, 1])}})
    assert "bump_stamp" not in changed["rooms"][first_room], "omitted: it has not changed"
    for event_type in ("m.room.message", "m.room.encrypted", "m.sticker", "m.poll.start"):
        status, sent = await api.put(f"/rooms/{first_room}/send/{event_type}/{event_type}", {"body": "x"}, token=token)
        assert status == 200
        moved = await connection.sync({"lists": {"all": a_list([0, 1])}})
        assert moved["rooms"][first_room]["bump_stamp"] > bump, event_type
        bump = moved["rooms"][first_room]["bump_stamp"]
    await api.put(f"/rooms/{first_room}/send/m.reaction/r", {"body": "x"}, token=token)
    quiet = await connection.sync({"lists": {"all": a_list([0, 1])}})
    assert "bump_stamp" not in quiet["rooms"][first_room]


async def test_required_state_wildcards_exclusions_me_and_lazy_members(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat", name="R", topic="T")
    for user in (bob, carol):
        await api.post(f"/rooms/{room_id}/join", {}, token=user["access_token"])
    await api.send_text(bob["access_token"], room_id, "from bob")

    async def required(config, limit=1):
        response = await Connection(api, token).sync({"room_subscriptions": {room_id: {"timeline_limit": limit,
                                                                                         "required_state": config}}})
        return state_keys(response["rooms"][room_id])

    members = {("m.room.member", f"@{name}:localhost") for name in ("alice", "bob", "carol")}
    everything = await required([["*", "*"]])
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.topic", ""), ("m.room.join_rules", "")} | members <= everything
    # The proposal's example: all the state except the create event.
    assert await required({"include": [{}], "exclude": [{"type": "m.room.create", "state_key": ""}]}) \
        == everything - {("m.room.create", "")}
    assert await required([["m.room.member", "*"]]) == members
    assert await required([["*", ""]]) == {key for key in everything if key[1] == ""}
    assert await required({"include": [{"state_key": ""}]}) == {key for key in everything if key[1] == ""}
    assert await required([["m.room.member", "$ME"]]) == {("m.room.member", "@alice:localhost")}
    # Lazy members: all the other state, but only the members the timeline needs.
    lazy = await required({"include": [{}], "lazy_members": True})
    assert lazy == everything - members | {("m.room.member", "@bob:localhost")}
    assert await required([["m.room.member", "$LAZY"], ["m.room.member", "$ME"]]) == {
        ("m.room.member", "@bob:localhost"), ("m.room.member", "@alice:localhost")}
    explicit = {"include": [{}, {"type": "m.room.member", "state_key": "@carol:localhost"}], "lazy_members": True}
    assert await required(explicit) == lazy | {("m.room.member", "@carol:localhost")}
    # A wildcard that returns every member makes $LAZY moot.
    assert await required([["*", "*"], ["m.room.member", "$LAZY"]]) == everything


async def test_lazy_members_are_sent_once_per_connection_and_again_after_a_gap(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    lazy = {"room_subscriptions": {room_id: {"timeline_limit": 3,
                                             "required_state": {"include": [], "lazy_members": True}}}}
    connection = Connection(api, token)
    await api.send_text(bob["access_token"], room_id, "bob 1")
    first = await connection.sync(lazy)
    assert ("m.room.member", "@bob:localhost") in state_keys(first["rooms"][room_id])
    await api.post(f"/rooms/{room_id}/join", {}, token=carol["access_token"])
    await api.send_text(bob["access_token"], room_id, "bob 2")
    await api.send_text(carol["access_token"], room_id, "carol 1")
    second = await connection.sync(lazy)
    assert bodies(second["rooms"][room_id]) == ["bob 2", "carol 1"] and second["rooms"][room_id]["limited"] is False
    assert state_keys(second["rooms"][room_id]) == {("m.room.member", "@carol:localhost")}, "bob's was sent already"
    for i in range(4):
        await api.send_text(bob["access_token"], room_id, f"bob again {i}")
    gappy = await connection.sync(lazy)
    room = gappy["rooms"][room_id]
    assert room["limited"] is True
    # After a gap the client drops its member cache, so bob's member event comes again.
    assert state_keys(room) == {("m.room.member", "@bob:localhost")}


async def test_rooms_sent_get_only_what_changed(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat", name="first name")
    await api.send_text(token, room_id, "before")
    config = {"lists": {"all": a_list([0, 9], limit=3, required_state=[["m.room.name", ""], ["m.room.topic", ""]])}}
    connection = Connection(api, token)
    initial = await connection.sync(config)
    assert initial["rooms"][room_id]["name"] == "first name" and initial["rooms"][room_id]["initial"] is True
    nothing = await connection.sync(config)
    assert nothing["rooms"] == {}
    await api.send_text(token, room_id, "one")
    await api.send_text(token, room_id, "two")
    update = await connection.sync(config)
    room = update["rooms"][room_id]
    assert bodies(room) == ["one", "two"] and room["num_live"] == 2 and room["limited"] is False
    assert "initial" not in room and "required_state" not in room and "name" not in room
    assert "joined_count" not in room and "membership" not in room
    await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": "second name"}, token=token)
    renamed = (await connection.sync(config))["rooms"][room_id]
    assert renamed["name"] == "second name"
    assert [e["content"] for e in renamed["required_state"]] == [{"name": "second name"}]
    await api.put(f"/rooms/{room_id}/state/m.room.name", {}, token=token)
    unnamed = (await connection.sync(config))["rooms"][room_id]
    assert unnamed["name"] is None and unnamed["heroes"] == [], "no one else in the room"
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    joined = (await connection.sync(config))["rooms"][room_id]
    assert joined["joined_count"] == 2 and joined["heroes"] == [{"user_id": "@bob:localhost", "displayname": "bob"}]


async def test_a_gap_is_limited_and_prev_batch_and_pos_page_with_messages(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    config = {"lists": {"all": a_list([0, 0], limit=3)}}
    connection = Connection(api, token)
    await connection.sync(config)
    for i in range(8):
        await api.send_text(token, room_id, f"m{i}")
    gappy = (await connection.sync(config))["rooms"][room_id]
    assert bodies(gappy) == ["m5", "m6", "m7"] and gappy["limited"] is True and gappy["num_live"] == 3
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "from": gappy["prev_batch"], "limit": "5"},
                                 token=token)
    assert status == 200
    assert [e["content"]["body"] for e in page["chunk"]] == ["m4", "m3", "m2", "m1", "m0"]
    await api.send_text(token, room_id, "after the pos")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "from": connection.pos, "limit": "2"},
                                 token=token)
    assert status == 200, page
    assert [e["content"]["body"] for e in page["chunk"]] == ["m7", "m6"], "a pos pages like a next_batch"
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "f", "from": connection.pos}, token=token)
    assert [e["content"]["body"] for e in page["chunk"]] == ["after the pos"]


async def test_a_larger_timeline_limit_expands_the_timeline_at_once(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    for i in range(6):
        await api.send_text(token, room_id, f"m{i}")
    listed = {"lists": {"all": a_list([0, 0], limit=1)}}
    connection = Connection(api, token)
    first = await connection.sync(listed)
    assert bodies(first["rooms"][room_id]) == ["m5"]
    opened = {**listed, "room_subscriptions": {room_id: {"timeline_limit": 4, "required_state": {}}}}
    began = time.monotonic()
    expanded = await connection.sync(opened, timeout=5000)
    assert time.monotonic() - began < 2, "an expanded timeline is sent without waiting for news"
    room = expanded["rooms"][room_id]
    assert bodies(room) == ["m2", "m3", "m4", "m5"] and room["expanded_timeline"] is True
    assert room["num_live"] == 0 and room["limited"] is True and "initial" not in room
    # The client holds those four now: a limit of 3 needs nothing more.
    smaller = await connection.sync({**listed, "room_subscriptions": {room_id: {"timeline_limit": 3}}})
    assert smaller["rooms"] == {}


async def test_subscriptions_and_unsubscribing(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    quiet = await api.create_room(token, name="quiet")
    busy = await api.create_room(token, name="busy")
    await api.send_text(token, busy, "busy")
    connection = Connection(api, token)
    subscribed = {"lists": {"top": a_list([0, 0])},
                  "room_subscriptions": {quiet: {"timeline_limit": 2, "required_state": [["m.room.name", ""]]}}}
    first = await connection.sync(subscribed)
    assert set(first["rooms"]) == {quiet, busy}
    assert "lists" not in first["rooms"][quiet] and first["rooms"][busy]["lists"] == ["top"]
    await api.send_text(token, quiet, "still subscribed")
    await api.send_text(token, busy, "busiest")
    second = await connection.sync(subscribed)
    assert bodies(second["rooms"][quiet]) == ["still subscribed"] and bodies(second["rooms"][busy]) == ["busiest"]
    unsubscribed = {"lists": {"top": a_list([0, 0])}}
    await api.send_text(token, busy, "busy again")
    await api.send_text(token, quiet, "no longer subscribed")
    third = await connection.sync(unsubscribed)
    assert set(third["rooms"]) == {quiet}, "quiet is now the most active room"
    await api.send_text(token, busy, "busy once more")
    await api.send_text(token, quiet, "quiet once more")
    await api.send_text(token, busy, "and busy again")
    fourth = await connection.sync(unsubscribed)
    assert set(fourth["rooms"]) == {busy}, "quiet is below the window and no longer subscribed"
    status, error = await connection.request({"room_subscriptions": {f"!r{i}:localhost": {"timeline_limit": 1}
                                                                     for i in range(101)}})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")


async def test_invites_show_stripped_state_then_the_whole_room_once_joined(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], name="Party", invite=["@bob:localhost"])
    for i in range(3):
        await api.send_text(alice["access_token"], room_id, f"before {i}")
    config = {"lists": {"invites": a_list([0, 9], limit=5, is_invited=True), "all": a_list([0, 9], limit=5)}}
    connection = Connection(api, bob["access_token"])
    invited = await connection.sync(config)
    room = invited["rooms"][room_id]
    assert room["membership"] == "invite" and room["initial"] is True and sorted(room["lists"]) == ["all", "invites"]
    stripped = {(e["type"], e["state_key"]): e["content"] for e in room["stripped_state"]}
    assert stripped[("m.room.name", "")] == {"name": "Party"}
    assert stripped[("m.room.member", "@bob:localhost")]["membership"] == "invite"
    assert room["invite_state"] == room["stripped_state"]
    assert "timeline" not in room and "name" not in room and "required_state" not in room
    assert invited["lists"] == {"invites": {"count": 1}, "all": {"count": 1}}
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    joined = await connection.sync(config)
    room = joined["rooms"][room_id]
    assert room["membership"] == "join" and room["initial"] is True and room["lists"] == ["all"]
    assert bodies(room) == ["before 0", "before 1", "before 2"], "the history visibility is shared"
    assert room["timeline"][-1]["state_key"] == "@bob:localhost" and room["name"] == "Party"
    assert joined["lists"] == {"invites": {"count": 0}, "all": {"count": 1}}


async def test_heroes_counts_and_avatar(api):
    alice, bob, carol, dave = await api.register_all("alice", "bob", "carol", "dave")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", invite=["@dave:localhost"])
    for user in (carol, bob):
        await api.post(f"/rooms/{room_id}/join", {}, token=user["access_token"])
    await api.put("/profile/@carol:localhost/avatar_url", {"avatar_url": "mxc://localhost/carol"},
                  token=carol["access_token"])
    connection = Connection(api, alice["access_token"])
    config = {"lists": {"all": a_list([0, 0])}}
    room = (await connection.sync(config))["rooms"][room_id]
    assert room["joined_count"] == 3 and room["invited_count"] == 1
    # Joined members first (in the order they joined), then invited ones; never oneself.
    assert room["heroes"] == [{"user_id": "@bob:localhost", "displayname": "bob"},
                              {"user_id": "@carol:localhost", "displayname": "carol", "avatar_url": "mxc://localhost/carol"},
                              {"user_id": "@dave:localhost", "displayname": "dave"}]
    assert "name" not in room and "avatar" not in room
    await api.put(f"/rooms/{room_id}/state/m.room.avatar", {"url": "mxc://localhost/room"}, token=alice["access_token"])
    room = (await connection.sync(config))["rooms"][room_id]
    assert room["avatar"] == "mxc://localhost/room" and "heroes" not in room
    await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": "Named"}, token=alice["access_token"])
    room = (await connection.sync(config))["rooms"][room_id]
    assert room["name"] == "Named" and "heroes" not in room


async def test_notification_and_highlight_counts(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    connection = Connection(api, alice["access_token"])
    config = {"lists": {"all": a_list([0, 0])}}
    first = (await connection.sync(config))["rooms"][room_id]
    assert first["notification_count"] == 0 and first["highlight_count"] == 0
    await api.send_text(bob["access_token"], room_id, "hello")
    last = await api.send_text(bob["access_token"], room_id, "hello alice")
    counted = (await connection.sync(config))["rooms"][room_id]
    assert counted["notification_count"] == 2 and counted["highlight_count"] == 1
    await api.post(f"/rooms/{room_id}/receipt/m.read/{last}", {}, token=alice["access_token"])
    read = await connection.sync(config)
    assert read["rooms"][room_id]["notification_count"] == 0 and read["rooms"][room_id]["highlight_count"] == 0
    assert "timeline" not in read["rooms"][room_id], "only the counts changed"


async def test_left_kicked_and_banned_rooms(api):
    alice, bob = await api.register_all("alice", "bob")
    kicked, left, banned_early, left_unseen = [
        await api.create_room(alice["access_token"], preset="public_chat", name=n) for n in ("k", "l", "b", "u")]
    for room_id in (kicked, left, left_unseen):
        await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.post(f"/rooms/{banned_early}/ban", {"user_id": "@bob:localhost"}, token=alice["access_token"])
    await api.post(f"/rooms/{left_unseen}/leave", {}, token=bob["access_token"])
    connection = Connection(api, bob["access_token"])
    config = {"lists": {"all": a_list(limit=2, required_state=[["m.room.name", ""]])}}
    first = await connection.sync(config)
    assert set(first["rooms"]) == {kicked, left}, "never joined when banned; left by themselves before this connection"
    await api.post(f"/rooms/{kicked}/kick", {"user_id": "@bob:localhost"}, token=alice["access_token"])
    await api.post(f"/rooms/{left}/leave", {}, token=bob["access_token"])
    await api.send_text(alice["access_token"], kicked, "after the kick")
    second = await connection.sync(config)
    assert second["rooms"][kicked]["membership"] == "leave" and second["rooms"][left]["membership"] == "leave"
    last = second["rooms"][kicked]["timeline"][-1]
    assert last["type"] == "m.room.member" and last["sender"] == "@alice:localhost", "nothing after the kick"
    fresh = await Connection(api, bob["access_token"]).sync(config)
    assert set(fresh["rooms"]) == {kicked}, "a kick stays in the list; one's own leave only on a connection that saw the room"
    assert fresh["rooms"][kicked]["name"] == "k"
    # A subscription may still show a room one has been in.
    status, subscribed = await Connection(api, bob["access_token"]).request(
        {"room_subscriptions": {left_unseen: {"timeline_limit": 1}, banned_early: {"timeline_limit": 1}}})
    assert status == 200 and set(subscribed["rooms"]) == {left_unseen}


async def test_a_repeated_pos_is_answered_the_same_way(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    connection = Connection(api, token, conn_id="room-list")
    config = {"lists": {"all": a_list([0, 0], limit=5)}}
    start = await connection.sync(config)
    await api.send_text(token, room_id, "one")
    first_try = await connection.sync(config, pos=start["pos"])
    await api.send_text(token, room_id, "two")
    retry = await connection.sync(config, pos=start["pos"])
    assert bodies(first_try["rooms"][room_id]) == ["one"]
    assert bodies(retry["rooms"][room_id]) == ["one", "two"], "from the same state: nothing of the lost answer is missed"
    # The client goes on from the answer it processed; the positions before it are gone.
    assert (await connection.sync(config))["rooms"] == {}
    status, error = await connection.request(config, pos=start["pos"])
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")
    status, error = await connection.request(config, pos=first_try["pos"])
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_unknown_and_foreign_positions_are_refused(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"])
    phone = await login(api, "alice", "PHONE")
    mine = Connection(api, alice["access_token"], conn_id="a")
    await mine.sync({"lists": {"all": a_list([0, 0])}})
    for token, conn_id in ((phone, "a"), (bob["access_token"], "a"), (alice["access_token"], "b")):
        status, error = await Connection(api, token, conn_id).request({}, pos=mine.pos)
        assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS"), (token, conn_id)
    for garbage in ("nonsense", "1_2_3_4", "99_99_abc", "\u00b2_1_abc", "1_1_\u00e9"):
        status, error = await mine.request({}, pos=garbage)
        assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")
    # Connections are separate: a second conn_id starts from nothing and leaves the first alone.
    other = await Connection(api, alice["access_token"], conn_id="b").sync({"lists": {"all": a_list([0, 0])}})
    assert other["rooms"][room_id]["initial"] is True
    assert (await mine.sync({"lists": {"all": a_list([0, 0])}}))["rooms"] == {}
    # The pos travels as a query parameter too (the deployed dialect).
    status, answer = await api.post(SLIDING_SYNC, {"conn_id": "a"}, token=alice["access_token"], params={"pos": mine.pos})
    assert status == 200 and answer["rooms"] == {}


async def test_a_restart_forgets_connections(homeserver, api):
    (alice,) = await api.register_all("alice")
    connection = Connection(api, alice["access_token"])
    await connection.sync({})
    homeserver.sliding_sync.connections.__init__()  # what a restart leaves: no connection state
    status, error = await connection.request({})
    assert (status, error["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_long_poll_wakes_on_news_and_times_out_without(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    connection = Connection(api, bob["access_token"])
    config = {"lists": {"all": a_list([0, 0])}}
    await connection.sync(config)
    began = time.monotonic()
    idle = await connection.sync(config, timeout=300)
    assert 0.25 <= time.monotonic() - began < 2 and idle["rooms"] == {}

    async def send_later():
        await asyncio.sleep(0.4)
        await api.send_text(alice["access_token"], room_id, "wake up")

    sender = asyncio.create_task(send_later())
    began = time.monotonic()
    woke = await connection.sync(config, timeout=10000)
    await sender
    assert 0.35 <= time.monotonic() - began < 2.5
    assert bodies(woke["rooms"][room_id]) == ["wake up"]
    # Without a pos the timeout is ignored: the first answer is immediate.
    began = time.monotonic()
    await Connection(api, bob["access_token"]).sync(config, timeout=10000)
    assert time.monotonic() - began < 2


async def test_bad_requests_get_matrix_errors(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    status, error = await api.request("POST", SLIDING_SYNC, data=b"not json", token=token)
    assert (status, error["errcode"]) == (400, "M_NOT_JSON")
    cases = [
        ({"lists": []}, "M_BAD_JSON"),
        ({"lists": {"all": {"timeline_limit": "1"}}}, "M_BAD_JSON"),
        ({"lists": {"all": {"required_state": []}}}, "M_MISSING_PARAM"),
        ({"lists": {"all": {"timeline_limit": -1}}}, "M_INVALID_PARAM"),
        ({"lists": {"all": a_list([5, 2])}}, "M_INVALID_PARAM"),
        ({"lists": {"all": a_list([0])}}, "M_BAD_JSON"),
        ({"lists": {"all": {"timeline_limit": 1, "ranges": [[0, "9"]]}}}, "M_BAD_JSON"),
        ({"lists": {"all": {"timeline_limit": 1, "required_state": [["m.room.name"]]}}}, "M_BAD_JSON"),
        ({"lists": {"all": {"timeline_limit": 1, "required_state": {"include": [["m.room.name", ""]]}}}}, "M_BAD_JSON"),
        ({"lists": {"all": a_list(is_dm="yes")}}, "M_BAD_JSON"),
        ({"lists": {"all": a_list(room_types=[1])}}, "M_BAD_JSON"),
        ({"lists": {"a list": a_list()}}, "M_INVALID_PARAM"),
        ({"lists": {f"l{i}": a_list() for i in range(101)}}, "M_INVALID_PARAM"),
        ({"room_subscriptions": {"not a room": {"timeline_limit": 1}}}, "M_INVALID_PARAM"),
        ({"set_presence": "asleep"}, "M_INVALID_PARAM"),
        ({"timeout": "soon"}, "M_BAD_JSON"),
        ({"conn_id": 7}, "M_BAD_JSON"),
        ({"conn_id": "c" * 300}, "M_INVALID_PARAM"),
        ({"extensions": {"typing": {"enabled": "yes"}}}, "M_BAD_JSON"),
        ({"extensions": {"typing": {"enabled": True, "lists": "all"}}}, "M_BAD_JSON"),
    ]
    for body, errcode in cases:
        status, error = await api.post(SLIDING_SYNC, body, token=token)
        assert (status, error.get("errcode")) == (400, errcode), body
    status, error = await api.post(SLIDING_SYNC, {}, token=token, params={"timeout": "x", "pos": "1_1_a"})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    # U+0000 is refused in every request body, as everywhere (the web layer's one rule).
    status, error = await api.post(SLIDING_SYNC, {"conn_id": "a\u0000b", "lists": {"all": a_list(tags=["\u0000"])}},
                                   token=token)
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    status, error = await api.post(SLIDING_SYNC, {})
    assert (status, error["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_required_state_in_pairs_and_object_dialects_agree(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token, name="dialects")
    pairs = await Connection(api, token).sync({"lists": {"all": {"ranges": [[0, 0]], "timeline_limit": 1,
                                                                 "required_state": PAIRS}}})
    objects = await Connection(api, token).sync({"lists": {"all": {"range": [0, 0], "timeline_limit": 1, "required_state": {
        "include": [{"type": "m.room.name", "state_key": ""}, {"type": "m.room.member", "state_key": "$ME"},
                    {"type": "m.room.create", "state_key": ""}], "lazy_members": True}}}})
    assert state_keys(pairs["rooms"][room_id]) == state_keys(objects["rooms"][room_id]) == {
        ("m.room.name", ""), ("m.room.create", ""), ("m.room.member", "@alice:localhost")}


async def test_pos_and_next_batch_bound_relations_and_messages(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    root = await api.send_text(token, room_id, "root")

    async def reply(body):
        status, sent = await api.put(f"/rooms/{room_id}/send/m.room.message/{body}", {
            "msgtype": "m.text", "body": body, "m.relates_to": {"rel_type": "m.thread", "event_id": root}}, token=token)
        assert status == 200

    await reply("before")
    connection = Connection(api, token)
    await connection.sync({"lists": {"all": a_list([0, 0])}})
    status, classic = await api.get("/sync", token=token)
    await reply("after")
    path = f"/_matrix/client/v1/rooms/{room_id}/relations/{root}"
    for token_from in (connection.pos, classic["next_batch"]):
        status, newer = await api.get(path, params={"dir": "f", "from": token_from}, token=token)
        assert status == 200, newer
        assert [e["content"]["body"] for e in newer["chunk"]] == ["after"]
        status, older = await api.get(path, params={"dir": "b", "from": token_from}, token=token)
        assert [e["content"]["body"] for e in older["chunk"]] == ["before"]
        status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "from": token_from, "limit": "1"},
                                     token=token)
        assert [e["content"]["body"] for e in page["chunk"]] == ["before"]
    status, error = await api.get(path, params={"from": "s_not_a_token"}, token=token)
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
