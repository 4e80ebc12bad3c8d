"""End-to-end encryption with a real encryption library: matrix-nio clients (Olm and Megolm
through vodozemac) talk to each other through ranvier, which never sees a plaintext."""

from __future__ import annotations

import asyncio

import nio
import orjson
import pytest
import vodozemac
from signedjson.sign import verify_signed_json
from signedjson.key import decode_verify_key_bytes
from unpaddedbase64 import decode_base64, encode_base64

from nio_e2ee import ENCRYPTION, encrypting_client, receive, send, settle

pytestmark = pytest.mark.interop

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
async def encrypted_room(homeserver, tmp_path) -> tuple[nio.AsyncClient, nio.AsyncClient, str]:
    alice = encrypting_client(homeserver, tmp_path, "alice")
    bob = encrypting_client(homeserver, tmp_path, "bob")
    assert isinstance(await alice.register("alice", "correct horse"), nio.RegisterResponse)
    assert isinstance(await bob.register("bob", "correct horse"), nio.RegisterResponse)
    await settle(alice)
    await settle(bob)
    created = await alice.room_create(initial_state=[ENCRYPTION], invite=[bob.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    await settle(bob)
    assert isinstance(await bob.join(created.room_id), nio.JoinResponse)
    await settle(alice)
    await settle(bob)
    assert alice.rooms[created.room_id].encrypted and bob.rooms[created.room_id].encrypted
    return alice, bob, created.room_id


async def test_two_clients_exchange_room_keys_and_read_each_other(homeserver, tmp_path, api):
    alice, bob, room_id = await encrypted_room(homeserver, tmp_path)
    try:
        event_id = await send(alice, room_id, "hello bob")
        received = await receive(bob, room_id, "hello bob")
        assert received.decrypted and received.sender == alice.user_id
        await send(bob, room_id, "hello alice")
        assert (await receive(alice, room_id, "hello alice")).decrypted

        status, stored = await api.get(f"/rooms/{room_id}/event/{event_id}", token=bob.access_token)
        assert status == 200 and stored["type"] == "m.room.encrypted"
        assert "ciphertext" in stored["content"] and "hello bob" not in orjson.dumps(stored).decode()
    finally:
        await alice.close()
        await bob.close()


async def test_a_device_added_later_gets_the_keys_it_needs(homeserver, tmp_path):
    alice, bob, room_id = await encrypted_room(homeserver, tmp_path)
    bob2 = encrypting_client(homeserver, tmp_path, "bob")
    try:
        await send(alice, room_id, "before the new device")
        await receive(bob, room_id, "before the new device")
        assert isinstance(await bob2.login("correct horse", device_name="new phone"), nio.LoginResponse)
        await settle(bob2)  # uploads its keys: bob's device list changes
        await settle(alice)  # sees bob in device_lists.changed, looks his devices up again
        assert bob2.device_id in alice.device_store[bob.user_id]

        await send(alice, room_id, "after the new device")
        assert (await receive(bob2, room_id, "after the new device")).decrypted
        assert (await receive(bob, room_id, "after the new device")).decrypted
        await send(bob2, room_id, "from the new device")
        assert (await receive(alice, room_id, "from the new device")).decrypted
    finally:
        for client in (alice, bob, bob2):
            await client.close()


async def test_fifty_concurrent_claims_of_real_one_time_keys(homeserver, tmp_path, api):
    alice = encrypting_client(homeserver, tmp_path, "alice")
    try:
        await alice.register("alice", "correct horse")
        await settle(alice)
        uploaded = (await api.post("/keys/upload", {}, token=alice.access_token))[1]["one_time_key_counts"]
        available = uploaded["signed_curve25519"]
        assert available > 0
        claimers = [await api.register(f"claimer{i}") for i in range(5)]
        wanted = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

        async def claim(i: int) -> tuple[str, dict]:
            status, body = await api.post("/keys/claim", wanted, token=claimers[i % 5]["access_token"])
            assert status == 200, body
            return next(iter(body["one_time_keys"].get(alice.user_id, {}).get(alice.device_id, {}).items()),
                        (None, None))

        claimed = await asyncio.gather(*(claim(i) for i in range(50)))
        verify_key = decode_verify_key_bytes(f"ed25519:{alice.device_id}",
                                             decode_base64(alice.olm.account.identity_keys["ed25519"]))
        one_time = [(key_id, key) for key_id, key in claimed if key_id is not None and not key.get("fallback")]
        assert len(one_time) == min(50, available)
        assert len({key_id for key_id, _ in one_time}) == len(one_time)  # never the same key twice
        for _, key in one_time:
            verify_signed_json(key, alice.user_id, verify_key)  # keys the device really made
        after = await settle(alice)
        assert after.device_key_count.signed_curve25519 == max(0, available - 50)
    finally:
        await alice.close()


async def test_a_key_backup_made_by_one_device_is_restored_by_another(homeserver, tmp_path, api):
    alice, bob, room_id = await encrypted_room(homeserver, tmp_path)
    laptop = encrypting_client(homeserver, tmp_path, "alice")
    try:
        await send(bob, room_id, "read me later")
        await receive(alice, room_id, "read me later")

        # alice's first device backs its room keys up, encrypted to a key only she holds
        backup_key = vodozemac.PkDecryption()
        status, created = await api.post("/room_keys/version", {
            "algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": backup_key.public_key.to_base64()},
        }, token=alice.access_token)
        assert status == 200
        encryption = vodozemac.PkEncryption.from_key(backup_key.public_key)
        sessions = {}
        for session in alice.olm.inbound_group_store:
            if session.room_id != room_id:
                continue
            exported = {"algorithm": "m.megolm.v1.aes-sha2", "sender_key": session.sender_key,
                        "session_key": session.export_session(session.first_known_index),
                        "sender_claimed_keys": {"ed25519": session.ed25519}, "forwarding_curve25519_key_chain": []}
            message = encryption.encrypt(orjson.dumps(exported))
            sessions[session.id] = {
                "first_message_index": session.first_known_index, "forwarded_count": 0, "is_verified": True,
                "session_data": {"ephemeral": encode_base64(message.ephemeral_key),
                                 "ciphertext": encode_base64(message.ciphertext), "mac": encode_base64(message.mac)},
            }
        assert sessions
        status, stored = await api.put("/room_keys/keys", {"rooms": {room_id: {"sessions": sessions}}},
                                       token=alice.access_token, params={"version": created["version"]})
        assert (status, stored["count"]) == (200, len(sessions))

        # a new device of hers, with the backup key she typed in, reads the old message
        assert isinstance(await laptop.login("correct horse"), nio.LoginResponse)
        await settle(laptop)
        history = await laptop.room_messages(room_id, start="", limit=20)
        assert isinstance(history, nio.RoomMessagesResponse), history
        undecrypted = [e for e in history.chunk if isinstance(e, nio.MegolmEvent)]
        assert undecrypted, "the new device should not have the room key yet"

        status, current = await api.get("/room_keys/version", token=laptop.access_token)
        assert current["version"] == created["version"] and current["count"] == len(sessions)
        status, backup = await api.get("/room_keys/keys", token=laptop.access_token,
                                       params={"version": current["version"]})
        restore_key = vodozemac.PkDecryption.from_key(vodozemac.Curve25519SecretKey.from_bytes(
            backup_key.key.to_bytes()))
        for session_id, data in backup["rooms"][room_id]["sessions"].items():
            encrypted = data["session_data"]
            plain = restore_key.decrypt(vodozemac.Message(decode_base64(encrypted["ciphertext"]),
                                                          decode_base64(encrypted["mac"]),
                                                          decode_base64(encrypted["ephemeral"])))
            session = orjson.loads(plain)
            laptop.olm.inbound_group_store.add(nio.crypto.InboundGroupSession.import_session(
                session["session_key"], session["sender_claimed_keys"]["ed25519"], session["sender_key"], room_id))
        decrypted = [laptop.decrypt_event(event) for event in undecrypted]
        assert any(isinstance(e, nio.RoomMessageText) and e.body == "read me later" for e in decrypted)
    finally:
        for client in (alice, bob, laptop):
            await client.close()
