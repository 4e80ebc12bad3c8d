"""Sliding sync extensions: account data (global and per room), receipts and typing, each
limited to the lists and rooms the request names; to-device messages and the device's
encryption state (key counts, device-list changes), over HTTP on both engines."""

from __future__ import annotations

import asyncio
import time

from e2ee_support import Device

from tests.integration.sliding_support import Connection, a_list

ALL = {"enabled": True}


async def two_rooms(api):
    alice, bob = await api.register_all("alice", "bob")
    rooms = [await api.create_room(alice["access_token"], preset="public_chat") for _ in range(2)]
    for room_id in rooms:
        await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    return alice, bob, rooms


async def test_account_data_global_then_changes_and_per_room_in_scope(api):
    alice, _, (inside, outside) = await two_rooms(api)
    token = alice["access_token"]
    await api.put("/user/@alice:localhost/account_data/org.example.global", {"n": 1}, token=token)
    for room_id in (inside, outside):
        await api.put(f"/user/@alice:localhost/rooms/{room_id}/account_data/org.example.room", {"room": room_id}, token=token)
    await api.send_text(token, inside, "inside is the most recent room")
    connection = Connection(api, token)
    config = {"lists": {"top": a_list([0, 0])}, "extensions": {"account_data": ALL}}
    first = (await connection.sync(config))["extensions"]["account_data"]
    assert {"type": "org.example.global", "content": {"n": 1}} in first["global"]
    assert first["rooms"] == {inside: [{"type": "org.example.room", "content": {"room": inside}}]}
    unchanged = (await connection.sync(config))["extensions"]["account_data"]
    assert unchanged == {"global": [], "rooms": {}}
    await api.put("/user/@alice:localhost/account_data/org.example.global", {"n": 2}, token=token)
    await api.put(f"/user/@alice:localhost/rooms/{inside}/account_data/org.example.room", {"v": 2}, token=token)
    await api.put(f"/user/@alice:localhost/rooms/{outside}/account_data/org.example.room", {"v": 2}, token=token)
    changed = (await connection.sync(config, timeout=5000))["extensions"]["account_data"]
    assert changed["global"] == [{"type": "org.example.global", "content": {"n": 2}}]
    assert changed["rooms"] == {inside: [{"type": "org.example.room", "content": {"v": 2}}]}
    # A room coming into scope gets its room account data in full.
    subscribed = {**config, "room_subscriptions": {outside: {"timeline_limit": 0}}}
    widened = (await connection.sync(subscribed))["extensions"]["account_data"]
    assert widened == {"global": [], "rooms": {outside: [{"type": "org.example.room", "content": {"v": 2}}]}}
    # `lists: []` and `rooms: []` leave only the global part.
    narrow = {**subscribed, "extensions": {"account_data": {"enabled": True, "lists": [], "rooms": []}}}
    await api.put(f"/user/@alice:localhost/rooms/{inside}/account_data/org.example.room", {"v": 3}, token=token)
    assert (await connection.sync(narrow))["extensions"]["account_data"] == {"global": [], "rooms": {}}


async def test_receipts_in_scope_only_and_in_full_for_rooms_new_to_it(api):
    alice, bob, (first_room, second_room) = await two_rooms(api)
    read_first = await api.send_text(alice["access_token"], first_room, "read me")
    read_second = await api.send_text(alice["access_token"], second_room, "read me too")
    await api.post(f"/rooms/{first_room}/receipt/m.read/{read_first}", {}, token=bob["access_token"])
    connection = Connection(api, alice["access_token"])
    config = {"lists": {"top": a_list([0, 0])}, "extensions": {"receipts": ALL}}
    first = (await connection.sync(config))["extensions"]["receipts"]
    assert first == {"rooms": {}}, "the top room (the second) has no receipts yet"
    await api.post(f"/rooms/{second_room}/receipt/m.read/{read_second}", {}, token=bob["access_token"])
    second = (await connection.sync(config, timeout=5000))["extensions"]["receipts"]["rooms"]
    assert list(second) == [second_room]
    assert second[second_room]["type"] == "m.receipt"
    assert "@bob:localhost" in second[second_room]["content"][read_second]["m.read"]
    both = {**config, "lists": {"top": a_list([0, 1])}}
    third = (await connection.sync(both))["extensions"]["receipts"]["rooms"]
    assert list(third) == [first_room], "the first room is new to the extension: its receipts in full"
    assert "@bob:localhost" in third[first_room]["content"][read_first]["m.read"]
    # Scoped to one list by name: another list's rooms are left out.
    named = {"lists": {"top": a_list([0, 0]), "next": a_list([1, 1])},
             "extensions": {"receipts": {"enabled": True, "lists": ["next"]}}}
    scoped = (await Connection(api, alice["access_token"], "scoped").sync(named))["extensions"]["receipts"]["rooms"]
    assert list(scoped) == [first_room]


async def test_typing_follows_rooms_named_and_wakes_the_long_poll(api):
    alice, bob, (watched, ignored) = await two_rooms(api)
    connection = Connection(api, alice["access_token"])
    config = {"room_subscriptions": {watched: {"timeline_limit": 0}, ignored: {"timeline_limit": 0}},
              "extensions": {"typing": {"enabled": True, "rooms": [watched]}}}
    assert (await connection.sync(config))["extensions"]["typing"] == {"rooms": {}}

    async def type_later():
        await asyncio.sleep(0.3)
        await api.put(f"/rooms/{ignored}/typing/@bob:localhost", {"typing": True, "timeout": 30000},
                      token=bob["access_token"])
        await asyncio.sleep(0.3)
        await api.put(f"/rooms/{watched}/typing/@bob:localhost", {"typing": True, "timeout": 30000},
                      token=bob["access_token"])

    typist = asyncio.create_task(type_later())
    began = time.monotonic()
    woke = await connection.sync(config, timeout=10000)
    await typist
    assert 0.5 <= time.monotonic() - began < 3, "typing outside the extension's rooms does not answer the poll"
    assert woke["extensions"]["typing"]["rooms"] == {
        watched: {"type": "m.typing", "content": {"user_ids": ["@bob:localhost"]}}}
    await api.put(f"/rooms/{watched}/typing/@bob:localhost", {"typing": False}, token=bob["access_token"])
    stopped = await connection.sync(config)
    assert stopped["extensions"]["typing"]["rooms"][watched]["content"]["user_ids"] == []


async def test_extensions_not_asked_for_or_unknown_are_absent(api):
    alice, _, _ = await two_rooms(api)
    response = await Connection(api, alice["access_token"]).sync({
        "extensions": {"typing": {"enabled": False}, "receipts": {}, "to_device": {"enabled": False},
                       "org.example.unknown": {"enabled": True}}})
    assert response["extensions"] == {}


async def send_to_device(api, sender: Device, target: Device, number: int) -> None:
    status, body = await api.put(f"/sendToDevice/m.test/t{number}",
                                 {"messages": {target.user_id: {target.device_id: {"n": number}}}}, token=sender.token)
    assert status == 200, body


async def test_to_device_messages_until_the_client_passes_their_next_batch_back(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    connection = Connection(api, alice.token, conn_id="encryption")

    async def to_device(**config):
        response = await connection.sync({"extensions": {"to_device": {"enabled": True, **config}}})
        extension = response["extensions"]["to_device"]
        return [e["content"]["n"] for e in extension["events"]], extension["next_batch"]

    await send_to_device(api, bob, alice, 1)
    numbers, first = await to_device()
    assert numbers == [1]
    assert all(e["sender"] == bob.user_id and e["type"] == "m.test"
               for e in (await connection.sync({"extensions": {"to_device": {"enabled": True}}}))
               ["extensions"]["to_device"]["events"]), "without since: everything still stored"
    for number in (2, 3, 4):
        await send_to_device(api, bob, alice, number)
    numbers, second = await to_device(since=first, limit=2)
    assert numbers == [2, 3]
    assert await to_device(since=first, limit=2) == ([2, 3], second), "a lost answer comes again: only a later since deletes"
    numbers, third = await to_device(since=second)
    assert numbers == [4]
    assert await to_device(since=third) == ([], third)
    assert (await to_device())[0] == [], "what a since confirmed is gone"
    status, error = await connection.request({"extensions": {"to_device": {"enabled": True, "since": "s12"}}})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")

    async def send_later():
        await asyncio.sleep(0.3)
        await send_to_device(api, bob, alice, 5)

    sender = asyncio.create_task(send_later())
    began = time.monotonic()
    woke = await connection.sync({"extensions": {"to_device": {"enabled": True, "since": third}}}, timeout=10000)
    await sender
    assert time.monotonic() - began < 3
    assert [e["content"]["n"] for e in woke["extensions"]["to_device"]["events"]] == [5]


async def test_e2ee_extension_key_counts_and_device_list_changes(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    room_id = await api.create_room(alice.token, preset="public_chat")
    await api.post(f"/join/{room_id}", {}, token=bob.token)
    await api.post("/keys/upload", {"device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(3),
                                    "fallback_keys": alice.fallback_key()}, token=alice.token)
    connection = Connection(api, alice.token, conn_id="encryption")
    config = {"extensions": {"e2ee": {"enabled": True}}}
    first = (await connection.sync(config))["extensions"]["e2ee"]
    assert first == {"device_lists": {"changed": [], "left": []},
                     "device_one_time_keys_count": {"signed_curve25519": 3},
                     "device_unused_fallback_key_types": ["signed_curve25519"]}

    async def upload_later():
        await asyncio.sleep(0.3)
        await api.post("/keys/upload", {"device_keys": bob.device_keys()}, token=bob.token)

    uploader = asyncio.create_task(upload_later())
    woke = (await connection.sync(config, timeout=10000))["extensions"]["e2ee"]
    await uploader
    assert woke["device_lists"] == {"changed": [bob.user_id], "left": []}
    status, _ = await api.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}},
                               token=bob.token)
    assert status == 200
    await api.post(f"/rooms/{room_id}/leave", {}, token=bob.token)
    gone = (await connection.sync(config))["extensions"]["e2ee"]
    assert gone["device_lists"] == {"changed": [], "left": [bob.user_id]}
    assert gone["device_one_time_keys_count"] == {"signed_curve25519": 2}
