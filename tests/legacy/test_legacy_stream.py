"""The draft's event stream, GET /events: long polls woken by the notifier, the merged
streams (room events, feedback from the draft and today's read receipts, presence),
today's events that have no draft form, and the stream's tokens."""

from __future__ import annotations

import asyncio
import time

from draft_support import DraftApi

ROOM = "/rooms/room_beta@sy.org"


async def _room(draft: DraftApi) -> tuple[str, str]:
    _, alice = await draft.register("alice", "alice's password")
    _, bob = await draft.register("bob", "bob's password")
    await draft.ok("PUT", ROOM, {"visibility": "public"}, token=alice)
    await draft.ok("PUT", f"{ROOM}/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    return alice, bob


async def _now(draft: DraftApi, token: str) -> str:
    return (await draft.ok("GET", "/events?from=END&timeout=0", token=token))["end"]


async def test_a_long_poll_wakes_when_a_message_arrives(draft: DraftApi):
    alice, bob = await _room(draft)
    since = await _now(draft, bob)
    started = time.monotonic()
    status, quiet = await draft.get("/events", params={"from": since, "timeout": "0"}, token=bob)
    assert (status, quiet["chunk"], quiet["end"]) == (200, [], since)
    assert time.monotonic() - started < 2

    poll = asyncio.create_task(draft.get("/events", params={"from": since, "timeout": "20000"}, token=bob))
    await asyncio.sleep(0.3)
    assert not poll.done()
    started = time.monotonic()
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/wake", {"msgtype": "m.text", "body": "wake up"}, token=alice)
    status, woken = await asyncio.wait_for(poll, 10)
    assert status == 200 and time.monotonic() - started < 5
    assert [(event["type"], event.get("msg_id")) for event in woken["chunk"]] == [("m.room.message", "wake")]

    # from=END waits for what happens next, too.
    poll = asyncio.create_task(draft.get("/events", params={"from": "END", "timeout": "20000"}, token=bob))
    await asyncio.sleep(0.3)
    await draft.ok("PUT", f"{ROOM}/topic", {"topic": "awake"}, token=alice)
    status, woken = await asyncio.wait_for(poll, 10)
    assert [event["type"] for event in woken["chunk"]] == ["m.room.topic"]


async def test_an_empty_long_poll_answers_at_its_timeout(draft: DraftApi):
    _, bob = await _room(draft)
    started = time.monotonic()
    status, body = await draft.get("/events", params={"from": "END", "timeout": "400"}, token=bob)
    assert status == 200 and body["chunk"] == [] and 0.35 < time.monotonic() - started < 5


async def test_presence_and_feedback_in_the_stream(draft: DraftApi, api):
    alice, bob = await _room(draft)
    since = await _now(draft, bob)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1", {"msgtype": "m.text", "body": "one"}, token=alice)
    await draft.ok("PUT", "/presence/alice@sy.org/status", {"state": 1, "status_msg": "in a meeting"}, token=alice)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {"sender_ts": 5}, token=bob)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/r", {"sender_ts": 6}, token=bob)
    # A read receipt of today's API is feedback too.
    carol = (await api.register("carol"))["access_token"]
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    await api.post(f"/join/{room_id}", {}, token=carol)
    page = await draft.ok("GET", f"/events?from={since}&timeout=0", token=alice)
    message_id = next(event["event_id"] for event in page["chunk"] if event["type"] == "m.room.message")
    status, _ = await api.post(f"/rooms/{room_id}/receipt/m.read/{message_id}", {}, token=carol)
    assert status == 200

    stream = await draft.ok("GET", f"/events?from={since}&timeout=0", token=alice)
    kinds = [(event["type"], event.get("feedback"), event.get("from")) for event in stream["chunk"]]
    assert kinds == [
        ("m.room.message", None, "alice@sy.org"),
        ("m.presence", None, None),
        ("m.room.message.feedback", "d", "bob@sy.org"),
        ("m.room.message.feedback", "r", "bob@sy.org"),
        ("m.room.member", None, None),
        ("m.room.message.feedback", "r", "carol@sy.org"),
    ], stream["chunk"]
    presence = stream["chunk"][1]
    assert presence["content"] == {"user_id": "alice@sy.org", "state": 1, "status_msg": "in a meeting",
                                   "displayname": "alice"}
    delivered = stream["chunk"][2]
    assert delivered == {"event_id": delivered["event_id"], "type": "m.room.message.feedback",
                         "room_id": "room_beta@sy.org", "msg_id": "m1", "msgfrom": "alice@sy.org",
                         "from": "bob@sy.org", "feedback": "d", "hs_ts": delivered["hs_ts"],
                         "hsob_ts": delivered["hs_ts"], "hsib_ts": delivered["hs_ts"], "content": {"sender_ts": 5}}
    assert stream["chunk"][5]["content"] == {} and stream["chunk"][5]["msg_id"] == "m1"
    # Feedback given again is not news.
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m1/feedback/bob@sy.org/d", {"sender_ts": 7}, token=bob)
    again = await draft.ok("GET", f"/events?from={stream['end']}&timeout=0", token=alice)
    assert again["chunk"] == []


async def test_paging_the_merged_stream_one_by_one_repeats_and_skips_nothing(draft: DraftApi):
    alice, bob = await _room(draft)
    for number in range(3):
        await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m{number}", {"msgtype": "m.text", "body": "x"},
                       token=alice)
        await draft.ok("PUT", "/presence/alice@sy.org/status", {"state": 2 + number % 2}, token=alice)
        await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/m{number}/feedback/bob@sy.org/d", {}, token=bob)
    whole = await draft.ok("GET", "/events?timeout=0", token=alice)
    assert len(whole["chunk"]) == 9  # two joins, 3 messages, 3 feedback, and alice's presence as it is now

    async def page_through(start: str, query: str, next_token: str) -> list[str]:
        token, seen = start, []
        while True:
            page = await draft.ok("GET", f"/events?from={token}&{query}", token=alice)
            if not page["chunk"]:
                return seen
            seen += [event["event_id"] for event in page["chunk"]]
            token = page[next_token]

    everything = [event["event_id"] for event in whole["chunk"]]
    assert await page_through("START", "limit=1&timeout=0", "end") == everything
    assert await page_through("END", "to=START&limit=3", "start") == everything[::-1]


async def test_todays_events_without_a_draft_form(draft: DraftApi, api):
    alice = (await api.register("alice"))["access_token"]
    room_id = await api.create_room(alice, preset="public_chat", room_alias_name="room_beta")
    _, bob = await draft.register("bob")
    await draft.ok("PUT", f"{ROOM}/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    since = await _now(draft, bob)

    original = await api.send_text(alice, room_id, "helo")
    edit = {"msgtype": "m.text", "body": "* hello", "m.new_content": {"msgtype": "m.text", "body": "hello"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original}}
    for path, content in (
            (f"/rooms/{room_id}/send/m.room.message/e1", edit),
            (f"/rooms/{room_id}/send/m.reaction/r1", {"m.relates_to": {"rel_type": "m.annotation",
                                                                       "event_id": original, "key": "👍"}}),
            (f"/rooms/{room_id}/state/m.room.name", {"name": "Beta"}),
            (f"/rooms/{room_id}/state/org.example.custom/key", {"anything": True}),
            (f"/rooms/{room_id}/send/m.room.message.feedback/f1", {"feedback": "forged"}),
            (f"/rooms/{room_id}/send/m.room.message/bare", {"body": "no msgtype"}),
    ):
        status, body = await api.put(path, content, token=alice)
        assert status == 200, body
    doomed = await api.send_text(alice, room_id, "oops")
    status, _ = await api.put(f"/rooms/{room_id}/redact/{doomed}/t1", {}, token=alice)
    assert status == 200

    stream = await draft.ok("GET", f"/events?from={since}&timeout=0", token=bob)
    room_events = [event for event in stream["chunk"] if event["type"] != "m.presence"]  # alice is active
    shown = [(event["type"], event["content"].get("body", event["content"].get("m.relates_to", {}).get("key")))
             for event in room_events]
    assert shown == [("m.room.message", "helo"), ("m.room.message", "* hello"), ("m.reaction", "👍")], shown
    reaction = room_events[2]
    assert set(reaction) == {"event_id", "type", "room_id", "from", "hs_ts", "hsob_ts", "hsib_ts", "content"}
    assert reaction["room_id"] == "room_beta@sy.org" and reaction["from"] == "alice@sy.org"
    listed = await draft.ok("GET", f"{ROOM}/messages/list?from=END&to=START&limit=10", token=bob)
    assert [message["content"]["body"] for message in listed["chunk"]] == ["* hello", "helo"]


async def test_memberships_without_a_draft_form_and_leaving(draft: DraftApi, api):
    alice, bob = await _room(draft)
    _, carol = await draft.register("carol")
    await draft.ok("PUT", f"{ROOM}/members/carol@sy.org/state", {"membership": "join"}, token=carol)
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    since = await _now(draft, bob)
    status, _ = await api.post(f"/rooms/{room_id}/ban", {"user_id": "@carol:sy.org"}, token=alice)
    assert status == 200
    stream = await draft.ok("GET", f"/events?from={since}&timeout=0", token=bob)
    assert [(e["user_id"], e["from"], e["content"]["membership"]) for e in stream["chunk"]] == [
        ("carol@sy.org", "alice@sy.org", "leave")]

    await draft.ok("DELETE", f"{ROOM}/members/bob@sy.org/state", token=bob)
    await draft.ok("PUT", f"{ROOM}/messages/alice@sy.org/after", {"msgtype": "m.text", "body": "gone"}, token=alice)
    after = await draft.ok("GET", f"/events?from={stream['end']}&timeout=0", token=bob)
    assert [(e["type"], e.get("user_id"), e["content"].get("membership")) for e in after["chunk"]] == [
        ("m.room.member", "bob@sy.org", "leave")]


async def test_stream_pagination_errors(draft: DraftApi):
    _, token = await draft.register("bob")
    await draft.ok("PUT", ROOM, {}, token=token)
    await draft.ok("PUT", "/presence/bob@sy.org/status", {"state": 2}, token=token)
    for query in ("from=nonsense", "from=e1_2_3", "from=e1_2_3_x", "to=t1_1", "from=", "limit=-1", "limit=1.5",
                  "timeout=-5", "timeout=soon", "from=e5_0_0_0&to=e1_0_0_1"):
        status, body = await draft.get(f"/events?{query}", token=token)
        assert (status, body["errcode"]) == (400, "M_BAD_PAGINATION"), (query, body)
