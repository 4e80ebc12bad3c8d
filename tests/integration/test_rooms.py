"""The room server over real HTTP: creation, sending, state, membership, history, paging."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import nio
import pytest

from e2ee_support import Device
from ranvier.events.room_versions import ROOM_VERSIONS
from tests.conftest import with_server



async def state_of(api, token, room_id):
    status, events = await api.get(f"/rooms/{room_id}/state", token=token)
    assert status == 200, events
    return {(e["type"], e["state_key"]): e for e in events}


# -- creation ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset, join_rule, guest", [
    ("private_chat", "invite", "can_join"), ("trusted_private_chat", "invite", "can_join"),
    ("public_chat", "public", "forbidden"),
])
async def test_presets(api, preset, join_rule, guest):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset=preset, invite=["@bob:localhost"])
    state = await state_of(api, alice["access_token"], room_id)
    assert state[("m.room.join_rules", "")]["content"]["join_rule"] == join_rule
    assert state[("m.room.history_visibility", "")]["content"]["history_visibility"] == "shared"
    assert state[("m.room.guest_access", "")]["content"]["guest_access"] == guest
    levels = state[("m.room.power_levels", "")]["content"]["users"]
    assert levels["@alice:localhost"] == 100
    assert levels.get("@bob:localhost") == (100 if preset == "trusted_private_chat" else None)
    assert state[("m.room.member", "@bob:localhost")]["content"]["membership"] == "invite"


async def test_create_room_with_every_field(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    status, result = await api.post("/createRoom", {
        "visibility": "public", "room_alias_name": "lobby", "name": "Lobby", "topic": "Hello",
        "initial_state": [{"type": "m.room.avatar", "content": {"url": "mxc://localhost/abc"}},
                          {"type": "com.example.custom", "state_key": "k", "content": {"x": 1}}],
        "power_level_content_override": {"events_default": 10},
        "creation_content": {"type": "m.space", "m.federate": False}, "room_version": "10",
    }, token=token)
    assert status == 200 and result["room_alias"] == "#lobby:localhost"
    room_id = result["room_id"]
    state = await state_of(api, token, room_id)
    create_event = state[("m.room.create", "")]
    assert create_event["content"]["room_version"] == "10" and create_event["content"]["type"] == "m.space"
    assert create_event["content"]["m.federate"] is False and create_event["content"]["creator"] == "@alice:localhost"
    assert state[("m.room.canonical_alias", "")]["content"]["alias"] == "#lobby:localhost"
    assert state[("m.room.name", "")]["content"]["name"] == "Lobby"
    assert state[("m.room.topic", "")]["content"]["topic"] == "Hello"
    assert state[("m.room.avatar", "")]["content"]["url"] == "mxc://localhost/abc"
    assert state[("com.example.custom", "k")]["content"] == {"x": 1}
    assert state[("m.room.power_levels", "")]["content"]["events_default"] == 10
    status, again = await api.post("/createRoom", {"room_alias_name": "lobby"}, token=token)
    assert (status, again["errcode"]) == (400, "M_ROOM_IN_USE")


async def test_creation_events_come_in_the_spec_order(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="private_chat", name="N", topic="T",
                                    room_alias_name="ordered", invite=["@bob:localhost"],
                                    initial_state=[{"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "50"},
                                 token=alice["access_token"])
    order = [(e["type"], e.get("state_key")) for e in page["chunk"]]
    assert order == [
        ("m.room.create", ""), ("m.room.member", "@alice:localhost"), ("m.room.power_levels", ""),
        ("m.room.canonical_alias", ""), ("m.room.join_rules", ""), ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""), ("m.room.encryption", ""), ("m.room.name", ""), ("m.room.topic", ""),
        ("m.room.member", "@bob:localhost"),
    ]


@pytest.mark.parametrize("version", sorted(ROOM_VERSIONS, key=int))
async def test_every_room_version_can_be_created_and_used(api, version):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], room_version=version, preset="public_chat")
    if version == "12":
        assert ":" not in room_id, "v12 room IDs are derived from the create event"
    assert (await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"]))[0] == 200
    event_id = await api.send_text(bob["access_token"], room_id, "hi", "t1")
    if version in ("1", "2"):
        assert event_id.endswith(":localhost")
    status, event = await api.get(f"/rooms/{room_id}/event/{quote(event_id, safe='')}", token=alice["access_token"])
    assert status == 200 and event["content"]["body"] == "hi"
    status, redaction = await api.put(f"/rooms/{room_id}/redact/{quote(event_id, safe='')}/r1", {}, token=alice["access_token"])
    assert status == 200, redaction
    status, event = await api.get(f"/rooms/{room_id}/event/{quote(event_id, safe='')}", token=alice["access_token"])
    assert event["content"] == {} and event["unsigned"]["redacted_because"]["event_id"] == redaction["event_id"]


async def test_unknown_room_version_is_refused(api):
    (alice,) = await api.register_all("alice")
    status, body = await api.post("/createRoom", {"room_version": "99"}, token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")


# -- sending and state -----------------------------------------------------------------------


async def test_repeated_transaction_id_creates_nothing(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    first = await api.send_text(token, room_id, "once", "same-txn")
    second = await api.send_text(token, room_id, "twice?", "same-txn")
    assert first == second
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "5"}, token=token)
    bodies = [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["once"]
    assert page["chunk"][0]["unsigned"]["transaction_id"] == "same-txn"


async def test_concurrent_repeats_of_one_transaction_make_one_event(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    ids = await asyncio.gather(*(api.send_text(token, room_id, "x", "racing") for _ in range(10)))
    assert len(set(ids)) == 1


async def test_state_get_put_and_format_event(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    status, body = await api.put(f"/rooms/{room_id}/state/com.example.thing/a%2Fb", {"v": 1}, token=token)
    assert status == 200
    assert await api.get(f"/rooms/{room_id}/state/com.example.thing/a%2Fb", token=token) == (200, {"v": 1})
    status, event = await api.get(f"/rooms/{room_id}/state/com.example.thing/a%2Fb", params={"format": "event"},
                                  token=token)
    assert event["event_id"] == body["event_id"] and event["state_key"] == "a/b"
    assert (await api.put(f"/rooms/{room_id}/state/m.room.topic", {"topic": "x"}, token=token))[0] == 200
    assert await api.get(f"/rooms/{room_id}/state/m.room.topic/", token=token) == (200, {"topic": "x"})
    status, body = await api.get(f"/rooms/{room_id}/state/m.room.nothing", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_bad_event_content_is_refused(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    status, body = await api.put(f"/rooms/{room_id}/send/m.room.message/f1", data=b'{"a": 1.5}', token=token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.put(f"/rooms/{room_id}/send/m.room.message/f2", {"big": "x" * 70000}, token=token)
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    status, body = await api.put("/rooms/!nope:localhost/send/m.room.message/f3", {"body": "x"}, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_power_level_violations_are_forbidden(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    for path, body in [
        (f"/rooms/{room_id}/state/m.room.name", {"name": "mine now"}),
        (f"/rooms/{room_id}/state/m.room.power_levels", {"users": {"@bob:localhost": 100}}),
    ]:
        status, result = await api.put(path, body, token=bob["access_token"])
        assert (status, result["errcode"]) == (403, "M_FORBIDDEN"), path
    status, result = await api.post(f"/rooms/{room_id}/kick", {"user_id": "@alice:localhost"}, token=bob["access_token"])
    assert (status, result["errcode"]) == (403, "M_FORBIDDEN")
    message = await api.send_text(alice["access_token"], room_id, "mine", "a1")
    status, result = await api.put(f"/rooms/{room_id}/redact/{quote(message, safe='')}/r", {}, token=bob["access_token"])
    assert (status, result["errcode"]) == (403, "M_FORBIDDEN")
    status, result = await api.put(f"/rooms/{room_id}/state/m.room.member/@alice:localhost",
                                   {"membership": "leave"}, token=bob["access_token"])
    assert (status, result["errcode"]) == (403, "M_FORBIDDEN")


async def test_strangers_cannot_send_or_read(api):
    alice, eve = await api.register_all("alice", "eve")
    room_id = await api.create_room(alice["access_token"])
    event_id = await api.send_text(alice["access_token"], room_id, "secret", "s1")
    status, body = await api.put(f"/rooms/{room_id}/send/m.room.message/e1", {"body": "x"}, token=eve["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    for path in (f"/rooms/{room_id}/messages", f"/rooms/{room_id}/state", f"/rooms/{room_id}/event/{quote(event_id, safe='')}",
                 f"/rooms/{room_id}/context/{quote(event_id, safe='')}", f"/rooms/{room_id}/members"):
        status, body = await api.get(path, token=eve["access_token"])
        assert status in (403, 404) and "secret" not in str(body), path


async def test_a_room_that_does_not_exist_reads_as_one_the_reader_is_not_in(api):
    """A stranger cannot tell an unknown room from one they may not read: 403 for both."""
    alice, = await api.register_all("alice")
    for path in ("/rooms/!nowhere:localhost/messages", "/rooms/!nowhere:localhost/state",
                 "/rooms/!nowhere:localhost/members", "/rooms/!nowhere:localhost/state/m.room.name",
                 "/rooms/!nowhere:localhost/members?at=s1", "/_matrix/client/v1/rooms/!nowhere:localhost/threads",
                 "/_matrix/client/v1/rooms/!nowhere:localhost/timestamp_to_event?ts=1&dir=f"):
        status, body = await api.get(path, token=alice["access_token"])
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), path


# -- membership --------------------------------------------------------------------------------


async def test_membership_lifecycle_with_nio(homeserver, tmp_path):
    clients = {}
    try:
        for name in ("alice", "bob"):
            client = nio.AsyncClient(homeserver.base_url, f"@{name}:localhost", store_path=str(tmp_path),
                                     config=nio.AsyncClientConfig(encryption_enabled=False))
            assert isinstance(await client.register(name, "correct horse"), nio.RegisterResponse)
            clients[name] = client
        alice, bob = clients["alice"], clients["bob"]
        created = await alice.room_create(name="nio room", preset=nio.RoomPreset.private_chat)
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await bob.join(room_id), nio.JoinError), "invite-only without an invite"
        assert isinstance(await alice.room_invite(room_id, "@bob:localhost"), nio.RoomInviteResponse)
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello"})
        assert isinstance(sent, nio.RoomSendResponse), sent
        members = await alice.joined_members(room_id)
        assert {m.user_id for m in members.members} == {"@alice:localhost", "@bob:localhost"}
        assert isinstance(await alice.room_kick(room_id, "@bob:localhost", reason="bye"), nio.RoomKickResponse)
        assert isinstance(await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}),
                          nio.RoomSendError)
        assert isinstance(await alice.room_ban(room_id, "@bob:localhost", reason="spam"), nio.RoomBanResponse)
        assert isinstance(await alice.room_invite(room_id, "@bob:localhost"), nio.RoomInviteError)
        assert isinstance(await alice.room_unban(room_id, "@bob:localhost"), nio.RoomUnbanResponse)
        assert isinstance(await alice.room_invite(room_id, "@bob:localhost"), nio.RoomInviteResponse)
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        assert isinstance(await bob.room_leave(room_id), nio.RoomLeaveResponse)
        assert isinstance(await bob.room_forget(room_id), nio.RoomForgetResponse)
        redacted = await alice.room_redact(room_id, sent.event_id, reason="cleanup")
        assert isinstance(redacted, nio.RoomRedactResponse), redacted
        messages = await alice.room_messages(room_id, start="", limit=50)
        assert isinstance(messages, nio.RoomMessagesResponse), messages
    finally:
        for client in clients.values():
            await client.close()


async def test_ban_reason_and_member_listing(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    for user in (bob, carol):
        await api.post(f"/rooms/{room_id}/join", {}, token=user["access_token"])
    await api.post(f"/rooms/{room_id}/ban", {"user_id": "@carol:localhost", "reason": "rude"}, token=alice["access_token"])
    status, body = await api.post(f"/rooms/{room_id}/join", {}, token=carol["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, members = await api.get(f"/rooms/{room_id}/members", params={"membership": "ban"}, token=alice["access_token"])
    (banned,) = members["chunk"]
    assert banned["state_key"] == "@carol:localhost" and banned["content"]["reason"] == "rude"
    status, members = await api.get(f"/rooms/{room_id}/members", params={"not_membership": "ban"},
                                    token=alice["access_token"])
    assert {m["state_key"] for m in members["chunk"]} == {"@alice:localhost", "@bob:localhost"}
    status, rooms = await api.get("/joined_rooms", token=bob["access_token"])
    assert rooms == {"joined_rooms": [room_id]}


async def test_join_by_alias_copies_the_profile(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", room_alias_name="hall")
    status, body = await api.post("/join/%23hall:localhost", {}, token=bob["access_token"])
    assert (status, body) == (200, {"room_id": room_id})
    status, member = await api.get(f"/rooms/{room_id}/state/m.room.member/@bob:localhost", token=bob["access_token"])
    assert member == {"membership": "join", "displayname": "bob"}
    status, body = await api.post("/join/%23nowhere:localhost", {}, token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_knock_and_accept(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], room_version="11",
                                    initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    status, body = await api.post(f"/knock/{room_id}", {"reason": "let me in"}, token=bob["access_token"])
    assert (status, body) == (200, {"room_id": room_id})
    status, members = await api.get(f"/rooms/{room_id}/members", params={"membership": "knock"}, token=alice["access_token"])
    assert [m["content"]["reason"] for m in members["chunk"]] == ["let me in"]
    assert (await api.post(f"/rooms/{room_id}/invite", {"user_id": "@bob:localhost"}, token=alice["access_token"]))[0] == 200
    assert (await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"]))[0] == 200


async def test_restricted_join_via_membership_of_another_room(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    space = await api.create_room(alice["access_token"], preset="public_chat")
    room_id = await api.create_room(alice["access_token"], initial_state=[{"type": "m.room.join_rules", "content": {
                                    "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    await api.post(f"/rooms/{space}/join", {}, token=bob["access_token"])
    status, body = await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    assert status == 200, body
    status, member = await api.get(f"/rooms/{room_id}/state/m.room.member/@bob:localhost", token=bob["access_token"])
    assert member["join_authorised_via_users_server"] == "@alice:localhost"
    status, body = await api.post(f"/rooms/{room_id}/join", {}, token=carol["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_forget_requires_leaving_first(api):
    (alice,) = await api.register_all("alice")
    room_id = await api.create_room(alice["access_token"])
    status, body = await api.post(f"/rooms/{room_id}/forget", {}, token=alice["access_token"])
    assert status == 400
    await api.post(f"/rooms/{room_id}/leave", {}, token=alice["access_token"])
    assert (await api.post(f"/rooms/{room_id}/forget", {}, token=alice["access_token"]))[0] == 200


# -- history ---------------------------------------------------------------------------------


@pytest.mark.parametrize("visibility, sees_earlier", [("shared", True), ("joined", False), ("invited", False),
                                                      ("world_readable", True)])
async def test_history_visibility_for_a_late_joiner(api, visibility, sees_earlier):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat")
    await api.put(f"/rooms/{room_id}/state/m.room.history_visibility", {"history_visibility": visibility}, token=token)
    early = await api.send_text(token, room_id, "before bob", "h1")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    late = await api.send_text(token, room_id, "after bob joined", "h2")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "50"}, token=bob["access_token"])
    bodies = [e["content"].get("body") for e in page["chunk"]]
    assert "after bob joined" in bodies
    assert ("before bob" in bodies) == sees_earlier
    status, _ = await api.get(f"/rooms/{room_id}/event/{quote(early, safe='')}", token=bob["access_token"])
    assert status == (200 if sees_earlier else 404)
    assert (await api.get(f"/rooms/{room_id}/event/{quote(late, safe='')}", token=bob["access_token"]))[0] == 200


async def test_leaver_sees_nothing_after_leaving(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.put(f"/rooms/{room_id}/state/m.room.history_visibility", {"history_visibility": "joined"},
                  token=alice["access_token"])
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.send_text(alice["access_token"], room_id, "while bob was here", "l1")
    await api.post(f"/rooms/{room_id}/leave", {}, token=bob["access_token"])
    later = await api.send_text(alice["access_token"], room_id, "after bob left", "l2")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "50"}, token=bob["access_token"])
    bodies = [e["content"].get("body") for e in page["chunk"]]
    assert "while bob was here" in bodies and "after bob left" not in bodies
    assert (await api.get(f"/rooms/{room_id}/event/{quote(later, safe='')}", token=bob["access_token"]))[0] == 404
    status, state = await api.get(f"/rooms/{room_id}/state", token=bob["access_token"])
    assert status == 200, "the state as it was when bob left"
    assert any(e["state_key"] == "@bob:localhost" and e["content"]["membership"] == "leave" for e in state)


async def test_paging_1000_events_both_ways_without_gaps_or_duplicates(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    sent = []
    for start in range(0, 1000, 50):
        sent += await asyncio.gather(*(api.send_text(token, room_id, str(i), f"p{i}") for i in range(start, start + 50)))
    seen_backwards, token_from = [], None
    while True:
        params = {"limit": "97", "dir": "b"}
        if token_from:
            params["from"] = token_from
        status, page = await api.get(f"/rooms/{room_id}/messages", params=params, token=token)
        assert status == 200
        seen_backwards += [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        if "end" not in page:
            break
        token_from = page["end"]
    assert len(seen_backwards) == 1000 and set(seen_backwards) == set(sent)
    seen_forwards, token_from = [], None
    while True:
        params = {"limit": "113", "dir": "f"}
        if token_from:
            params["from"] = token_from
        status, page = await api.get(f"/rooms/{room_id}/messages", params=params, token=token)
        seen_forwards += [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        if "end" not in page:
            break
        token_from = page["end"]
    assert seen_forwards == list(reversed(seen_backwards))
    bodies_in_order = []
    for event_id in seen_forwards[:5]:
        bodies_in_order.append((await api.get(f"/rooms/{room_id}/event/{quote(event_id, safe='')}", token=token))[1]["content"]["body"])
    assert bodies_in_order == sorted(bodies_in_order, key=int) or len(set(bodies_in_order)) == 5


async def test_messages_filter_and_to_token(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    for i in range(6):
        await api.send_text((alice, bob)[i % 2]["access_token"], room_id, f"m{i}", f"f{i}")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={
        "limit": "10", "filter": '{"senders": ["@bob:localhost"], "types": ["m.room.*"], "lazy_load_members": true}'},
        token=alice["access_token"])
    assert [e["content"].get("body") for e in page["chunk"]] == ["m5", "m3", "m1", None]
    assert {e["state_key"] for e in page["state"]} == {"@bob:localhost"}
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"filter": "not json"}, token=alice["access_token"])
    assert (status, page["errcode"]) == (400, "M_INVALID_PARAM")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"filter": '{"types": "x"}'},
                                 token=alice["access_token"])
    assert (status, page["errcode"]) == (400, "M_BAD_JSON")
    status, first = await api.get(f"/rooms/{room_id}/messages", params={"limit": "2"}, token=alice["access_token"])
    status, bounded = await api.get(f"/rooms/{room_id}/messages", params={"limit": "50", "dir": "f", "from": first["end"],
                                                                         "to": first["start"]}, token=alice["access_token"])
    assert [e["event_id"] for e in bounded["chunk"]] == [e["event_id"] for e in reversed(first["chunk"])]


async def test_context_around_an_event(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    ids = [await api.send_text(token, room_id, str(i), f"c{i}") for i in range(7)]
    status, ctx = await api.get(f"/rooms/{room_id}/context/{quote(ids[3], safe='')}", params={"limit": "4"}, token=token)
    assert status == 200
    assert ctx["event"]["event_id"] == ids[3]
    assert [e["event_id"] for e in ctx["events_before"]] == [ids[2], ids[1]]
    assert [e["event_id"] for e in ctx["events_after"]] == [ids[4], ids[5]]
    assert any(e["type"] == "m.room.create" for e in ctx["state"])
    status, after = await api.get(f"/rooms/{room_id}/messages", params={"from": ctx["end"], "dir": "f"}, token=token)
    assert [e["event_id"] for e in after["chunk"]] == [ids[6]]
    status, before = await api.get(f"/rooms/{room_id}/messages", params={"from": ctx["start"], "limit": "1"}, token=token)
    assert [e["event_id"] for e in before["chunk"]] == [ids[0]]


async def test_state_at_an_old_event_is_the_state_it_was(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat", name="first name")
    old = await api.send_text(token, room_id, "old", "o1")
    for i in range(40):  # long enough to pass a state snapshot boundary
        await api.put(f"/rooms/{room_id}/state/m.room.name", {"name": f"name {i}"}, token=token)
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    status, ctx = await api.get(f"/rooms/{room_id}/context/{quote(old, safe='')}", params={"limit": "0"}, token=token)
    names = [e["content"]["name"] for e in ctx["state"] if e["type"] == "m.room.name"]
    assert names == ["first name"]
    assert not any(e["state_key"] == "@bob:localhost" for e in ctx["state"] if e["type"] == "m.room.member")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "1"}, token=token)
    status, members_then = await api.get(f"/rooms/{room_id}/members", params={"at": ctx["start"]}, token=token)
    assert {m["state_key"] for m in members_then["chunk"]} == {"@alice:localhost"}
    status, members_now = await api.get(f"/rooms/{room_id}/members", token=token)
    assert {m["state_key"] for m in members_now["chunk"]} == {"@alice:localhost", "@bob:localhost"}
    assert (await api.get(f"/rooms/{room_id}/state/m.room.name", token=token))[1] == {"name": "name 39"}


async def test_timestamp_to_event(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    event_id = await api.send_text(token, room_id, "x", "ts1")
    status, event = await api.get(f"/rooms/{room_id}/event/{quote(event_id, safe='')}", token=token)
    ts = event["origin_server_ts"]
    status, found = await api.get(f"/_matrix/client/v1/rooms/{room_id}/timestamp_to_event",
                                  params={"ts": str(ts + 10_000), "dir": "b"}, token=token)
    assert (status, found["event_id"]) == (200, event_id)
    status, found = await api.get(f"/_matrix/client/v1/rooms/{room_id}/timestamp_to_event",
                                  params={"ts": str(ts + 10_000), "dir": "f"}, token=token)
    assert (status, found["errcode"]) == (404, "M_NOT_FOUND")


async def test_repeated_transaction_after_a_restart_returns_the_first_event(server_config):
    async def first(api):
        user = await api.register("restarter")
        room_id = await api.create_room(user["access_token"])
        return user["access_token"], room_id, await api.send_text(user["access_token"], room_id, "once", "kept-txn")

    token, room_id, event_id = await with_server(server_config, first)

    async def again(api):
        repeated = await api.send_text(token, room_id, "twice?", "kept-txn")
        status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "5"}, token=token)
        return repeated, [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]

    repeated, bodies = await with_server(server_config, again)
    assert repeated == event_id and bodies == ["once"]


async def test_deactivated_users_leave_their_rooms(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    other = await api.create_room(alice["access_token"], invite=["@bob:localhost"])
    _, challenge = await api.post("/account/deactivate", {}, token=bob["access_token"])
    status, _ = await api.post("/account/deactivate", {"auth": {
        "type": "m.login.password", "session": challenge["session"], "user": "bob", "password": "correct horse"}},
        token=bob["access_token"])
    assert status == 200
    for rid in (room_id, other):
        status, member = await api.get(f"/rooms/{rid}/state/m.room.member/@bob:localhost", token=alice["access_token"])
        assert member["membership"] == "leave", rid


async def test_accounts_deactivated_beside_the_server_are_made_to_leave(api, homeserver):
    """The command line deactivates in the database only; the server's sweep drops the
    keys of the devices that went and writes the leaves."""
    alice, bob = await api.register_all("alice", "bob")
    keys = Device.of(bob).device_keys()
    assert (await api.post("/keys/upload", {"device_keys": keys}, token=bob["access_token"]))[0] == 200
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    invited = await api.create_room(alice["access_token"], invite=["@bob:localhost"])
    assert await homeserver.users.store.deactivate("@bob:localhost")  # as the command line does

    await homeserver.sweep_deactivated_accounts()
    await homeserver.sweep_deactivated_accounts()  # nothing left to do: no second leave

    assert await homeserver.db.fetchall("SELECT device_id FROM e2e_device_keys WHERE user_id = ?",
                                        "@bob:localhost") == []

    status, joined = await api.get(f"/rooms/{room_id}/joined_members", token=alice["access_token"])
    assert list(joined["joined"]) == ["@alice:localhost"]
    for rid in (room_id, invited):
        status, member = await api.get(f"/rooms/{rid}/state/m.room.member/@bob:localhost", token=alice["access_token"])
        assert (member["membership"], status) == ("leave", 200), rid
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "20"},
                                 token=alice["access_token"])
    leaves = [e for e in page["chunk"] if e["type"] == "m.room.member" and e["state_key"] == "@bob:localhost"
              and e["content"]["membership"] == "leave"]
    assert [e["sender"] for e in leaves] == ["@bob:localhost"]
