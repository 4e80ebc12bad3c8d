"""device_lists in /sync and GET /keys/changes: who changed devices or keys, who started
sharing a room, who stopped sharing any."""

from __future__ import annotations

import asyncio
import time

from e2ee_support import Device, login, sync


async def new_device(api, localpart: str) -> Device:
    return Device.of(await login(api, localpart))


async def changes(api, token: str, since: str, upto: str) -> dict:
    status, body = await api.get("/keys/changes", token=token, params={"from": since, "to": upto})
    assert status == 200, body
    return body


async def test_key_changes_of_room_mates_reach_sync_and_keys_changes(api):
    alice, bob, carol = [Device.of(r) for r in await api.register_all("alice", "bob", "carol")]
    room = await api.create_room(alice.token, preset="public_chat")
    await api.post(f"/join/{room}", {}, token=bob.token)
    since = (await sync(api, alice.token))["next_batch"]

    await api.post("/keys/upload", {"device_keys": bob.device_keys()}, token=bob.token)
    await api.post("/keys/upload", {"device_keys": carol.device_keys()}, token=carol.token)  # shares no room
    after = await sync(api, alice.token, since)
    assert after["device_lists"] == {"changed": [bob.user_id], "left": []}
    assert await changes(api, alice.token, since, after["next_batch"]) == {"changed": [bob.user_id], "left": []}

    # one-time keys alone change nothing others must look up again
    await api.post("/keys/upload", {"one_time_keys": bob.one_time_keys(2)}, token=bob.token)
    quiet = await sync(api, alice.token, after["next_batch"])
    assert quiet["device_lists"] == {"changed": [], "left": []}


async def test_new_and_deleted_devices_and_renames_are_changes(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    room = await api.create_room(alice.token, preset="public_chat")
    await api.post(f"/join/{room}", {}, token=bob.token)
    since = (await sync(api, alice.token))["next_batch"]

    laptop = await new_device(api, "bob")
    body = await sync(api, alice.token, since)
    assert body["device_lists"]["changed"] == [bob.user_id]
    since = body["next_batch"]

    status, _ = await api.put(f"/devices/{laptop.device_id}", {"display_name": "laptop"}, token=laptop.token)
    assert status == 200
    body = await sync(api, alice.token, since)
    assert body["device_lists"]["changed"] == [bob.user_id]
    since = body["next_batch"]

    await api.post("/logout", {}, token=laptop.token)
    body = await sync(api, alice.token, since)
    assert body["device_lists"]["changed"] == [bob.user_id]


async def test_own_device_changes_are_reported_to_oneself(api):
    alice = Device.of(await api.register("alice"))
    since = (await sync(api, alice.token))["next_batch"]
    second = await new_device(api, "alice")
    await api.post("/keys/upload", {"device_keys": second.device_keys()}, token=second.token)
    body = await sync(api, alice.token, since)
    assert body["device_lists"]["changed"] == [alice.user_id]


async def test_starting_and_stopping_to_share_a_room(api):
    alice, bob, carol = [Device.of(r) for r in await api.register_all("alice", "bob", "carol")]
    room = await api.create_room(alice.token, preset="public_chat")
    other_room = await api.create_room(carol.token, preset="public_chat")
    await api.post(f"/join/{room}", {}, token=bob.token)
    alice_since = (await sync(api, alice.token))["next_batch"]
    bob_since = (await sync(api, bob.token))["next_batch"]
    carol_since = (await sync(api, carol.token))["next_batch"]

    await api.post(f"/join/{room}", {}, token=carol.token)  # carol starts sharing with alice and bob
    body = await sync(api, alice.token, alice_since)
    assert body["device_lists"] == {"changed": [carol.user_id], "left": []}
    alice_since = body["next_batch"]
    body = await sync(api, carol.token, carol_since)  # and they with her
    assert body["device_lists"] == {"changed": [alice.user_id, bob.user_id], "left": []}
    carol_since = body["next_batch"]

    await api.post(f"/join/{other_room}", {}, token=bob.token)  # bob and carol share a second room
    await api.post(f"/rooms/{room}/leave", {}, token=carol.token)  # carol leaves the first
    body = await sync(api, alice.token, alice_since)
    assert body["device_lists"] == {"changed": [], "left": [carol.user_id]}
    body = await sync(api, carol.token, carol_since)
    assert body["device_lists"] == {"changed": [bob.user_id], "left": [alice.user_id]}
    body = await sync(api, bob.token, bob_since)
    assert carol.user_id not in body["device_lists"]["left"]

    whole = await changes(api, alice.token, "s0_0_0_0_0_0_0", body["next_batch"])
    assert carol.user_id not in whole["changed"]  # she shares no room with alice now


async def test_a_long_poll_wakes_when_a_room_mate_changes_keys(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    room = await api.create_room(alice.token, preset="public_chat")
    await api.post(f"/join/{room}", {}, token=bob.token)
    since = (await sync(api, alice.token))["next_batch"]
    poll = asyncio.ensure_future(sync(api, alice.token, since, timeout=20000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    started = time.monotonic()
    await api.post("/keys/upload", {"device_keys": bob.device_keys()}, token=bob.token)
    body = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 5
    assert body["device_lists"]["changed"] == [bob.user_id]


async def test_keys_changes_refuses_bad_tokens(api):
    alice = Device.of(await api.register("alice"))
    for params in ({"from": "s0_0"}, {"to": "s0_0"}, {"from": "garbage", "to": "s0_0"}, {"from": "s0_0", "to": "t1_2"},
                   {"from": "s\u00b2", "to": "s0_0"}):
        status, body = await api.get("/keys/changes", token=alice.token, params=params)
        assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM"), (params, body)
    status, body = await api.get("/keys/changes", params={"from": "s0", "to": "s0"})
    assert status == 401
