"""Long-pollers of one room share the room's delta: computed once per wake-up for the syncs
with the same position and timeline filter, and serialised once. What differs between
readers stays theirs: ignored senders, their own transaction IDs, unread counts,
event_fields, thread aggregations, their positions."""

from __future__ import annotations

import asyncio

from tests.conftest import Api

QUIET = {"presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]},
         "room": {"ephemeral": {"not_types": ["*"]}}}


async def _room_of(api: Api, *names: str) -> tuple[str, dict[str, str]]:
    """A public room made by the first user and joined by the others; name -> token."""
    users = await api.register_all(*names)
    tokens = {name: user["access_token"] for name, user in zip(names, users)}
    room_id = await api.create_room(tokens[names[0]], preset="public_chat")
    for name in names[1:]:
        assert (await api.post(f"/rooms/{room_id}/join", {}, token=tokens[name]))[0] == 200
    return room_id, tokens


async def _position(api: Api, token: str, sync_filter: dict) -> str:
    return (await api.sync(token, filter=sync_filter, timeout=0, set_presence="offline"))["next_batch"]


async def _parked(homeserver, room_id: str, count: int) -> None:
    """Until `count` long polls wait on the room."""
    for _ in range(200):
        if len(homeserver.notifier._waiters.get(f"room:{room_id}", ())) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} long polls parked on {room_id}")


def _poll(api: Api, token: str, since: str, sync_filter: dict, timeout: int = 5000):
    return asyncio.create_task(api.sync(token, since=since, filter=sync_filter, timeout=timeout, set_presence="offline"))


def _timeline(body: dict, room_id: str) -> list[dict]:
    return body["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])


class DeltaCounter:
    """Counts the room deltas the sync service computes."""

    def __init__(self, sync) -> None:
        self.count = 0
        self._room_delta = sync._room_delta
        sync._room_delta = self._counting

    async def _counting(self, window, room_id):
        self.count += 1
        return await self._room_delta(window, room_id)


async def test_waiting_long_pollers_share_one_computation_of_the_room(homeserver, api):
    names = ("owner", "p1", "p2", "p3", "p4", "p5")
    room_id, tokens = await _room_of(api, *names)
    pollers = names[1:]
    positions = {name: await _position(api, tokens[name], QUIET) for name in pollers}
    counter = DeltaCounter(homeserver.sync)
    tasks = {name: _poll(api, tokens[name], positions[name], QUIET) for name in pollers}
    await _parked(homeserver, room_id, len(pollers))
    event_id = await api.send_text(tokens["owner"], room_id, "to everyone")
    bodies = {name: await task for name, task in tasks.items()}
    for name, body in bodies.items():
        assert [e["event_id"] for e in _timeline(body, room_id)] == [event_id], name
    assert counter.count == 1, f"{counter.count} computations of the room for {len(pollers)} long-pollers"


async def test_the_sending_device_alone_sees_its_transaction_id(homeserver, api):
    room_id, tokens = await _room_of(api, "sender", "reader")
    since = {name: await _position(api, tokens[name], QUIET) for name in tokens}
    tasks = {name: _poll(api, tokens[name], since[name], QUIET) for name in tokens}
    await _parked(homeserver, room_id, 2)
    await api.send_text(tokens["sender"], room_id, "mine", txn="txn-42")
    sender_view, reader_view = _timeline(await tasks["sender"], room_id), _timeline(await tasks["reader"], room_id)
    assert [e["content"]["body"] for e in sender_view] == [e["content"]["body"] for e in reader_view] == ["mine"]
    assert sender_view[0]["unsigned"]["transaction_id"] == "txn-42"
    assert "transaction_id" not in reader_view[0]["unsigned"]


async def test_a_reader_who_ignores_the_sender_does_not_get_what_others_get(homeserver, api):
    room_id, tokens = await _room_of(api, "alice", "bob", "carol", "dave")
    status, _ = await api.put("/user/@alice:localhost/account_data/m.ignored_user_list",
                              {"ignored_users": {"@bob:localhost": {}}}, token=tokens["alice"])
    assert status == 200
    since = {name: await _position(api, tokens[name], QUIET) for name in ("alice", "carol")}
    alice = _poll(api, tokens["alice"], since["alice"], QUIET, timeout=1500)
    carol = _poll(api, tokens["carol"], since["carol"], QUIET)
    await _parked(homeserver, room_id, 2)
    await api.send_text(tokens["bob"], room_id, "from bob")
    assert [e["content"]["body"] for e in _timeline(await carol, room_id)] == ["from bob"]
    alice_body = await alice
    assert _timeline(alice_body, room_id) == []
    # Both again from one position: the ignoring reader still sees only dave's.
    carol_since = (await api.sync(tokens["carol"], since=since["carol"], filter=QUIET, timeout=0))["next_batch"]
    await api.send_text(tokens["dave"], room_id, "from dave")
    await api.send_text(tokens["bob"], room_id, "bob again")
    shown = {name: _timeline(await api.sync(tokens[name], since=position, filter=QUIET, timeout=0), room_id)
             for name, position in (("carol", carol_since), ("alice", alice_body["next_batch"]))}
    assert [e["content"]["body"] for e in shown["carol"]] == ["from dave", "bob again"]
    assert [e["content"]["body"] for e in shown["alice"]] == ["from dave"]


async def test_unread_counts_stay_each_readers_own(homeserver, api):
    room_id, tokens = await _room_of(api, "bob", "alice", "carol")
    since = {name: await _position(api, tokens[name], QUIET) for name in ("alice", "carol")}
    tasks = {name: _poll(api, tokens[name], since[name], QUIET) for name in ("alice", "carol")}
    await _parked(homeserver, room_id, 2)
    await api.send_text(tokens["bob"], room_id, "carol, look at this")
    counts = {name: (await task)["rooms"]["join"][room_id]["unread_notifications"] for name, task in tasks.items()}
    assert counts["carol"] == {"notification_count": 1, "highlight_count": 1}, "her display name is in it"
    assert counts["alice"] == {"notification_count": 1, "highlight_count": 0}


async def test_event_fields_and_positions_are_not_mixed_up(homeserver, api):
    room_id, tokens = await _room_of(api, "bob", "alice", "carol")
    narrow = {**QUIET, "event_fields": ["type", "content.body"]}
    early = await _position(api, tokens["carol"], QUIET)
    await api.send_text(tokens["bob"], room_id, "first")
    since = {"alice": await _position(api, tokens["alice"], narrow), "carol": await _position(api, tokens["carol"], QUIET)}
    tasks = {"alice": _poll(api, tokens["alice"], since["alice"], narrow),
             "carol": _poll(api, tokens["carol"], since["carol"], QUIET)}
    await _parked(homeserver, room_id, 2)
    event_id = await api.send_text(tokens["bob"], room_id, "second")
    alice, carol = _timeline(await tasks["alice"], room_id), _timeline(await tasks["carol"], room_id)
    assert alice == [{"type": "m.room.message", "content": {"body": "second"}}]
    assert [e["event_id"] for e in carol] == [event_id] and carol[0]["sender"] == "@bob:localhost"
    # From an earlier position at the same moment: both messages, the other readers' deltas notwithstanding.
    earlier = _timeline(await api.sync(tokens["carol"], since=early, filter=QUIET, timeout=0), room_id)
    assert [e["content"]["body"] for e in earlier] == ["first", "second"]


async def test_thread_aggregations_stay_each_readers_own(homeserver, api):
    room_id, tokens = await _room_of(api, "bob", "alice", "carol")
    since = {name: await _position(api, tokens[name], QUIET) for name in ("alice", "carol")}
    root = await api.send_text(tokens["bob"], room_id, "root")
    status, _ = await api.put(f"/rooms/{room_id}/send/m.room.message/reply1", {
        "msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
        token=tokens["carol"])
    assert status == 200
    views = {name: _timeline(await api.sync(tokens[name], since=since[name], filter=QUIET, timeout=0), room_id)
             for name in ("alice", "carol")}
    for name, participated in (("alice", False), ("carol", True)):
        root_event = next(e for e in views[name] if e["event_id"] == root)
        thread = root_event["unsigned"]["m.relations"]["m.thread"]
        assert thread["count"] == 1 and thread["current_user_participated"] is participated, name


async def test_lazy_loaded_members_stay_per_connection(homeserver, api):
    """bob's connection was sent dan's join, carol's was not: at the same position, with the
    same filter, dan's first message brings his member event to carol alone."""
    room_id, tokens = await _room_of(api, "alice", "bob", "carol")
    lazy = {**QUIET, "room": {**QUIET["room"], "timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    bob_since = await _position(api, tokens["bob"], lazy)
    dan = (await api.register("dan"))["access_token"]
    assert (await api.post(f"/rooms/{room_id}/join", {}, token=dan))[0] == 200
    seen = await api.sync(tokens["bob"], since=bob_since, filter=lazy, timeout=0, set_presence="offline")
    assert [e["state_key"] for e in _timeline(seen, room_id)] == ["@dan:localhost"]
    await api.send_text(tokens["alice"], room_id, "filler")
    bob_since = (await api.sync(tokens["bob"], since=seen["next_batch"], filter=lazy, timeout=0,
                                set_presence="offline"))["next_batch"]
    carol_since = await _position(api, tokens["carol"], lazy)
    tasks = {"bob": _poll(api, tokens["bob"], bob_since, lazy), "carol": _poll(api, tokens["carol"], carol_since, lazy)}
    await _parked(homeserver, room_id, 2)
    await api.send_text(dan, room_id, "hello from dan")
    bodies = {name: await task for name, task in tasks.items()}
    for name, body in bodies.items():
        assert [e["content"]["body"] for e in _timeline(body, room_id)] == ["hello from dan"], name
    assert bodies["bob"]["rooms"]["join"][room_id]["state"]["events"] == []
    assert [e["state_key"] for e in bodies["carol"]["rooms"]["join"][room_id]["state"]["events"]] == ["@dan:localhost"]
