"""Encrypted attachments: the cipher (against a published AES-CTR vector and matrix-nio's own
implementation), and what the client uploads and sends for a clear or an encrypted room.

The client tests use the scripted peer, which records the exact uploads and messages.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from granolin import AttachmentError, Client, GranolinError, ImageMessage, Room, timeline_event
from granolin.e2ee import attachments
from granolin.e2ee.attachments import decrypt_attachment, encrypt_attachment
from scripted_server import ScriptedHomeserver

ROOM = "!room:scripted"
UPLOAD = "/_matrix/media/v3/upload"
UNPADDED_BASE64 = re.compile(r"^[A-Za-z0-9+/]+$")
UNPADDED_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def unpadded(data: bytes, *, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)).decode().rstrip("=")


def padded_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))


# --- the cipher ---------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100_003])
def test_what_is_encrypted_decrypts_to_the_same_bytes(size: int) -> None:
    plaintext = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    ciphertext, encrypted_file = encrypt_attachment(plaintext)
    assert len(ciphertext) == size and (size == 0 or ciphertext != plaintext)
    assert decrypt_attachment(ciphertext, encrypted_file) == plaintext


def test_the_file_object_has_the_spec_fields_and_formats() -> None:
    ciphertext, encrypted_file = encrypt_attachment(b"a cat picture")
    assert set(encrypted_file) == {"v", "key", "iv", "hashes"} and encrypted_file["v"] == "v2"
    key = encrypted_file["key"]
    assert {k: v for k, v in key.items() if k != "k"} == {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR", "ext": True}
    assert UNPADDED_BASE64URL.match(key["k"]) and len(padded_decode(key["k"])) == 32
    assert UNPADDED_BASE64.match(encrypted_file["iv"]) and len(encrypted_file["iv"]) == 22
    counter_block = padded_decode(encrypted_file["iv"])
    assert len(counter_block) == 16 and counter_block[8:] == bytes(8)  # the counter half starts at zero
    (sha256,) = encrypted_file["hashes"].values()
    assert UNPADDED_BASE64.match(sha256) and padded_decode(sha256) == hashlib.sha256(ciphertext).digest()


def test_every_file_gets_its_own_key_and_iv() -> None:
    files = [encrypt_attachment(b"same bytes") for _ in range(20)]
    assert len({f["key"]["k"] for _, f in files}) == 20 and len({f["iv"] for _, f in files}) == 20
    assert len({c for c, _ in files}) == 20
    assert len({padded_decode(f["iv"])[:8] for _, f in files}) == 20  # the random half is random


def test_decryption_uses_the_whole_counter_block_as_aes_ctr_says() -> None:
    # NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt, first block.
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    counter_block = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    ciphertext = bytes.fromhex("601ec313775789a5b7a7f504bbf3d228")
    encrypted_file = {
        "v": "v2", "iv": unpadded(counter_block), "hashes": {"sha256": unpadded(hashlib.sha256(ciphertext).digest())},
        "key": {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR", "k": unpadded(key, urlsafe=True), "ext": True},
    }
    assert decrypt_attachment(ciphertext, encrypted_file) == bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")


def test_a_changed_ciphertext_is_refused_before_decrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    ciphertext, encrypted_file = encrypt_attachment(b"the original file")
    changed = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    decrypted: list[bytes] = []
    real = attachments._aes_ctr
    monkeypatch.setattr(attachments, "_aes_ctr", lambda *args: decrypted.append(args[2]) or real(*args))
    with pytest.raises(AttachmentError, match="SHA-256"):
        decrypt_attachment(changed, encrypted_file)
    with pytest.raises(AttachmentError, match="SHA-256"):
        decrypt_attachment(ciphertext + b"x", encrypted_file)
    assert decrypted == []
    assert decrypt_attachment(ciphertext, encrypted_file) == b"the original file" and decrypted == [ciphertext]


def changed(encrypted_file: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(encrypted_file))
    *parents, leaf = path.split(".")
    holder = copy
    for parent in parents:
        holder = holder[parent]
    if value is None:
        del holder[leaf]
    else:
        holder[leaf] = value
    return copy


@pytest.mark.parametrize(("path", "value", "message"), [
    ("hashes.sha256", unpadded(hashlib.sha256(b"something else").digest()), "SHA-256"),
    ("hashes.sha256", None, "no SHA-256"),
    ("hashes.sha256", "not base64!", "not base64"),
    ("v", "v1", "version"),
    ("v", None, "version"),
    ("key.alg", "A128CTR", "A256CTR"),
    ("key.kty", "RSA", "oct"),
    ("key.key_ops", ["encrypt"], "key_ops"),
    ("key.key_ops", "decrypt", "key_ops"),
    ("key.k", unpadded(bytes(16), urlsafe=True), "32"),
    ("key.k", None, "not base64"),
    ("iv", unpadded(bytes(8)), "16"),
    ("iv", 7, "not base64"),
])
def test_a_malformed_file_object_is_refused(path: str, value: Any, message: str) -> None:
    ciphertext, encrypted_file = encrypt_attachment(b"the original file")
    with pytest.raises(AttachmentError, match=message):
        decrypt_attachment(ciphertext, changed(encrypted_file, path, value))


def test_padded_and_standard_alphabet_keys_are_read_too() -> None:
    ciphertext, encrypted_file = encrypt_attachment(b"lenient reader")
    standard_key = base64.b64encode(padded_decode(encrypted_file["key"]["k"])).decode()
    assert decrypt_attachment(ciphertext, changed(encrypted_file, "key.k", standard_key)) == b"lenient reader"


@pytest.mark.interop
def test_what_granolin_encrypts_matrix_nio_decrypts() -> None:
    from nio.crypto.attachments import decrypt_attachment as nio_decrypt

    plaintext = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    ciphertext, encrypted_file = encrypt_attachment(plaintext)
    assert nio_decrypt(ciphertext, encrypted_file["key"]["k"], encrypted_file["hashes"]["sha256"], encrypted_file["iv"]) == plaintext


@pytest.mark.interop
def test_what_matrix_nio_encrypts_granolin_decrypts() -> None:
    from nio.crypto.attachments import encrypt_attachment as nio_encrypt

    plaintext = b"a file from nio " * 1000
    ciphertext, keys = nio_encrypt(plaintext)
    assert decrypt_attachment(ciphertext, keys) == plaintext
    with pytest.raises(AttachmentError, match="SHA-256"):
        decrypt_attachment(ciphertext[:-1], keys)


# --- the client -----------------------------------------------------------------


@pytest.fixture
async def bot(scripted: ScriptedHomeserver) -> Client:
    client = Client(scripted.url, hardcopy=None, encryption=False)
    client.user_id, client.access_token = "@bot:scripted", "secret-token"
    yield client
    await client.close()


def encrypted_room() -> Room:
    room = Room(ROOM)
    room.apply("m.room.create", "", {"room_version": "11"})
    room.apply("m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"})
    return room


def messages(scripted: ScriptedHomeserver) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in scripted.requests if "/send/" in r.path]


async def test_an_attachment_for_a_clear_room_is_uploaded_as_it_is(bot: Client, scripted: ScriptedHomeserver) -> None:
    scripted.script("POST", UPLOAD, *[(200, {"content_uri": f"mxc://s/{name}"}) for name in ("cat", "small", "report")])
    await bot.send_attachment(ROOM, b"\x89PNG cat", "cat.png", caption="my cat", info={"w": 10, "h": 8},
                              thumbnail=b"\x89PNG small", thumbnail_info={"mimetype": "image/png", "w": 5, "h": 4})
    await bot.send_attachment(ROOM, b"%PDF", "report.pdf", msgtype="m.file")
    uploads = [r for r in scripted.requests if r.path == UPLOAD]
    assert [(r.body, r.headers["Content-Type"], r.query) for r in uploads] == [
        (b"\x89PNG cat", "image/png", {"filename": "cat.png"}),
        (b"\x89PNG small", "image/png", {"filename": "thumbnail-cat.png"}),
        (b"%PDF", "application/pdf", {"filename": "report.pdf"}),
    ]
    image, report = messages(scripted)
    assert image == {
        "msgtype": "m.image", "body": "my cat", "filename": "cat.png", "url": "mxc://s/cat",
        "info": {"mimetype": "image/png", "size": 8, "w": 10, "h": 8, "thumbnail_url": "mxc://s/small",
                 "thumbnail_info": {"size": 10, "mimetype": "image/png", "w": 5, "h": 4}},
    }
    assert report == {"msgtype": "m.file", "body": "report.pdf", "filename": "report.pdf", "url": "mxc://s/report",
                      "info": {"mimetype": "application/pdf", "size": 4}}


@pytest.mark.parametrize(("filename", "msgtype"), [("a.jpg", "m.image"), ("a.ogg", "m.audio"), ("a.mp4", "m.video"), ("a.bin", "m.file")])
async def test_the_msgtype_follows_the_content_type(bot: Client, scripted: ScriptedHomeserver, filename: str, msgtype: str) -> None:
    scripted.script("POST", UPLOAD, (200, {"content_uri": "mxc://s/x"}))
    await bot.send_attachment(ROOM, b"data", filename)
    (message,) = messages(scripted)
    assert message["msgtype"] == msgtype


@pytest.mark.parametrize("synced", [True, False])
async def test_without_encryption_nothing_is_uploaded_for_an_encrypted_room(
    scripted: ScriptedHomeserver, monkeypatch: pytest.MonkeyPatch, synced: bool,
) -> None:
    monkeypatch.setitem(sys.modules, "vodozemac", None)  # as where granolin[e2e] is not installed
    async with Client(scripted.url, hardcopy=None) as bot:
        bot.user_id, bot.access_token = "@bot:scripted", "secret-token"
        assert bot.encryption is None
        if synced:
            bot.rooms[ROOM] = encrypted_room()
        else:  # the room is asked about
            scripted.script("GET", f"/_matrix/client/v3/rooms/{ROOM}/state/m.room.encryption/",
                            (200, {"algorithm": "m.megolm.v1.aes-sha2"}))
        with pytest.raises(GranolinError, match="not uploaded in the clear"):
            await bot.send_attachment(ROOM, b"secret plans", "plans.txt")
    assert [r.path for r in scripted.requests if r.path == UPLOAD or "/send/" in r.path] == []


class FakeEncryption:
    """Stands for the Megolm side (tested live): the message goes out as it was built."""

    async def prepare(self) -> None:
        return None

    async def encrypt(self, room: Room, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"algorithm": "m.megolm.v1.aes-sha2", "clear": {"type": event_type, "content": content}}


async def test_an_attachment_for_an_encrypted_room_is_uploaded_encrypted(bot: Client, scripted: ScriptedHomeserver) -> None:
    bot.encryption, bot.device_id = FakeEncryption(), "BOTDEVICE"  # type: ignore[assignment]
    bot.rooms[ROOM] = encrypted_room()
    scripted.script("POST", UPLOAD, (200, {"content_uri": "mxc://s/enc"}), (200, {"content_uri": "mxc://s/encthumb"}))
    await bot.send_attachment(ROOM, b"\x89PNG secret cat", "cat.png", thumbnail=b"\x89PNG tiny", thumbnail_info={"mimetype": "image/png"})
    uploads = [r for r in scripted.requests if r.path == UPLOAD]
    assert all(r.headers["Content-Type"] == "application/octet-stream" and r.query == {} for r in uploads)
    (sent,) = [orjson.loads(r.body) for r in scripted.requests if "/send/m.room.encrypted/" in r.path]
    content = sent["clear"]["content"]
    assert "url" not in content and content["file"]["url"] == "mxc://s/enc"
    assert content["info"]["mimetype"] == "image/png" and content["info"]["size"] == len(b"\x89PNG secret cat")
    assert "thumbnail_url" not in content["info"] and content["info"]["thumbnail_file"]["url"] == "mxc://s/encthumb"
    assert content["file"]["key"]["k"] != content["info"]["thumbnail_file"]["key"]["k"]
    assert decrypt_attachment(uploads[0].body, content["file"]) == b"\x89PNG secret cat"
    assert decrypt_attachment(uploads[1].body, content["info"]["thumbnail_file"]) == b"\x89PNG tiny"


def serving(body: bytes, content_type: str = "application/octet-stream"):
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    return answer


async def test_download_attachment_decrypts_file_and_thumbnail_file(bot: Client, scripted: ScriptedHomeserver) -> None:
    picture, picture_file = encrypt_attachment(b"the picture")
    small, small_file = encrypt_attachment(b"the thumbnail")
    scripted.script("GET", "/_matrix/client/v1/media/download/s/pic", serving(picture))
    scripted.script("GET", "/_matrix/client/v1/media/download/s/small", serving(small))
    content = {"msgtype": "m.image", "body": "holiday.jpg", "file": {**picture_file, "url": "mxc://s/pic"},
               "info": {"mimetype": "image/jpeg", "thumbnail_file": {**small_file, "url": "mxc://s/small"},
                        "thumbnail_info": {"mimetype": "image/png"}}}
    event = timeline_event({"type": "m.room.message", "event_id": "$e", "sender": "@a:s", "content": content}, ROOM)
    assert isinstance(event, ImageMessage) and event.url is None and event.file == content["file"]
    media = await bot.download_attachment(event)
    assert (media.content, media.content_type, media.filename) == (b"the picture", "image/jpeg", "holiday.jpg")
    thumbnail = await bot.download_attachment(content, thumbnail=True)
    assert (thumbnail.content, thumbnail.content_type) == (b"the thumbnail", "image/png")


async def test_download_attachment_refuses_a_changed_file(bot: Client, scripted: ScriptedHomeserver) -> None:
    ciphertext, encrypted_file = encrypt_attachment(b"the picture")
    scripted.script("GET", "/_matrix/client/v1/media/download/s/pic", serving(ciphertext[::-1]))
    with pytest.raises(AttachmentError, match="SHA-256"):
        await bot.download_attachment({"msgtype": "m.file", "body": "f", "file": {**encrypted_file, "url": "mxc://s/pic"}})
    with pytest.raises(GranolinError, match="no file and no url"):
        await bot.download_attachment({"msgtype": "m.file", "body": "nothing attached"})
    with pytest.raises(AttachmentError, match="no url"):
        await bot.download_attachment({"msgtype": "m.file", "body": "f", "file": encrypted_file})


async def test_download_attachment_of_a_clear_message_downloads_its_url(bot: Client, scripted: ScriptedHomeserver) -> None:
    scripted.script("GET", "/_matrix/client/v1/media/download/s/plain", serving(b"plain bytes", "text/plain"))
    media = await bot.download_attachment({"msgtype": "m.file", "body": "notes.txt", "url": "mxc://s/plain"})
    assert (media.content, media.content_type, media.filename) == (b"plain bytes", "text/plain", "notes.txt")


async def test_without_the_cryptography_package_an_encrypted_file_is_refused_by_name(
    bot: Client, scripted: ScriptedHomeserver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "granolin.e2ee.attachments")
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    _, encrypted_file = encrypt_attachment(b"x")
    with pytest.raises(GranolinError, match=r"granolin\[e2e\]"):
        await bot.download_attachment({"msgtype": "m.file", "body": "f", "file": {**encrypted_file, "url": "mxc://s/pic"}})
    assert scripted.requests == []  # refused before downloading
