"""GET /im/sync: a RoomStateInfo per joined or invited room, messages paged per room."""

from __future__ import annotations

from draft_support import DraftApi


async def test_im_sync_pages_each_room(draft: DraftApi, api):
    _, alice = await draft.register("alice")
    _, bob = await draft.register("bob")
    await draft.ok("PUT", "/rooms/room_beta@sy.org", {"visibility": "public"}, token=alice)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/topic", {"topic": "Hello world"}, token=alice)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/members/bob@sy.org/state", {"membership": "join"}, token=bob)
    room_id = (await api.get("/directory/room/%23room_beta:sy.org"))[1]["room_id"]
    await draft.ok("PUT", "/rooms/quiet@sy.org", {}, token=bob)
    for number in range(1, 4):
        await draft.ok("PUT", f"/rooms/room_beta@sy.org/messages/alice@sy.org/m{number}",
                       {"msgtype": "m.text", "body": f"beta {number}"}, token=alice)
    await draft.ok("PUT", "/rooms/room_beta@sy.org/messages/alice@sy.org/m3/feedback/bob@sy.org/d",
                   {"sender_ts": 42}, token=bob)
    await draft.ok("PUT", "/rooms/quiet@sy.org/messages/bob@sy.org/q1", {"msgtype": "m.text", "body": "quiet"},
                   token=bob)
    await draft.ok("PUT", "/rooms/secret@sy.org", {}, token=alice)
    await draft.ok("PUT", "/rooms/secret@sy.org/topic", {"topic": "invitation only"}, token=alice)
    await draft.ok("PUT", "/rooms/secret@sy.org/members/bob@sy.org/state", {"membership": "invite"}, token=alice)
    await draft.ok("PUT", "/rooms/gone@sy.org", {}, token=bob)
    await draft.ok("DELETE", "/rooms/gone@sy.org/members/bob@sy.org/state", token=bob)
    # A token of the draft API works on today's API too.
    status, _ = await api.put(f"/rooms/{room_id}/state/m.room.avatar", {"url": "mxc://sy.org/beta"}, token=alice)
    assert status == 200

    status, rooms = await draft.get("/im/sync?from=END&to=START&limit=1&feedback=true", token=bob)
    assert status == 200 and isinstance(rooms, list)
    by_id = {room["room_id"]: room for room in rooms}
    assert set(by_id) == {"room_beta@sy.org", "quiet@sy.org", "secret@sy.org"}
    beta = by_id["room_beta@sy.org"]
    assert (beta["membership"], beta["topic"], beta["num_members"], beta["room_image_url"]) == (
        "join", "Hello world", 2, "mxc://sy.org/beta")
    [latest] = beta["messages"]["chunk"]
    assert latest["msg_id"] == "m3" and latest["feedback"] == [
        {"from": "bob@sy.org", "feedback": "d", "hs_ts": latest["feedback"][0]["hs_ts"],
         "hsob_ts": latest["feedback"][0]["hs_ts"], "hsib_ts": latest["feedback"][0]["hs_ts"],
         "content": {"sender_ts": 42}}]
    assert [m["msg_id"] for m in by_id["quiet@sy.org"]["messages"]["chunk"]] == ["q1"]
    assert by_id["secret@sy.org"] == {"room_id": "secret@sy.org", "membership": "invite", "topic": "invitation only"}

    # The tokens of a room's page continue with /rooms/$room_id/messages/list.
    earlier = await draft.ok("GET", f"/rooms/room_beta@sy.org/messages/list?from={beta['messages']['start']}"
                                    "&to=START", token=bob)
    assert [m["msg_id"] for m in earlier["chunk"]] == ["m2", "m1"]

    everything = await draft.ok("GET", "/im/sync", token=bob)
    beta_all = next(room for room in everything if room["room_id"] == "room_beta@sy.org")
    assert [m["msg_id"] for m in beta_all["messages"]["chunk"]] == ["m1", "m2", "m3"]
    assert all("feedback" not in m for m in beta_all["messages"]["chunk"])


async def test_im_sync_errors(draft: DraftApi):
    _, bob = await draft.register("bob")
    for query in ("from=x", "limit=many", "feedback=1", "to=e1_1_1_1"):
        status, body = await draft.get(f"/im/sync?{query}", token=bob)
        assert (status, body["errcode"]) == (400, "M_BAD_PAGINATION"), query
    status, body = await draft.get("/im/sync")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await draft.get("/im/sync", token="not a token")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await draft.ok("GET", "/im/sync", token=bob) == []
