"""Send-to-device messaging over HTTP: PUT /sendToDevice and /sync `to_device`."""

from __future__ import annotations

import asyncio

from e2ee_support import login, sync

from ranvier.server import Homeserver


async def send(api, token: str, messages: dict, txn: str, event_type: str = "m.test") -> None:
    status, body = await api.put(f"/sendToDevice/{event_type}/{txn}", {"messages": messages}, token=token)
    assert (status, body) == (200, {}), body


def contents(body: dict) -> list:
    return [(e["sender"], e["type"], e["content"]) for e in body["to_device"]["events"]]


async def test_one_device_all_devices_and_many_users(api):
    alice, bob, carol = await api.register_all("alice", "bob", "carol")
    bob2 = await login(api, "bob")
    await send(api, alice["access_token"], {bob["user_id"]: {bob["device_id"]: {"n": 1}}}, "t1")
    await send(api, alice["access_token"], {bob["user_id"]: {"*": {"n": 2}}, carol["user_id"]: {"*": {"n": 2}},
                                            "@dave:elsewhere.example": {"*": {"n": 2}}}, "t2", "m.other")
    sender = alice["user_id"]
    assert contents(await sync(api, bob["access_token"])) == [(sender, "m.test", {"n": 1}), (sender, "m.other", {"n": 2})]
    assert contents(await sync(api, bob2["access_token"])) == [(sender, "m.other", {"n": 2})]
    assert contents(await sync(api, carol["access_token"])) == [(sender, "m.other", {"n": 2})]


async def test_a_repeated_transaction_is_sent_once_per_sending_device(api):
    alice, bob = await api.register_all("alice", "bob")
    alice2 = await login(api, "alice")
    message = {bob["user_id"]: {bob["device_id"]: {"hello": True}}}
    await send(api, alice["access_token"], message, "same")
    await send(api, alice["access_token"], message, "same")
    await send(api, alice2["access_token"], message, "same")  # another device's transaction
    assert len((await sync(api, bob["access_token"]))["to_device"]["events"]) == 2


async def test_messages_are_kept_until_a_later_token_confirms_them(api):
    alice, bob = await api.register_all("alice", "bob")
    first = await sync(api, bob["access_token"])
    await send(api, alice["access_token"], {bob["user_id"]: {bob["device_id"]: {"n": 1}}}, "t1")
    delivered = await sync(api, bob["access_token"], first["next_batch"])
    assert [e["content"] for e in delivered["to_device"]["events"]] == [{"n": 1}]
    again = await sync(api, bob["access_token"], first["next_batch"])  # the answer was lost: same again
    assert [e["content"] for e in again["to_device"]["events"]] == [{"n": 1}]
    confirmed = await sync(api, bob["access_token"], again["next_batch"])
    assert confirmed["to_device"]["events"] == []
    assert (await sync(api, bob["access_token"]))["to_device"]["events"] == []  # deleted, not just skipped


async def test_at_most_one_hundred_per_sync_in_order(api):
    alice, bob = await api.register_all("alice", "bob")
    for n in range(150):
        await send(api, alice["access_token"], {bob["user_id"]: {"*": {"n": n}}}, f"t{n}")
    first = await sync(api, bob["access_token"])
    assert [e["content"]["n"] for e in first["to_device"]["events"]] == list(range(100))
    second = await sync(api, bob["access_token"], first["next_batch"], timeout=10000)
    assert [e["content"]["n"] for e in second["to_device"]["events"]] == list(range(100, 150))
    third = await sync(api, bob["access_token"], second["next_batch"])
    assert third["to_device"]["events"] == []


async def test_a_long_poll_wakes_on_a_message(api):
    alice, bob = await api.register_all("alice", "bob")
    since = (await sync(api, bob["access_token"]))["next_batch"]
    poll = asyncio.ensure_future(sync(api, bob["access_token"], since, timeout=20000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await send(api, alice["access_token"], {bob["user_id"]: {bob["device_id"]: {"wake": 1}}}, "t1")
    body = await asyncio.wait_for(poll, 5)
    assert [e["content"] for e in body["to_device"]["events"]] == [{"wake": 1}]


async def test_deleting_a_device_deletes_its_messages(api):
    alice, bob = await api.register_all("alice", "bob")
    laptop = await login(api, "bob")
    await send(api, alice["access_token"], {bob["user_id"]: {laptop["device_id"]: {"n": 1}}}, "t1")
    await api.post("/logout", {}, token=laptop["access_token"])
    status, relogin = await api.post("/login", {"type": "m.login.password", "password": "correct horse",
                                                "device_id": laptop["device_id"],
                                                "identifier": {"type": "m.id.user", "user": "bob"}})
    assert status == 200
    assert (await sync(api, relogin["access_token"]))["to_device"]["events"] == []


async def test_pending_messages_survive_a_restart(api, server_config, homeserver):
    alice, bob = await api.register_all("alice", "bob")
    since = (await sync(api, bob["access_token"]))["next_batch"]
    await send(api, alice["access_token"], {bob["user_id"]: {bob["device_id"]: {"n": 1}}}, "t1")
    await homeserver.stop()
    restarted = Homeserver(server_config)
    await restarted.start()
    try:
        api.base_url = restarted.base_url
        body = await sync(api, bob["access_token"], since)
        assert [e["content"] for e in body["to_device"]["events"]] == [{"n": 1}]
        await send(api, alice["access_token"], {bob["user_id"]: {bob["device_id"]: {"n": 2}}}, "t2")
        later = await sync(api, bob["access_token"], body["next_batch"])
        assert [e["content"] for e in later["to_device"]["events"]] == [{"n": 2}]
    finally:
        await restarted.stop()


async def test_malformed_sends_are_refused(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    cases = [
        ({}, "M_MISSING_PARAM"),
        ({"messages": []}, "M_BAD_JSON"),
        ({"messages": {"notauser": {"*": {}}}}, "M_INVALID_PARAM"),
        ({"messages": {bob["user_id"]: ["*"]}}, "M_BAD_JSON"),
        ({"messages": {bob["user_id"]: {"*": "text"}}}, "M_BAD_JSON"),
    ]
    for body, errcode in cases:
        status, got = await api.put("/sendToDevice/m.test/t1", body, token=token)
        assert (status, got.get("errcode")) == (400, errcode), (body, got)
    status, got = await api.put("/sendToDevice/m.test/%00", {"messages": {}}, token=token)
    assert (status, got["errcode"]) == (400, "M_INVALID_PARAM")
    status, got = await api.put("/sendToDevice/m.test/t1", {"messages": {}})
    assert status == 401
