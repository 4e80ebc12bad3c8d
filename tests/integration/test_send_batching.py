"""Concurrent sends into one room: the room's writer takes the queued sends as one batch
(one transaction, one wake-up), and each send keeps its own outcome, its place in the
room's order and its transaction ID's idempotency."""

from __future__ import annotations

import asyncio
from collections import Counter

from ranvier.server import Homeserver
from tests.conftest import Api, with_server

SENDERS = 6
MESSAGES = 8


async def _room_with_members(api: Api, names: list[str]) -> tuple[list[str], str]:
    tokens = [user["access_token"] for user in await api.register_all(*names)]
    room_id = await api.create_room(tokens[0], preset="public_chat")
    for token in tokens[1:]:
        status, body = await api.post(f"/rooms/{room_id}/join", {}, token=token)
        assert status == 200, body
    return tokens, room_id


async def _send(api: Api, token: str, room_id: str, body: str, txn: str, event_type: str = "m.room.message"):
    return await api.put(f"/rooms/{room_id}/send/{event_type}/{txn}", {"msgtype": "m.text", "body": body},
                         token=token)


async def _timeline(api: Api, token: str, room_id: str) -> list[dict]:
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"dir": "f", "limit": "500"}, token=token)
    assert status == 200, page
    return page["chunk"]


def _count_writes(hs: Homeserver) -> Counter:
    """Counts the room writer's transactions and the events in them."""
    counted: Counter = Counter()
    write = hs.rooms._write

    async def counting(batch):
        counted["writes"] += 1
        counted["events"] += len(batch.items)
        return await write(batch)

    hs.rooms._write = counting
    return counted


async def test_concurrent_senders_share_batches_and_keep_their_order_and_one_chain(make_server):
    api = await make_server()
    tokens, room_id = await _room_with_members(api, [f"sender{i}" for i in range(SENDERS)])
    counted = _count_writes(api.homeserver)

    async def sender(i: int, token: str) -> list[str]:
        ids = []
        for n in range(MESSAGES):
            status, body = await _send(api, token, room_id, f"{i}-{n}", f"t{n}")
            assert status == 200, body
            ids.append(body["event_id"])
        return ids

    sent = await asyncio.gather(*(sender(i, token) for i, token in enumerate(tokens)))
    assert counted["events"] == SENDERS * MESSAGES
    assert counted["writes"] < counted["events"], counted  # sends waiting together were written together

    events = [e for e in await _timeline(api, tokens[0], room_id) if e["type"] == "m.room.message"]
    bodies = [e["content"]["body"] for e in events]
    assert sorted(bodies) == sorted(f"{i}-{n}" for i in range(SENDERS) for n in range(MESSAGES))  # none lost or twice
    for i, ids in enumerate(sent):
        assert [b for b in bodies if b.startswith(f"{i}-")] == [f"{i}-{n}" for n in range(MESSAGES)]
        assert [e["event_id"] for e in events if e["content"]["body"].startswith(f"{i}-")] == ids

    rows = await api.homeserver.rooms.store.get_event_rows(e["event_id"] for e in events)
    ordered = sorted(rows.values(), key=lambda row: row.stream_ordering)
    for before, after in zip(ordered, ordered[1:]):  # each event follows the one before it
        assert after.event.prev_event_ids == [before.event.event_id]
        assert after.event.depth == before.event.depth + 1


async def test_a_refused_send_in_a_batch_fails_alone(make_server):
    api = await make_server()
    tokens, room_id = await _room_with_members(api, ["alice", "bob"])
    outsider = (await api.register("outsider"))["access_token"]
    too_large = "x" * 70_000

    requests = []
    for n in range(10):
        requests.append(_send(api, tokens[n % 2], room_id, f"ok {n}", f"ok{n}"))
        if n == 3:
            requests.append(_send(api, outsider, room_id, "not a member", "out"))
        if n == 6:
            requests.append(_send(api, tokens[1], room_id, too_large, "big"))
    answers = await asyncio.gather(*requests)

    outcomes = [(status, body.get("errcode")) for status, body in answers]
    assert outcomes.count((200, None)) == 10, answers
    assert (403, "M_FORBIDDEN") in outcomes and (413, "M_TOO_LARGE") in outcomes, answers
    bodies = [e["content"]["body"] for e in await _timeline(api, tokens[0], room_id) if e["type"] == "m.room.message"]
    assert sorted(bodies) == sorted(f"ok {n}" for n in range(10))


async def test_a_retried_transaction_answers_the_first_event_inside_and_across_batches(make_server):
    api = await make_server()
    tokens, room_id = await _room_with_members(api, ["alice", "bob"])
    alice, bob = tokens

    answers = await asyncio.gather(*(_send(api, alice, room_id, f"try {n}", "same") for n in range(5)),
                                   *(_send(api, bob, room_id, f"bob {n}", f"b{n}") for n in range(5)),
                                   _send(api, bob, room_id, "bob's own", "same"))
    assert all(status == 200 for status, _ in answers), answers
    alice_ids = {body["event_id"] for _, body in answers[:5]}
    assert len(alice_ids) == 1  # one event for the five tries
    assert answers[-1][1]["event_id"] not in alice_ids  # another user's transaction ID is their own

    status, again = await _send(api, alice, room_id, "once more", "same")
    assert (status, again["event_id"]) == (200, next(iter(alice_ids)))
    bodies = [e["content"]["body"] for e in await _timeline(api, alice, room_id) if e["type"] == "m.room.message"]
    assert len([b for b in bodies if b.startswith("try")]) == 1
    assert len(bodies) == 7


async def test_a_transaction_from_before_a_restart_in_a_batch_answers_its_event_and_the_others_are_sent(
        server_config):
    async def first(api):
        tokens, room_id = await _room_with_members(api, ["alice", "bob"])
        status, body = await _send(api, tokens[0], room_id, "before", "kept")
        assert status == 200, body
        return tokens, room_id, body["event_id"]

    tokens, room_id, event_id = await with_server(server_config, first)

    async def burst(api):
        answers = await asyncio.gather(*(_send(api, tokens[1], room_id, f"after {n}", f"n{n}") for n in range(6)),
                                       _send(api, tokens[0], room_id, "before, again", "kept"))
        return answers, await _timeline(api, tokens[0], room_id)

    answers, events = await with_server(server_config, burst)
    assert all(status == 200 for status, _ in answers), answers
    assert answers[-1][1]["event_id"] == event_id
    bodies = [e["content"]["body"] for e in events if e["type"] == "m.room.message"]
    assert sorted(bodies) == sorted(["before"] + [f"after {n}" for n in range(6)])
