"""A matrix-nio user (today's API) and a user of the draft API chatting in one room."""

from __future__ import annotations

import nio

from draft_support import DraftApi


async def _sync_until(client: nio.AsyncClient, room_id: str, wanted) -> list:
    """Sync until an event of the room's timeline or ephemeral events satisfies `wanted`."""
    seen = []
    for _ in range(20):
        response = await client.sync(timeout=3000)
        assert isinstance(response, nio.SyncResponse), response
        room = response.rooms.join.get(room_id)
        if room is not None:
            seen += room.timeline.events + room.ephemeral
            if any(wanted(event) for event in seen):
                return seen
    raise AssertionError(f"never seen; saw {seen}")


async def _stream_until(draft: DraftApi, token: str, since: str, wanted) -> tuple[list[dict], str]:
    """Read the draft user's event stream from `since` until an event satisfies `wanted`."""
    seen = []
    for _ in range(10):
        page = await draft.ok("GET", f"/events?from={since}&timeout=3000", token=token)
        seen += page["chunk"]
        since = page["end"]
        if any(wanted(event) for event in seen):
            return seen, since
    raise AssertionError(f"never seen; saw {seen}")


async def test_a_nio_user_and_a_draft_user_chat(draft: DraftApi, homeserver, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@nina:sy.org", store_path=str(tmp_path))
    try:
        assert isinstance(await client.register("nina", "correct horse"), nio.RegisterResponse)
        created = await client.room_create(alias="lounge", preset=nio.RoomPreset.public_chat, topic="tea",
                                           visibility=nio.RoomVisibility.public)
        room_id = created.room_id
        await client.sync(timeout=0)

        legacy, token = await draft.register("oldie")
        listed = await draft.ok("GET", "/public/rooms", token=token)
        assert listed["chunk"] == [{"room_id": "lounge@sy.org", "num_members": 1, "topic": "tea"}]
        await draft.ok("PUT", f"/rooms/lounge@sy.org/members/{legacy}/state", {"membership": "join"}, token=token)
        since = (await draft.ok("GET", "/events?from=END&timeout=0", token=token))["end"]

        # The draft user speaks; nio hears it from @oldie:sy.org.
        await draft.ok("PUT", f"/rooms/lounge@sy.org/messages/{legacy}/hello1",
                       {"msgtype": "m.text", "body": "hello from 2014"}, token=token)
        heard = await _sync_until(client, room_id, lambda e: isinstance(e, nio.RoomMessageText)
                                  and e.body == "hello from 2014")
        message = next(e for e in heard if isinstance(e, nio.RoomMessageText))
        assert message.sender == "@oldie:sy.org"

        # nio answers; the draft user's event stream carries it in the draft's form.
        sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from today"})
        assert isinstance(sent, nio.RoomSendResponse), sent
        seen, since = await _stream_until(draft, token, since, lambda e: e.get("from") == "nina@sy.org")
        answers = [e for e in seen if e["type"] == "m.room.message" and e["from"] == "nina@sy.org"]
        assert [(e["room_id"], e["msg_id"], e["content"]["body"]) for e in answers] == [
            ("lounge@sy.org", sent.event_id, "hello from today")]

        # The draft user's read feedback is a read receipt nio sees, and nio's receipt is feedback.
        await draft.ok("PUT", f"/rooms/lounge@sy.org/messages/nina@sy.org/{sent.event_id}/feedback/{legacy}/r",
                       {"sender_ts": 1}, token=token)
        receipts = await _sync_until(client, room_id, lambda e: isinstance(e, nio.ReceiptEvent) and any(
            r.user_id == "@oldie:sy.org" and r.event_id == sent.event_id for r in e.receipts))
        assert receipts
        assert isinstance(await client.room_read_markers(room_id, message.event_id, message.event_id),
                          nio.RoomReadMarkersResponse)
        seen, _ = await _stream_until(draft, token, since, lambda e: e.get("feedback") and e["from"] == "nina@sy.org")
        assert [(e["type"], e["from"], e["feedback"], e["msg_id"], e["msgfrom"]) for e in seen
                if e.get("feedback")] == [("m.room.message.feedback", legacy, "r", sent.event_id, "nina@sy.org"),
                                          ("m.room.message.feedback", "nina@sy.org", "r", "hello1", legacy)]

        # A topic set by nio is the draft's topic.
        await client.room_put_state(room_id, "m.room.topic", {"topic": "coffee"})
        assert await draft.ok("GET", "/rooms/lounge@sy.org/topic", token=token) == {"topic": "coffee"}
    finally:
        await client.close()
