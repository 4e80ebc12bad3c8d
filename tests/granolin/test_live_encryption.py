"""Encrypted rooms: a granolin bot with the e2e extra and matrix-nio with encryption, through a real homeserver.

The bot keeps its files (hardcopy and crypto store) in the test's folder, so a
new Client made from them is the bot after a restart.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
import sys
import uuid
from pathlib import Path

import nio
import pytest
from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from signedjson.key import decode_verify_key_bytes
from unpaddedbase64 import decode_base64

from granolin import Client, GranolinError, ImageMessage, Media, TextMessage, TimelineEvent
from granolin.dispatch import SendScope, send_scope
from granolin.testing import TestHomeserver, TestUser
from live_support import eventually
from nio.crypto.attachments import decrypt_attachment as nio_decrypt_attachment
from nio_e2ee import ENCRYPTION, encrypting_client, receive, send, settle

pytestmark = pytest.mark.interop

V3 = "/_matrix/client/v3"


class EchoBot(Client):
    """Answers every text with "echo: <text>" and remembers what it saw; with ``hang``, its handler never ends."""

    hang = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[TextMessage] = []
        self.undecryptable: list[tuple[TimelineEvent, str]] = []

        @self.on(TextMessage)
        async def echo(event: TextMessage) -> None:
            self.seen.append(event)
            if self.hang:
                await asyncio.Event().wait()
            await self.send_text_message(str(event.room_id), f"echo: {event.body}")

    async def on_undecryptable(self, event: TimelineEvent, reason: str) -> None:
        self.undecryptable.append((event, reason))


def bot_from_files(hs: TestHomeserver, tmp_path: Path, **kwargs: object) -> EchoBot:
    return EchoBot(hs.base_url, hardcopy=tmp_path / "bot.hardcopy.json", timeout=0, **kwargs)  # type: ignore[arg-type]


async def new_bot(hs: TestHomeserver, tmp_path: Path, **kwargs: object) -> tuple[EchoBot, TestUser]:
    user = await hs.register_user("bot")
    bot = bot_from_files(hs, tmp_path, **kwargs)
    await bot.login(user.localpart, user.password)
    await bot.sync()  # publishes the device's keys; the first sync
    return bot, user


async def nio_user(hs: TestHomeserver, tmp_path: Path, name: str = "alice") -> tuple[nio.AsyncClient, TestUser]:
    user = await hs.register_user(name)
    client = encrypting_client(hs, tmp_path, user.localpart)
    assert isinstance(await client.login(user.password, device_name=f"{name}'s phone"), nio.LoginResponse)
    await settle(client)
    return client, user


async def encrypted_dm(hs: TestHomeserver, tmp_path: Path, **bot_options: object) -> tuple[EchoBot, nio.AsyncClient, str]:
    bot, _ = await new_bot(hs, tmp_path, **bot_options)
    alice, _ = await nio_user(hs, tmp_path)
    return bot, alice, await start_dm(bot, alice)


async def start_dm(bot: Client, alice: nio.AsyncClient) -> str:
    """alice (nio) opens an encrypted direct room with the bot; both know it afterwards."""
    created = await alice.room_create(is_direct=True, invite=[bot.user_id], initial_state=[ENCRYPTION])
    assert isinstance(created, nio.RoomCreateResponse), created
    await bot.join_room(created.room_id)
    await bot.sync()
    await settle(alice)
    return created.room_id


async def claim_sessions(client: nio.AsyncClient, room_id: str) -> None:
    """Olm sessions with every device of the room, as nio makes them before sharing a room key."""
    missing = client.get_missing_sessions(room_id)
    if missing:
        assert isinstance(await client.keys_claim(missing), nio.KeysClaimResponse)


async def bot_handles(bot: EchoBot, count: int) -> list[TextMessage]:
    """Sync the bot until its handler has seen ``count`` messages."""
    for _ in range(40):
        await bot.sync()
        await bot.drain()
        if len(bot.seen) >= count:
            return bot.seen
    raise AssertionError(f"the bot saw {[e.body for e in bot.seen]}, not {count} messages")


async def test_an_encrypted_dm_is_decrypted_and_answered_to_that_device(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    try:
        assert bot.encryption is not None and bot.get_room(room).encrypted  # type: ignore[union-attr]
        await send(alice, room, "hello bot")
        (seen,) = await bot_handles(bot, 1)
        assert (seen.body, seen.sender, seen.type) == ("hello bot", alice.user_id, "m.room.message")
        assert seen.encrypted and seen.encryption is not None
        assert seen.encryption.device_id == alice.device_id and not seen.encryption.verified
        assert seen.encryption.original["type"] == "m.room.encrypted"

        answer = await receive(alice, room, "echo: hello bot")
        assert answer.decrypted and answer.sender == bot.user_id
        status, stored = await live_hs.call("GET", f"{V3}/rooms/{room}/event/{answer.event_id}", token=alice.access_token)
        assert status == 200 and stored["type"] == "m.room.encrypted" and "echo" not in str(stored)
        shared = bot.encryption.megolm.outbound(room)
        assert shared is not None and shared.shared_with == {alice.user_id: {alice.device_id: alice.olm.account.identity_keys["ed25519"]}}
        store = tmp_path / "bot.hardcopy.crypto.db"
        assert stat.S_IMODE(store.stat().st_mode) == 0o600 and stat.S_IMODE((tmp_path / "bot.hardcopy.crypto.key").stat().st_mode) == 0o600
        assert b"hello bot" not in (tmp_path / "bot.hardcopy.json").read_bytes() + store.read_bytes()
    finally:
        await alice.close()
        await bot.close()


async def test_after_a_restart_the_bot_reads_the_same_session_and_sends(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    try:
        await send(alice, room, "before")
        (before,) = await bot_handles(bot, 1)
        await receive(alice, room, "echo: before")
        await bot.close()

        again = bot_from_files(live_hs, tmp_path)  # the bot's next process: everything from its files
        assert (again.device_id, again.encryption.identity_keys) == (bot.device_id, bot.encryption.identity_keys)  # type: ignore[union-attr]
        await send(alice, room, "after")
        (after,) = await bot_handles(again, 1)
        assert after.body == "after" and after.encryption.session_id == before.encryption.session_id  # type: ignore[union-attr]
        assert (await receive(alice, room, "echo: after")).decrypted
        assert again.encryption.megolm.outbound(room).session_id == bot.encryption.megolm.outbound(room).session_id  # type: ignore[union-attr]
        await again.close()
    finally:
        await alice.close()


async def test_a_handler_cut_by_a_crash_runs_again_on_the_decrypted_event(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    bot.hang = True
    try:
        await send(alice, room, "interrupted")

        async def started() -> list[TextMessage] | None:
            await bot.sync()
            await asyncio.sleep(0.01)  # the handler starts (and never ends)
            return bot.seen or None

        await eventually(started, what="the handler started")
        hardcopy = (tmp_path / "bot.hardcopy.json").read_bytes()
        (pending,) = json.loads(hardcopy)["pending"]
        assert pending["event"]["type"] == "m.room.encrypted" and b"interrupted" not in hardcopy  # saved as it arrived
        await bot._work.stop(0)  # the crash: the handler is cut, nothing more is saved

        again = bot_from_files(live_hs, tmp_path)
        running = asyncio.create_task(again.start(handle_signals=False))
        (seen,) = await eventually(lambda: again.seen or None, what="the handler run again")
        assert (seen.body, seen.encrypted) == ("interrupted", True)
        assert (await receive(alice, room, "echo: interrupted")).decrypted
        again.stop()
        await running
    finally:
        await alice.close()
        await bot.close()


async def test_a_room_key_that_comes_after_its_message_still_reaches_the_handler(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    try:
        await claim_sessions(alice, room)
        alice.olm.create_outbound_group_session(room)
        held_back = list(alice.olm.share_group_session_parallel(room, list(alice.rooms[room].users), ignore_unverified_devices=True))
        alice.olm.outbound_group_sessions[room].shared = True  # nio believes the key was sent; it was not yet
        await send(alice, room, "the key comes later")
        await bot.sync()
        await bot.drain()
        assert bot.seen == [] and bot.undecryptable == []

        for _, to_device in held_back:
            status, _ = await live_hs.call("PUT", f"{V3}/sendToDevice/m.room.encrypted/{uuid.uuid4().hex}", token=alice.access_token,
                                           json=to_device)
            assert status == 200
        (seen,) = await bot_handles(bot, 1)
        assert seen.body == "the key comes later" and seen.encrypted
        assert (await receive(alice, room, "echo: the key comes later")).decrypted
    finally:
        await alice.close()
        await bot.close()


async def test_an_event_whose_key_never_comes_is_reported(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    bot.undecryptable_timeout = 0.0
    try:
        await claim_sessions(alice, room)
        alice.olm.create_outbound_group_session(room)
        alice.olm.outbound_group_sessions[room].shared = True  # the key is never sent
        event_id = await send(alice, room, "never readable")
        await bot.sync()
        await bot.drain()
        assert bot.seen == []
        ((event, reason),) = bot.undecryptable
        assert (event.event_id, event.type, event.encrypted) == (event_id, "m.room.encrypted", False) and "room key" in reason
    finally:
        await alice.close()
        await bot.close()


async def test_a_new_device_of_the_other_user_reads_the_next_message(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, _ = await new_bot(live_hs, tmp_path)
    alice, alice_user = await nio_user(live_hs, tmp_path)
    room = await start_dm(bot, alice)
    phone = encrypting_client(live_hs, tmp_path, alice_user.localpart)
    try:
        await send(alice, room, "one")
        await bot_handles(bot, 1)
        await receive(alice, room, "echo: one")
        session_id = bot.encryption.megolm.outbound(room).session_id  # type: ignore[union-attr]

        assert isinstance(await phone.login(alice_user.password, device_name="alice's new phone"), nio.LoginResponse)
        await settle(phone)  # its keys are published: alice's device list changes
        await bot.sync()  # device_lists.changed names alice
        await bot.send_text_message(room, "to every device")
        assert (await receive(phone, room, "to every device")).decrypted
        assert (await receive(alice, room, "to every device")).decrypted
        shared = bot.encryption.megolm.outbound(room)  # type: ignore[union-attr]
        assert shared.session_id == session_id and set(shared.shared_with[alice.user_id]) == {alice.device_id, phone.device_id}
    finally:
        for client in (phone, alice, bot):
            await client.close()


async def test_someone_leaving_rotates_the_room_key(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    bob = live_hs.client(await live_hs.register_user("bob"), encryption=False)
    try:
        await bot.send_text_message(room, "first")
        first = bot.encryption.megolm.outbound(room).session_id  # type: ignore[union-attr]
        assert isinstance(await alice.room_invite(room, str(bob.user_id)), nio.RoomInviteResponse)
        await bob.join_room(room)
        await bot.sync()
        await bot.send_text_message(room, "second")
        assert bot.encryption.megolm.outbound(room).session_id == first  # type: ignore[union-attr]  # a join keeps the key
        await bob.leave_room(room)
        await bot.sync()
        await bot.send_text_message(room, "third")
        assert bot.encryption.megolm.outbound(room).session_id != first  # type: ignore[union-attr]
        assert (await receive(alice, room, "third")).decrypted
    finally:
        for client in (bob, alice, bot):
            await client.close()


async def test_an_encrypted_send_repeated_after_a_crash_reuses_its_transaction(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    again = bot_from_files(live_hs, tmp_path)  # the same bot after a crash, from its files
    token = send_scope.set(SendScope("a handler run"))  # as inside a handler: derived transaction IDs
    try:
        first = await bot.send_text_message(room, "only once")
        send_scope.set(SendScope("a handler run"))  # the handler runs again from the start
        assert await again.send_text_message(room, "only once") == first
        assert (await receive(alice, room, "only once")).event_id == first
        history = await alice.room_messages(room, start="", limit=20)
        assert isinstance(history, nio.RoomMessagesResponse)
        assert [e.body for e in history.chunk if isinstance(e, nio.RoomMessageText) and e.body == "only once"] == ["only once"]
    finally:
        send_scope.reset(token)
        for client in (alice, bot, again):
            await client.close()


async def test_the_bot_cross_signs_its_device_and_can_reset_with_its_password(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, bot_user = await new_bot(live_hs, tmp_path)
    reader = await live_hs.register_user("reader")

    async def published() -> tuple[str, dict]:
        status, keys = await live_hs.call("POST", f"{V3}/keys/query", token=reader.access_token, json={"device_keys": {bot.user_id: []}})
        assert status == 200
        (master,) = keys["master_keys"][bot.user_id]["keys"].values()
        self_signing = keys["self_signing_keys"][bot.user_id]
        (self_signing_key,) = self_signing["keys"].values()
        assert verified(self_signing, bot.user_id, master)
        device = keys["device_keys"][bot.user_id][bot.device_id]
        assert verified(device, bot.user_id, self_signing_key)
        return master, device

    try:
        master, device = await published()
        assert master == bot.encryption.cross_signing.master_public  # type: ignore[union-attr]
        assert device["keys"][f"ed25519:{bot.device_id}"] == bot.encryption.identity_keys["ed25519"]  # type: ignore[union-attr]

        await bot.encryption.reset_cross_signing()  # type: ignore[union-attr]  # replacing keys asks for the password
        new_master, _ = await published()
        assert new_master != master and new_master == bot.encryption.cross_signing.master_public  # type: ignore[union-attr]

        stranger = live_hs.client(bot_user, hardcopy=tmp_path / "other.json")  # the same account, no password given
        await stranger.sync()
        with pytest.raises(GranolinError, match="password"):
            await stranger.encryption.reset_cross_signing()  # type: ignore[union-attr]
        await stranger.close()
    finally:
        await bot.close()


def verified(signed: dict, user_id: str, ed25519: str) -> bool:
    """Whether ``signed`` carries a valid signature by ``ed25519`` (checked with PyNaCl, not with granolin)."""
    signature = signed["signatures"][user_id][f"ed25519:{ed25519}"]
    try:
        decode_verify_key_bytes(f"ed25519:{ed25519}", decode_base64(ed25519)).verify(
            encode_canonical_json({k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}), decode_base64(signature))
    except BadSignatureError:
        return False
    return True


async def test_key_requests_are_answered_for_the_bots_own_verified_devices_only(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, bot_user = await new_bot(live_hs, tmp_path)
    alice, _ = await nio_user(live_hs, tmp_path)
    room = await start_dm(bot, alice)
    twin = encrypting_client(live_hs, tmp_path, bot_user.localpart)  # the bot's account on a device of its owner
    try:
        await bot.send_text_message(room, "sent before the twin existed")
        assert isinstance(await twin.login(bot_user.password, device_name="owner's laptop"), nio.LoginResponse)
        await settle(twin)
        history = await twin.room_messages(room, start="", limit=20)
        assert isinstance(history, nio.RoomMessagesResponse)
        (locked,) = [e for e in history.chunk if isinstance(e, nio.MegolmEvent) and e.sender == bot.user_id]
        twin.verify_device(twin.device_store[bot.user_id][bot.device_id])  # the owner checked the bot's key

        request = {"action": "request", "request_id": "r1", "requesting_device_id": twin.device_id,
                   "body": {"algorithm": "m.megolm.v1.aes-sha2", "room_id": room, "session_id": locked.session_id}}
        status, _ = await live_hs.call("PUT", f"{V3}/sendToDevice/m.room_key_request/r1", token=twin.access_token,
                                       json={"messages": {bot.user_id: {bot.device_id: request}}})
        assert status == 200
        await bot.sync()  # the twin is not verified yet: refused
        await settle(twin)
        assert opened(twin, locked) is None

        await bot.encryption.trust_device(bot.user_id, str(twin.device_id))  # type: ignore[union-attr]  # cross-signs it
        assert isinstance(await twin.request_room_key(locked), nio.RoomKeyRequestResponse)
        await bot.sync()
        for _ in range(20):
            await settle(twin, timeout_ms=200)
            if (readable := opened(twin, locked)) is not None:
                break
        assert isinstance(readable, nio.RoomMessageText) and readable.body == "sent before the twin existed"
    finally:
        for client in (twin, alice, bot):
            await client.close()


def opened(client: nio.AsyncClient, event: nio.MegolmEvent) -> nio.Event | None:
    """The event decrypted by ``client``, or None while it lacks the room key."""
    try:
        return client.decrypt_event(event)
    except nio.EncryptionError:
        return None


async def test_without_the_extra_an_encrypted_dm_is_reported_once(
    live_hs: TestHomeserver, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vodozemac", None)  # as where granolin[e2e] is not installed: the import fails
    bot, _ = await new_bot(live_hs, tmp_path)
    alice, _ = await nio_user(live_hs, tmp_path)
    try:
        assert bot.encryption is None
        with caplog.at_level(logging.WARNING, logger="granolin"):
            room = await start_dm(bot, alice)
            for body in ("one", "two"):
                await send(alice, room, body)
                await bot.sync()
        await bot.drain()
        warnings = [r.getMessage() for r in caplog.records if r.name == "granolin" and "encrypted" in r.getMessage()]
        assert len(warnings) == 1 and room in warnings[0] and "granolin[e2e]" in warnings[0]
        assert bot.seen == [] and not (tmp_path / "bot.hardcopy.crypto.db").exists()
    finally:
        await alice.close()
        await bot.close()


async def test_one_time_keys_are_topped_up_and_a_used_fallback_key_replaced(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, _ = await new_bot(live_hs, tmp_path)
    claimer = await live_hs.register_user("claimer")
    wanted = {"one_time_keys": {bot.user_id: {bot.device_id: "signed_curve25519"}}}

    async def claim() -> dict:
        status, answer = await live_hs.call("POST", f"{V3}/keys/claim", token=claimer.access_token, json=wanted)
        assert status == 200
        ((key_id, key),) = answer["one_time_keys"][bot.user_id][bot.device_id].items()
        return {"id": key_id, **key}

    async def available() -> int:
        status, answer = await live_hs.call("POST", f"{V3}/keys/upload", token=bot.access_token, json={})
        assert status == 200
        return int(answer["one_time_key_counts"].get("signed_curve25519", 0))

    try:
        target = bot.encryption.account.one_time_key_target  # type: ignore[union-attr]
        assert target == 25 and await available() == target
        claimed = [await claim() for _ in range(target + 1)]  # every one-time key, then the fallback key
        assert not any(key.get("fallback") for key in claimed[:-1]) and claimed[-1].get("fallback")
        assert await available() == 0
        await bot.sync()  # device_one_time_keys_count says 0, and the fallback key is used
        assert await available() == target
        for _ in range(target):
            await claim()
        fallback = await claim()
        assert fallback.get("fallback") and fallback["key"] != claimed[-1]["key"]  # a new fallback key was uploaded
    finally:
        await bot.close()


async def test_invited_members_get_the_room_key_unless_history_is_for_joined_members(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    carol, _ = await nio_user(live_hs, tmp_path, "carol")
    dave, _ = await nio_user(live_hs, tmp_path, "dave")
    try:
        assert isinstance(await alice.room_invite(room, carol.user_id), nio.RoomInviteResponse)
        await bot.sync()
        await bot.send_text_message(room, "carol may read this")
        shared = bot.encryption.megolm.outbound(room)  # type: ignore[union-attr]
        assert set(shared.shared_with) == {alice.user_id, carol.user_id}
        await settle(carol)
        assert isinstance(await carol.join(room), nio.JoinResponse)
        history = await carol.room_messages(room, start="", limit=20)
        assert isinstance(history, nio.RoomMessagesResponse)
        assert "carol may read this" in [e.body for e in history.chunk if isinstance(e, nio.RoomMessageText)]

        visibility = await alice.room_put_state(room, "m.room.history_visibility", {"history_visibility": "joined"})
        assert isinstance(visibility, nio.RoomPutStateResponse)
        assert isinstance(await alice.room_invite(room, dave.user_id), nio.RoomInviteResponse)
        await bot.sync()
        await bot.send_text_message(room, "not for dave yet")
        rotated = bot.encryption.megolm.outbound(room)  # type: ignore[union-attr]
        assert rotated.session_id != shared.session_id and not rotated.shared_history  # history is no longer shared
        assert set(rotated.shared_with) == {alice.user_id, carol.user_id}
    finally:
        for client in (dave, carol, alice, bot):
            await client.close()


async def test_an_encrypted_image_from_nio_reaches_the_handler_decrypted(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    received: list[tuple[Media, Media]] = []

    @bot.on(ImageMessage)
    async def look(event: ImageMessage) -> None:
        received.append((await bot.download_attachment(event), await bot.download_attachment(event, thumbnail=True)))

    picture, small = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64, b"\x89PNG\r\n\x1a\n a thumbnail"
    try:
        uploads = []
        for data in (picture, small):  # nio encrypts and uploads each file
            uploaded, keys = await alice.upload(io.BytesIO(data), "application/octet-stream", encrypt=True, filesize=len(data))
            assert isinstance(uploaded, nio.UploadResponse) and keys is not None, uploaded
            uploads.append({**keys, "url": uploaded.content_uri})
        content = {"msgtype": "m.image", "body": "cat.png", "file": uploads[0],
                   "info": {"mimetype": "image/png", "size": len(picture), "thumbnail_file": uploads[1],
                            "thumbnail_info": {"mimetype": "image/png", "size": len(small)}}}
        sent = await alice.room_send(room, "m.room.message", content, ignore_unverified_devices=True)
        assert isinstance(sent, nio.RoomSendResponse), sent
        for _ in range(40):
            await bot.sync()
            await bot.drain()
            if received:
                break
        ((image, thumbnail),) = received
        assert (image.content, image.content_type, image.filename) == (picture, "image/png", "cat.png")
        assert (thumbnail.content, thumbnail.content_type) == (small, "image/png")
        stored = await bot.download(uploads[0]["url"])
        assert stored.content != picture and len(stored.content) == len(picture)  # the server holds the ciphertext
    finally:
        await alice.close()
        await bot.close()


async def test_a_file_the_bot_sends_into_an_encrypted_room_nio_decrypts(live_hs: TestHomeserver, tmp_path: Path) -> None:
    bot, alice, room = await encrypted_dm(live_hs, tmp_path)
    report = b"%PDF-1.7 quarterly figures " * 500
    try:
        event_id = await bot.send_attachment(room, report, "report.pdf", caption="the report")
        status, stored_event = await live_hs.call("GET", f"{V3}/rooms/{room}/event/{event_id}", token=alice.access_token)
        assert status == 200 and stored_event["type"] == "m.room.encrypted" and "report" not in str(stored_event)

        for _ in range(40):
            response = await settle(alice, timeout_ms=250)
            joined = response.rooms.join.get(room)
            files = [e for e in (joined.timeline.events if joined else []) if isinstance(e, nio.RoomEncryptedFile)]
            if files:
                break
        (received,) = files
        assert received.event_id == event_id and received.body == "the report" and received.mimetype == "application/pdf"
        assert received.source["content"]["filename"] == "report.pdf" and "url" not in received.source["content"]
        downloaded = await alice.download(received.url)
        assert isinstance(downloaded, nio.DownloadResponse), downloaded
        assert downloaded.body != report and downloaded.content_type == "application/octet-stream"
        assert nio_decrypt_attachment(downloaded.body, received.key["k"], received.hashes["sha256"], received.iv) == report
    finally:
        await alice.close()
        await bot.close()
