"""Sliding sync extensions: account data (global and per room), receipts and typing, each
limited to the lists and rooms the request names, over HTTP on both engines."""

from __future__ import annotations

import asyncio
import time

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


async def test_extensions_not_asked_for_or_not_served_are_absent(api):
    alice, _, _ = await two_rooms(api)
    response = await Connection(api, alice["access_token"]).sync({
        "extensions": {"typing": {"enabled": False}, "receipts": {}, "org.example.unknown": {"enabled": True}}})
    assert response["extensions"] == {}
