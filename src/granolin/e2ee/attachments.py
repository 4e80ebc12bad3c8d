"""Encrypted attachments: files sent into encrypted rooms (the spec's "Sending encrypted attachments").

A file is encrypted with AES-256-CTR under a fresh random key and a fresh
128-bit counter block: 64 random bits followed by a 64-bit counter starting at
zero. The ciphertext is uploaded; the message carries an ``EncryptedFile``
(``file``, or ``info.thumbnail_file`` for a thumbnail) with the upload's
``url``, the key as a JSON Web Key, the counter block (``iv``) and the SHA-256
of the ciphertext, all inside the Megolm-encrypted event. A reader checks the
hash before decrypting: the homeserver cannot change the file unnoticed.

AES-CTR comes from the ``cryptography`` package (part of the ``e2e`` extra).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import AttachmentError
from .encoding import decode_base64_strictly, encode_base64

VERSION = "v2"
ALGORITHM = "A256CTR"
KEY_BYTES = 32
IV_BYTES = 16
KEY_OPERATIONS = ("encrypt", "decrypt")


def _aes_ctr(key: bytes, counter_block: bytes, data: bytes) -> bytes:
    """AES-256-CTR is its own inverse: the same call encrypts and decrypts."""
    transform = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
    return transform.update(data) + transform.finalize()


def encrypt_attachment(plaintext: bytes) -> tuple[bytes, dict[str, Any]]:
    """Encrypt a file: its ciphertext, and the ``EncryptedFile`` without its ``url`` (added once uploaded).

    Key and counter block are new at every call, so a file and its thumbnail
    never share them.
    """
    key = secrets.token_bytes(KEY_BYTES)
    counter_block = secrets.token_bytes(IV_BYTES // 2) + bytes(IV_BYTES // 2)
    ciphertext = _aes_ctr(key, counter_block, plaintext)
    encrypted_file = {
        "v": VERSION,
        "key": {"kty": "oct", "key_ops": list(KEY_OPERATIONS), "alg": ALGORITHM, "k": encode_base64(key, urlsafe=True), "ext": True},
        "iv": encode_base64(counter_block),
        "hashes": {"sha256": encode_base64(hashlib.sha256(ciphertext).digest())},
    }
    return ciphertext, encrypted_file


def _decoded(value: Any, what: str, size: int | None = None) -> bytes:
    try:
        decoded = decode_base64_strictly(value)
    except ValueError:
        raise AttachmentError(f"the encrypted file's {what} is not base64") from None
    if size is not None and len(decoded) != size:
        raise AttachmentError(f"the encrypted file's {what} is {len(decoded)} bytes, not {size}")
    return decoded


def decrypt_attachment(ciphertext: bytes, encrypted_file: Mapping[str, Any]) -> bytes:
    """The plaintext of a downloaded encrypted file, after checking its ``EncryptedFile``.

    Refused with :class:`AttachmentError`: a version other than v2, a key that
    is not an A256CTR ``oct`` key allowed to decrypt, a key or counter block of
    the wrong size, no SHA-256, and a ciphertext whose SHA-256 differs (checked
    before decrypting).
    """
    if not isinstance(encrypted_file, Mapping):
        raise AttachmentError("the encrypted file is not an object")
    if encrypted_file.get("v") != VERSION:
        raise AttachmentError(f"the encrypted file's version is {encrypted_file.get('v')!r}, not {VERSION!r}")
    key = encrypted_file.get("key")
    if not isinstance(key, Mapping) or key.get("kty") != "oct" or key.get("alg") != ALGORITHM:
        raise AttachmentError(f"the encrypted file's key is not an {ALGORITHM} key of type oct")
    operations = key.get("key_ops")
    if not isinstance(operations, list) or not set(KEY_OPERATIONS) <= set(operations):
        raise AttachmentError("the encrypted file's key_ops lack encrypt and decrypt")
    hashes = encrypted_file.get("hashes")
    if not isinstance(hashes, Mapping) or "sha256" not in hashes:
        raise AttachmentError("the encrypted file has no SHA-256 hash")
    secret = _decoded(key.get("k"), "key", KEY_BYTES)
    counter_block = _decoded(encrypted_file.get("iv"), "iv", IV_BYTES)
    expected = _decoded(hashes["sha256"], "SHA-256 hash", hashlib.sha256().digest_size)
    if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), expected):
        raise AttachmentError("the downloaded file does not match its SHA-256 hash: it was changed, it is not decrypted")
    return _aes_ctr(secret, counter_block, ciphertext)
