"""mautrix-python's end-to-end encryption against a real ranvier: a bot with mautrix's
OlmMachine (device and one-time keys uploaded from its sync loop) in an encrypted room with a
matrix-nio user, each decrypting what the other sends, the bot sharing its room key with a
device the user adds later (its sync's device lists); its recovery key cross-signing a second
device through secret storage; and a bot signing in again on its device keeping its keys."""

from __future__ import annotations

import nio
import pytest
from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.crypto import OlmMachine
from mautrix.types import (
    EncryptionKeyAlgorithm,
    EventType,
    Filter,
    Membership,
    MessageType,
    StateEvent,
    TextMessageEventContent,
    TrustState,
)

from mautrix_support import PASSWORD, bots, encrypting_bot, mautrix_trouble, wait_for  # noqa: F401 (fixtures)
from nio_e2ee import encrypting_client, receive, send, settle

pytestmark = pytest.mark.interop


async def test_encrypted_room_with_a_nio_user(bots, homeserver, tmp_path, api):
    bot = await bots("cryptobot")
    machine = await encrypting_bot(bot)
    received: list = []

    async def on_member(evt: StateEvent) -> None:
        if evt.state_key == bot.mxid and evt.content.membership == Membership.INVITE:
            await bot.join_room_by_id(evt.room_id)

    async def on_message(evt) -> None:
        if evt.sender != bot.mxid:
            received.append(evt)

    bot.add_event_handler(EventType.ROOM_MEMBER, on_member)
    bot.add_event_handler(EventType.ROOM_MESSAGE, on_message)
    bot.start(Filter())
    await wait_for(lambda: machine.account.shared, what="the bot's keys to go up")
    status, counts = await api.post("/keys/upload", {}, token=bot.api.token)
    assert status == 200 and counts["one_time_key_counts"]["signed_curve25519"] >= 25, counts

    alice = encrypting_client(homeserver, tmp_path, "alice")
    try:
        assert isinstance(await alice.register("alice", PASSWORD), nio.RegisterResponse)
        await settle(alice)
        encryption = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        created = await alice.room_create(initial_state=[encryption], invite=[bot.mxid])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await wait_for(lambda: bot.state_store.is_encrypted(room_id), what="the bot to join the encrypted room")

        for _ in range(40):  # nio sees the bot join, looks its device up and claims a one-time key
            await settle(alice, timeout_ms=100)
            if bot.mxid in alice.rooms[room_id].users and any(
                    d.id == bot.device_id for d in alice.device_store.active_user_devices(bot.mxid)):
                break
        device = alice.device_store[bot.mxid][bot.device_id]
        assert device.ed25519 == machine.account.signing_key
        assert device.curve25519 == machine.account.identity_key

        event_id = await send(alice, room_id, "hello bot")
        await wait_for(lambda: received, what="the bot to decrypt nio's message")
        assert [(e.event_id, e.content.body, e.sender) for e in received] == [(event_id, "hello bot", alice.user_id)]
        raw = await bot.api.request(Method.GET, Path.v3.rooms[room_id].event[event_id])
        assert raw["type"] == "m.room.encrypted" and "hello bot" not in str(raw)

        answer_id = await bot.send_text(room_id, "hello nio")
        raw_answer = await alice_raw_event(api, alice, room_id, answer_id)
        assert raw_answer["type"] == "m.room.encrypted" and raw_answer["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
        decrypted = await receive(alice, room_id, "hello nio")
        assert decrypted.decrypted and decrypted.sender == bot.mxid and decrypted.event_id == answer_id

        # An edit is encrypted with its relation left in the clear (mautrix copies m.relates_to
        # out), so the server relates it; a reaction is never encrypted.
        edit = TextMessageEventContent(msgtype=MessageType.TEXT, body="hello again, nio")
        edit.set_edit(answer_id)
        edit_id = await bot.send_message(room_id, edit)
        reaction_id = await bot.react(room_id, event_id, "🔐")
        assert (await receive(alice, room_id, "* hello again, nio")).event_id == edit_id
        edits = await bot.api.request(Method.GET, Path.v1.rooms[room_id].relations[answer_id]["m.replace"])
        assert [(e["event_id"], e["type"]) for e in edits["chunk"]] == [(edit_id, "m.room.encrypted")]
        assert edits["chunk"][0]["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": answer_id}
        reactions = await bot.api.request(Method.GET, Path.v1.rooms[room_id].relations[event_id])
        assert [(e["event_id"], e["type"]) for e in reactions["chunk"]] == [(reaction_id, "m.reaction")]

        # Alice signs in on a second device: the bot hears of it through its sync's device
        # lists, looks it up, and shares its next message's key with it too.
        laptop = encrypting_client(homeserver, tmp_path, "alice")
        try:
            assert isinstance(await laptop.login(PASSWORD, device_name="laptop"), nio.LoginResponse)
            await settle(laptop)
            await wait_for(lambda: machine.crypto_store.get_devices(alice.user_id),
                           what="the bot to know alice's devices")
            await wait_for(lambda: _knows(machine, alice.user_id, laptop.device_id), what="the new device")
            later_id = await bot.send_text(room_id, "for both your devices")
            for device in (alice, laptop):
                later = await receive(device, room_id, "for both your devices")
                assert later.decrypted and later.event_id == later_id
        finally:
            await laptop.close()
    finally:
        await alice.close()


async def _knows(machine: OlmMachine, user_id: str, device_id: str) -> bool:
    return device_id in (await machine.crypto_store.get_devices(user_id) or {})


async def alice_raw_event(api, client: nio.AsyncClient, room_id: str, event_id: str) -> dict:
    status, event = await api.get(f"/rooms/{room_id}/event/{event_id}", token=client.access_token)
    assert status == 200, event
    return event


async def test_recovery_key_cross_signs_a_second_device(bots, api):
    """mautrix's recovery key: the first device makes cross-signing keys, stores them in secret
    storage (account data) and signs itself; a second device of the bot unlocks them with the
    recovery key and signs itself too."""
    bot = await bots("signbot", device_name="first")
    machine = await encrypting_bot(bot)
    await machine.share_keys()
    recovery_key = await machine.generate_recovery_key()
    assert recovery_key and machine._cross_signing_public_keys is not None
    master = machine._cross_signing_public_keys.master_key

    second = await bots("signbot", device_name="second", register=False)
    second_machine = await encrypting_bot(second)
    await second_machine.share_keys()
    await second_machine.verify_with_recovery_key(recovery_key)
    assert second_machine._cross_signing_public_keys.master_key == master

    status, keys = await api.post("/keys/query", {"device_keys": {bot.mxid: []}}, token=bot.api.token)
    assert status == 200, keys
    assert list(keys["master_keys"][bot.mxid]["keys"].values()) == [master]
    self_signing = list(keys["self_signing_keys"][bot.mxid]["keys"])
    for device_id in (bot.device_id, second.device_id):
        signatures = keys["device_keys"][bot.mxid][device_id]["signatures"][bot.mxid]
        assert self_signing[0] in signatures, (device_id, signatures)
    first_seen_by_second = await second_machine.get_or_fetch_device(bot.mxid, bot.device_id)
    assert await second_machine.resolve_trust(first_seen_by_second) == TrustState.CROSS_SIGNED_TOFU


async def test_logging_in_again_on_the_same_device_keeps_its_keys(bots, homeserver):
    """A bot that signs in again reuses its device ID (maubot keeps it with its crypto store):
    the device stays one device, and the keys its OlmMachine uploaded stay with it."""
    bot = await bots("returningbot")
    machine = await encrypting_bot(bot)
    await machine.share_keys()
    count = (await bot.upload_keys())[EncryptionKeyAlgorithm.SIGNED_CURVE25519]
    assert count > 0

    again = Client(mxid=bot.mxid, base_url=homeserver.base_url)
    try:
        login = await again.login(password=PASSWORD, device_id=bot.device_id, device_name="renamed?")
        assert login.device_id == bot.device_id and login.access_token != bot.api.token
        assert (await again.whoami()).device_id == bot.device_id
        devices = await again.api.request(Method.GET, Path.v3.devices)
        assert [d["device_id"] for d in devices["devices"]] == [bot.device_id]
        assert devices["devices"][0]["display_name"] == "mautrix bot"  # a known device keeps its name
        keys = await again.query_keys([bot.mxid])
        device = keys.device_keys[bot.mxid][bot.device_id]
        assert device.ed25519 == machine.account.signing_key
        assert (await again.upload_keys())[EncryptionKeyAlgorithm.SIGNED_CURVE25519] == count
    finally:
        await again.api.session.close()
