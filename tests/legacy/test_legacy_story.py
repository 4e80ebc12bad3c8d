"""The draft's closing example, the story of bob, run with the draft's own requests; and
the two worked examples of its pagination streaming API.

The server is sy.org as in the draft. alice and friend_of_alice live on sy.org here too
(this server does not federate yet), so randomhost.org reads sy.org throughout.
"""

from __future__ import annotations

from unittest.mock import ANY
from urllib.parse import quote

from draft_support import DraftApi


def like(actual, expected) -> bool:
    """`actual` has every key of `expected` with an equal value (ANY matches anything), in
    nested objects and lists of the same length alike."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(key in actual and like(actual[key], value)
                                                for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            like(a, e) for a, e in zip(actual, expected))
    return expected == actual


async def _chat_log_before_bob(draft: DraftApi) -> tuple[str, str]:
    """Three public rooms, and room_beta's history: three messages from alice, each
    delivered to her friend. Returns alice's and her friend's tokens."""
    _, alice = await draft.register("alice", "alice's password")
    _, friend = await draft.register("friend_of_alice", "friend's password")
    for name, topic in (("room_alpha", "I am a fish"), ("room_beta", "Hello world"),
                        ("room_xyz", "Goodbye cruel world")):
        await draft.ok("PUT", f"/rooms/{name}@sy.org", {"visibility": "public"}, token=alice)
        await draft.ok("PUT", f"/rooms/{name}@sy.org/topic", {"topic": topic}, token=alice)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/members/friend_of_alice@sy.org/state", {"membership": "join"},
                   token=friend)
    for msg_id, body, sender_ts in (("aaaaaaa", "hi friend!", 139950000), ("afhgfff", "you're my only friend",
                                                                           139970122),
                                    ("avefifu", "afk", 139985843)):
        await draft.ok("PUT", f"/rooms/room_beta@sy.org/messages/alice@sy.org/{msg_id}",
                       {"msgtype": "m.text", "body": body}, token=alice)
        await draft.ok("PUT", f"/rooms/room_beta@sy.org/messages/alice@sy.org/{msg_id}/feedback/"
                              "friend_of_alice@sy.org/d", {"sender_ts": sender_ts}, token=friend)
    return alice, friend


async def test_the_story_of_bob(draft: DraftApi):
    alice, _ = await _chat_log_before_bob(draft)

    # REGISTER FOR AN ACCOUNT
    status, registered = await draft.post("/register", {})
    assert status == 200 and set(registered) == {"user_id", "access_token"}
    bob, token = registered["user_id"], registered["access_token"]
    assert bob.endswith("@sy.org") and not bob.startswith("@")

    # GET PUBLIC ROOM LIST
    status, rooms = await draft.get(f"/rooms/list?access_token={token}")
    assert status == 200
    assert like(rooms, {"total": 3, "chunk": [
        {"room_id": "room_alpha@sy.org", "topic": "I am a fish"},
        {"room_id": "room_beta@sy.org", "topic": "Hello world"},
        {"room_id": "room_xyz@sy.org", "topic": "Goodbye cruel world"},
    ]}), rooms

    # JOIN ROOM room_beta@sy.org
    status, body = await draft.put(f"/rooms/room_beta%40sy.org/members/{quote(bob)}/state?access_token={token}",
                                   {"membership": "join"})
    assert (status, body) == (200, {})

    # GET LATEST 2 MESSAGES WITH FEEDBACK
    status, latest = await draft.get(f"/rooms/room_beta%40sy.org/messages/list?from=END&to=START&limit=2&"
                                     f"feedback=true&access_token={token}")
    assert status == 200
    assert like(latest, {"chunk": [
        {"event_id": ANY, "type": "m.room.message", "room_id": "room_beta@sy.org", "msg_id": "avefifu",
         "from": "alice@sy.org", "hs_ts": ANY, "content": {"msgtype": "m.text", "body": "afk"},
         "feedback": [{"from": "friend_of_alice@sy.org", "feedback": "d", "hs_ts": ANY,
                       "content": {"sender_ts": 139985843}}]},
        {"event_id": ANY, "type": "m.room.message", "room_id": "room_beta@sy.org", "msg_id": "afhgfff",
         "from": "alice@sy.org", "hs_ts": ANY, "content": {"msgtype": "m.text", "body": "you're my only friend"},
         "feedback": [{"from": "friend_of_alice@sy.org", "feedback": "d", "hs_ts": ANY,
                       "content": {"sender_ts": 139970122}}]},
    ], "start": ANY, "end": ANY}), latest
    assert all(isinstance(message["hs_ts"], int) for message in latest["chunk"])
    # The compressed feedback leaves out the message's own keys.
    assert not {"type", "event_id", "room_id", "msgfrom", "msg_id"} & set(latest["chunk"][0]["feedback"][0])

    # SEND MESSAGE IN ROOM
    status, body = await draft.put(f"/rooms/room_beta%40sy.org/messages/{quote(bob)}/m0001?access_token={token}",
                                   {"msgtype": "text", "body": "Hi everyone"})
    assert (status, body) == (200, {})

    # Checking the event stream for this user
    status, stream = await draft.get(f"/events?from=START&access_token={token}")
    assert status == 200
    assert like(stream, {"chunk": [
        {"event_id": ANY, "type": "m.room.member", "room_id": "room_beta@sy.org", "user_id": bob,
         "content": {"membership": "join"}},
        {"event_id": ANY, "type": "m.room.message", "room_id": "room_beta@sy.org", "msg_id": "m0001", "from": bob,
         "hs_ts": ANY, "content": {"msgtype": "m.text", "body": "Hi everyone"}},
    ], "start": ANY, "end": ANY}), stream
    assert "from" not in stream["chunk"][0]  # bob joined himself

    # The client disconnects; the topic changes, three messages arrive, bob is invited elsewhere.
    await draft.ok("PUT", "/rooms/room_beta@sy.org/topic", {"topic": "FRIENDS ONLY"}, token=alice)
    for msg_id, body in (("z839409", "Hello!!!"), ("z839410", "Let's go to another room"),
                         ("z839411", "You're not my friend")):
        await draft.ok("PUT", f"/rooms/room_beta@sy.org/messages/alice@sy.org/{msg_id}",
                       {"msgtype": "m.text", "body": body}, token=alice)
    await draft.ok("PUT", "/rooms/commoners@sy.org", {}, token=alice)
    await draft.ok("PUT", f"/rooms/commoners@sy.org/members/{bob}/state", {"membership": "invite"}, token=alice)

    status, later = await draft.get(f"/events?from={stream['end']}&access_token={token}")
    assert status == 200
    assert like(later, {"chunk": [
        {"event_id": ANY, "type": "m.room.topic", "room_id": "room_beta@sy.org", "from": "alice@sy.org",
         "content": {"topic": "FRIENDS ONLY"}},
        {"event_id": ANY, "type": "m.room.message", "room_id": "room_beta@sy.org", "msg_id": "z839409",
         "from": "alice@sy.org", "hs_ts": ANY, "content": {"msgtype": "m.text", "body": "Hello!!!"}},
        {"event_id": ANY, "type": "m.room.message", "room_id": "room_beta@sy.org", "msg_id": "z839410",
         "from": "alice@sy.org", "hs_ts": ANY, "content": {"msgtype": "m.text", "body": "Let's go to another room"}},
        {"event_id": ANY, "type": "m.room.message", "room_id": "room_beta@sy.org", "msg_id": "z839411",
         "from": "alice@sy.org", "hs_ts": ANY, "content": {"msgtype": "m.text", "body": "You're not my friend"}},
        {"event_id": ANY, "type": "m.room.member", "room_id": "commoners@sy.org", "from": "alice@sy.org",
         "user_id": bob, "content": {"membership": "invite"}},
    ], "start": stream["end"], "end": ANY}), later
    # Nothing is repeated: the end token of a page is where the next one starts.
    status, quiet = await draft.get(f"/events?from={later['end']}&timeout=0&access_token={token}")
    assert (status, quiet["chunk"], quiet["end"]) == (200, [], later["end"])


async def test_the_last_five_events_of_a_stream(draft: DraftApi):
    """GET /events?to=START&limit=5&from=END returns E15, E14, E13, E12, E11."""
    _, token = await draft.register("fifteen")
    await draft.ok("PUT", "/rooms/stream@sy.org", {}, token=token)  # E1: the join
    for number in range(2, 16):
        await draft.ok("PUT", f"/rooms/stream@sy.org/messages/fifteen@sy.org/E{number}",
                       {"msgtype": "m.text", "body": f"E{number}"}, token=token)
    last = await draft.ok("GET", "/events?to=START&limit=5&from=END", token=token)
    assert [event["msg_id"] for event in last["chunk"]] == ["E15", "E14", "E13", "E12", "E11"]

    earlier = await draft.ok("GET", "/events", token=token, params={"from": last["start"], "to": "START",
                                                                     "limit": "5"})
    assert [event["msg_id"] for event in earlier["chunk"]] == ["E10", "E9", "E8", "E7", "E6"]
    later = await draft.ok("GET", "/events", token=token, params={"from": last["end"], "to": "END",
                                                                   "timeout": "0"})
    assert later["chunk"] == []
    everything = await draft.ok("GET", "/events?timeout=0", token=token)
    assert [event.get("msg_id") for event in everything["chunk"]] == [None] + [f"E{n}" for n in range(2, 16)]
    assert everything["chunk"][0]["type"] == "m.room.member"


async def test_page_three_of_a_public_room_list(draft: DraftApi):
    """GET /rooms/list?from=9&to=END&limit=5 returns R11 to R15: tokens are exclusive."""
    _, token = await draft.register("lister")
    for number in range(1, 18):
        await draft.ok("PUT", f"/rooms/R{number}@sy.org", {"visibility": "public"}, token=token)

    def names(page):
        return [room["room_id"].split("@")[0] for room in page["chunk"]]

    page_two = await draft.ok("GET", "/rooms/list?from=4&to=END&limit=5", token=token)
    assert names(page_two) == ["R6", "R7", "R8", "R9", "R10"]
    assert (page_two["start"], page_two["end"], page_two["total"]) == ("5", "9", 17)
    page_three = await draft.ok("GET", f"/rooms/list?from={page_two['end']}&to=END&limit=5", token=token)
    assert names(page_three) == ["R11", "R12", "R13", "R14", "R15"]
    assert (page_three["start"], page_three["end"]) == ("10", "14")
    back = await draft.ok("GET", f"/rooms/list?from={page_three['start']}&to=START&limit=5", token=token)
    assert names(back) == ["R10", "R9", "R8", "R7", "R6"]
    first = await draft.ok("GET", "/public/rooms?limit=5", token=token)
    assert names(first) == ["R1", "R2", "R3", "R4", "R5"] and (first["start"], first["end"]) == ("0", "4")
    whole = await draft.ok("GET", "/public/rooms", token=token)
    assert len(whole["chunk"]) == 17 and "start" not in whole and "end" not in whole
    last = await draft.ok("GET", "/public/rooms?from=END&to=START&limit=2", token=token)
    assert names(last) == ["R17", "R16"]
