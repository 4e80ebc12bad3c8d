"""Messages and feedback of the draft API: every msgtype and its keys, the server's own
keys, message IDs, delivery and read feedback (and today's read receipts), and the
paginated message list; the same messages seen through today's API."""

from __future__ import annotations

from draft_support import DraftApi

ROOM = "/rooms/room_beta@sy.org"


async def _room(draft: DraftApi) -> tuple[str, str]:
    """alice's public room_beta with bob in it: (alice's token, bob's token)."""
    _, alice = await draft.register("alice")
    _, bob = await draft.register("bob")
    await draft.ok("PUT", ROOM, {"visibility": "public"}, token=alice)
    await draft.ok("PUT", f"{ROOM}/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    return alice, bob


VALID_MESSAGES = [
    {"msgtype": "m.text", "body": "hello"},
    {"msgtype": "m.emote", "body": "waves"},
    {"msgtype": "m.image", "url": "mxc://sy.org/picture", "body": "a picture",
     "info": {"size": 1024, "w": 20, "h": 10, "mimetype": "image/png"}, "thumbnail_url": "mxc://sy.org/small",
     "thumbnail_info": {"size": 100, "w": 2, "h": 1, "mimetype": "image/png"}},
    {"msgtype": "m.audio", "url": "mxc://sy.org/song", "body": "Bee Gees - Stayin' Alive",
     "info": {"mimetype": "audio/aac", "size": 3000, "duration": 240000}},
    {"msgtype": "m.video", "url": "mxc://sy.org/video", "body": "Gangnam style",
     "info": {"mimetype": "video/mp4", "size": 9000, "duration": 250000, "w": 640, "h": 480,
              "thumbnail_url": "mxc://sy.org/frame", "thumbanil_info": {"w": 64, "h": 48}}},
    {"msgtype": "m.location", "geo_uri": "geo:51.5008,0.1247", "body": "Big Ben, London, UK",
     "thumbnail_url": "mxc://sy.org/map", "thumbnail_info": {"w": 100, "h": 100}},
    {"msgtype": "m.file", "url": "mxc://sy.org/file", "body": "notes.txt", "sender_ts": 139985843},
    {"msgtype": "org.example.poll", "question": "tea?"},
]


async def test_every_msgtype_of_the_draft_with_its_keys(draft: DraftApi, api):
    alice, bob = await _room(draft)
    for number, content in enumerate(VALID_MESSAGES):
        await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/msg{number}", content, token=alice)
        assert await draft.ok("GET", f"{ROOM}/messages/alice@sy.org/msg{number}", token=bob) == content
    # The short msgtypes of the draft's example become the m. ones.
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/short", {"msgtype": "emote", "body": "nods"}, token=alice)
    assert await draft.ok("GET", f"{ROOM}/messages/alice@sy.org/short", token=bob) == {"msgtype": "m.emote",
                                                                                        "body": "nods"}
    # Today's API sees the same messages, sent by @alice:sy.org, with the same content.
    carol = (await api.register("carol"))["access_token"]
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    status, _ = await api.post(f"/join/{room_id}", {}, token=carol)
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "20"}, token=carol)
    assert status == 200
    sent = [event for event in reversed(page["chunk"]) if event["type"] == "m.room.message"]
    assert [event["content"] for event in sent] == VALID_MESSAGES + [{"msgtype": "m.emote", "body": "nods"}]
    assert {event["sender"] for event in sent} == {"@alice:sy.org"}


INCOMPLETE_MESSAGES = [
    {},
    {"body": "no msgtype"},
    {"msgtype": 5, "body": "x"},
    {"msgtype": "m.text"},
    {"msgtype": "m.text", "body": 5},
    {"msgtype": "m.emote"},
    {"msgtype": "m.image", "body": "no url"},
    {"msgtype": "m.image", "url": "mxc://sy.org/x", "info": "not an object"},
    {"msgtype": "m.audio"},
    {"msgtype": "m.video", "url": 3},
    {"msgtype": "m.location", "body": "no geo_uri"},
    {"msgtype": "m.file"},
    {"msgtype": "m.text", "body": "x", "sender_ts": "yesterday"},
    {"msgtype": "m.image", "url": "mxc://sy.org/x", "thumbnail_url": 1},
    {"msgtype": "picture", "url": "mxc://sy.org/x"},
    {"msgtype": "m.text", "body": "a float", "weight": 1.5},
]


async def test_messages_missing_their_keys_are_bad_json(draft: DraftApi):
    alice, _ = await _room(draft)
    for content in INCOMPLETE_MESSAGES:
        status, body = await draft.put(f"{ROOM}/messages/alice@sy.org/bad", content, token=alice)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), (content, body)
    status, body = await draft.get(f"{ROOM}/messages/alice@sy.org/bad", token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_the_server_clobbers_from_and_its_timestamps(draft: DraftApi):
    alice, bob = await _room(draft)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/forged",
                   {"msgtype": "m.text", "body": "from bob?", "from": "alice@sy.org", "hs_ts": 1, "hsob_ts": 2,
                    "hsib_ts": 3}, token=bob)
    assert await draft.ok("GET", f"{ROOM}/messages/bob@sy.org/forged", token=alice) == {"msgtype": "m.text",
                                                                                          "body": "from bob?"}
    status, body = await draft.get(f"{ROOM}/messages/alice@sy.org/forged", token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    page = await draft.ok("GET", f"{ROOM}/messages/list?from=END&to=START&limit=1", token=alice)
    message = page["chunk"][0]
    assert message["from"] == "bob@sy.org" and message["msg_id"] == "forged"
    assert message["hs_ts"] == message["hsob_ts"] == message["hsib_ts"] > 10**12


async def test_a_msg_id_is_used_once_per_sender_and_room(draft: DraftApi):
    alice, bob = await _room(draft)
    for _ in range(2):
        await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/once", {"msgtype": "m.text", "body": "first"},
                       token=alice)
    await draft.ok("PUT", f"{ROOM}/messages/bob@sy.org/once", {"msgtype": "m.text", "body": "bob's"}, token=bob)
    page = await draft.ok("GET", f"{ROOM}/messages/list", token=bob)
    assert [(m["from"], m["msg_id"], m["content"]["body"]) for m in page["chunk"]] == [
        ("alice@sy.org", "once", "first"), ("bob@sy.org", "once", "bob's")]


async def test_two_devices_sending_one_msg_id_together_send_one_message(draft: DraftApi, api):
    import asyncio

    alice = (await api.register("alice", "a good password"))["access_token"]
    await draft.ok("PUT", ROOM, {"visibility": "public"}, token=alice)
    second = (await draft.post("/login", {"type": "m.login.password", "user": "alice",
                                          "password": "a good password"}))[1]["access_token"]
    results = await asyncio.gather(*(draft.put(f"{ROOM}/messages/alice@sy.org/together",
                                               {"msgtype": "m.text", "body": f"device {n}"}, token=token)
                                     for n, token in enumerate((alice, second, alice, second))))
    assert [status for status, _ in results] == [200] * 4
    page = await draft.ok("GET", f"{ROOM}/messages/list", token=alice)
    assert [m["msg_id"] for m in page["chunk"]] == ["together"]


async def test_messages_of_todays_api_have_their_event_id_as_msg_id(draft: DraftApi, api):
    alice = (await api.register("alice"))["access_token"]
    room_id = await api.create_room(alice, preset="public_chat", room_alias_name="room_beta")
    event_id = await api.send_text(alice, room_id, "sent today", txn="txn1")
    _, bob = await draft.register("bob")
    await draft.ok("PUT", f"{ROOM}/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    assert await draft.ok("GET", f"{ROOM}/messages/alice@sy.org/{event_id}", token=bob) == {
        "msgtype": "m.text", "body": "sent today"}
    status, body = await draft.get(f"{ROOM}/messages/alice@sy.org/txn1", token=bob)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")  # a transaction ID is not a msg_id
    page = await draft.ok("GET", f"{ROOM}/messages/list", token=bob)
    assert [(m["msg_id"], m["event_id"]) for m in page["chunk"]] == [(event_id, event_id)]


async def test_feedback_delivery_and_read(draft: DraftApi, api, homeserver):
    alice, bob = await _room(draft)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1", {"msgtype": "m.text", "body": "one"}, token=alice)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m2", {"msgtype": "m.text", "body": "two"}, token=alice)
    status, body = await draft.put(f"{ROOM}/messages/alice@sy.org/m1/feedback/alice@sy.org/d", {"sender_ts": 11},
                                   token=bob)  # $from is clobbered: this is bob's
    assert (status, body) == (200, {})
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {"sender_ts": 99}, token=bob)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m2/feedback/bob@sy.org/r", {}, token=bob)
    assert await draft.ok("GET", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", token=alice) == {
        "sender_ts": 11}
    assert await draft.ok("GET", f"{ROOM}/messages/alice@sy.org/m2/feedback/bob@sy.org/r", token=alice) == {}
    status, body = await draft.get(f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/r", token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # The read feedback is today's read receipt.
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    m2 = (await draft.ok("GET", f"{ROOM}/messages/list?from=END&to=START&limit=1", token=bob))["chunk"][0]
    status, synced = await api.get("/sync", token=alice)
    receipts = [event for event in synced["rooms"]["join"][room_id]["ephemeral"]["events"]
                if event["type"] == "m.receipt"]
    assert receipts and "@bob:sy.org" in receipts[0]["content"][m2["event_id"]]["m.read"]

    # A read receipt sent through today's API reads as feedback too, once per reader.
    status, _ = await api.post(f"/rooms/{room_id}/receipt/m.read/{m2['event_id']}", {}, token=alice)
    assert status == 200
    page = await draft.ok("GET", f"{ROOM}/messages/list?feedback=true", token=alice)
    bundled = {m["msg_id"]: [(f["from"], f["feedback"], f["content"]) for f in m["feedback"]] for m in page["chunk"]}
    assert bundled == {"m1": [("bob@sy.org", "d", {"sender_ts": 11})],
                       "m2": [("bob@sy.org", "r", {}), ("alice@sy.org", "r", {})]}
    assert await draft.ok("GET", f"{ROOM}/messages/alice@sy.org/m2/feedback/alice@sy.org/r", token=bob) == {}
    plain = await draft.ok("GET", f"{ROOM}/messages/list?feedback=false", token=alice)
    assert all("feedback" not in message for message in plain["chunk"])


MESSAGE_ERRORS = [
    ("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/x", {}, 400, "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {"sender_ts": "now"}, 400, "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {"sender_ts": 10**30}, 400, "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {"sender_ts": -1}, 400, "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/bob@sy.org/m9", {"msgtype": "m.text", "body": "x", "sender_ts": 10**30}, 400,
     "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/alice@sy.org/nope/feedback/bob@sy.org/d", {}, 404, "M_NOT_FOUND"),
    ("PUT", f"{ROOM}/messages/bob@sy.org/m1/feedback/bob@sy.org/d", {}, 404, "M_NOT_FOUND"),
    ("PUT", "/rooms/nowhere@sy.org/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {}, 404, "M_NOT_FOUND"),
    ("GET", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/x", None, 400, "M_BAD_JSON"),
    ("GET", f"{ROOM}/messages/alice@sy.org/m1/feedback/alice@sy.org/d", None, 404, "M_NOT_FOUND"),
    ("PUT", f"{ROOM}/messages/bob@sy.org/{'x' * 256}", {"msgtype": "m.text", "body": "x"}, 400, "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/bob@sy.org/nul%00", {"msgtype": "m.text", "body": "x"}, 400, "M_BAD_JSON"),
    ("PUT", f"{ROOM}/messages/bob@sy.org/m9", None, 400, "M_NOT_JSON"),
    ("PUT", "/rooms/nowhere@sy.org/messages/bob@sy.org/m9", {"msgtype": "m.text", "body": "x"}, 404, "M_NOT_FOUND"),
    ("GET", f"{ROOM}/messages/alice@sy.org/missing", None, 404, "M_NOT_FOUND"),
    ("GET", f"{ROOM}/messages/alice@not a server/m1", None, 400, "M_BAD_JSON"),
    ("GET", f"{ROOM}/messages/list?from=t1", None, 400, "M_BAD_PAGINATION"),
    ("GET", f"{ROOM}/messages/list?to=e1_2_3_4", None, 400, "M_BAD_PAGINATION"),
    ("GET", f"{ROOM}/messages/list?limit=ten", None, 400, "M_BAD_PAGINATION"),
    ("GET", f"{ROOM}/messages/list?from=t{10**30}_1", None, 400, "M_BAD_PAGINATION"),
    ("GET", f"{ROOM}/messages/list?from=t1_1&to=t1_{10**20}", None, 400, "M_BAD_PAGINATION"),
    ("GET", f"/events?from=e{10**30}_0_0_0&timeout=0", None, 200, None),
    ("GET", f"{ROOM}/messages/list?feedback=yes", None, 400, "M_BAD_PAGINATION"),
    ("GET", "/rooms/nowhere@sy.org/messages/list", None, 404, "M_NOT_FOUND"),
]


async def test_message_and_feedback_errors(draft: DraftApi):
    alice, bob = await _room(draft)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1", {"msgtype": "m.text", "body": "one"}, token=alice)
    for method, path, body, status, errcode in MESSAGE_ERRORS:
        got, answer = await draft.request(method, path, body, token=bob)
        assert (got, answer.get("errcode")) == (status, errcode), (method, path, answer)


async def test_strangers_may_not_read_send_or_give_feedback(draft: DraftApi):
    alice, _ = await _room(draft)
    _, stranger = await draft.register("stranger")
    await draft.ok("PUT", "/rooms/secret@sy.org", {}, token=alice)
    await draft.ok("PUT", "/rooms/secret@sy.org/messages/alice@sy.org/m1", {"msgtype": "m.text", "body": "hush"},
                   token=alice)
    for method, path, body in (
            ("PUT", "/rooms/secret@sy.org/messages/stranger@sy.org/m2", {"msgtype": "m.text", "body": "hi"}),
            ("GET", "/rooms/secret@sy.org/messages/alice@sy.org/m1", None),
            ("PUT", "/rooms/secret@sy.org/messages/alice@sy.org/m1/feedback/stranger@sy.org/r", {}),
            ("GET", "/rooms/secret@sy.org/messages/list", None)):
        status, answer = await draft.request(method, path, body, token=stranger)
        assert (status, answer["errcode"]) == (403, "M_FORBIDDEN"), (path, answer)


async def test_the_message_list_pages_either_way_without_repeating(draft: DraftApi):
    alice, bob = await _room(draft)
    for number in range(1, 8):
        await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m{number}", {"msgtype": "m.text", "body": str(number)},
                       token=alice)
        if number == 4:
            await draft.ok("PUT", f"{ROOM}/topic", {"topic": "not a message"}, token=alice)

    def bodies(page):
        return [message["content"]["body"] for message in page["chunk"]]

    first = await draft.ok("GET", f"{ROOM}/messages/list?from=START&limit=3", token=bob)
    assert bodies(first) == ["1", "2", "3"]
    second = await draft.ok("GET", f"{ROOM}/messages/list?from={first['end']}&to=END&limit=3", token=bob)
    assert bodies(second) == ["4", "5", "6"] and second["start"] == first["end"]
    rest = await draft.ok("GET", f"{ROOM}/messages/list?from={second['end']}&to=END", token=bob)
    assert bodies(rest) == ["7"]
    newest = await draft.ok("GET", f"{ROOM}/messages/list?from=END&to=START&limit=2", token=bob)
    assert bodies(newest) == ["7", "6"]
    older = await draft.ok("GET", f"{ROOM}/messages/list?from={newest['start']}&to=START&limit=10", token=bob)
    assert bodies(older) == ["5", "4", "3", "2", "1"]
    between = await draft.ok("GET", f"{ROOM}/messages/list?from={first['end']}&to={newest['start']}", token=bob)
    assert bodies(between) == ["4", "5"]
    nothing_later = await draft.ok("GET", f"{ROOM}/messages/list?from={newest['end']}&to=END", token=bob)
    assert nothing_later["chunk"] == []
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m8", {"msgtype": "m.text", "body": "8"}, token=alice)
    assert bodies(await draft.ok("GET", f"{ROOM}/messages/list?from={newest['end']}&to=END", token=bob)) == ["8"]
    assert (await draft.ok("GET", f"{ROOM}/messages/list?limit=0", token=bob))["chunk"] == []
