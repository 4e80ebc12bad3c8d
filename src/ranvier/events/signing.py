"""Ed25519 server signing keys and JSON/event signatures (appendices: "Signing JSON")."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
import nacl.exceptions
import nacl.signing
from unpaddedbase64 import decode_base64, encode_base64

from ranvier.events.canonical_json import encode_canonical_json
from ranvier.events.redaction import redact
from ranvier.events.room_versions import RoomVersion

ALGORITHM = "ed25519"
_VERSION_ALPHABET = string.ascii_letters + string.digits + "_"


class SignatureError(ValueError):
    """A signature is missing, malformed or does not verify."""


class SigningKey:
    """A server's ed25519 signing key and its version (the part after `ed25519:`)."""

    __slots__ = ("version", "key_id", "_key")

    def __init__(self, seed: bytes, version: str) -> None:
        if not version or any(ch not in _VERSION_ALPHABET for ch in version):
            raise ValueError(f"invalid key version {version!r}: use letters, digits and '_'")
        self._key = nacl.signing.SigningKey(seed)
        self.version = version
        #: `ed25519:<version>`, one string for every signature made (each event holds it).
        self.key_id = f"{ALGORITHM}:{version}"

    @classmethod
    def generate(cls, version: str | None = None) -> SigningKey:
        """A new random key; the default version looks like `a_XyZ1`."""
        if version is None:
            version = "a_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
        return cls(secrets.token_bytes(32), version)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SigningKey:
        """Read the one-line `ed25519 <version> <unpadded base64 seed>` file format."""
        text = Path(path).read_text(encoding="utf-8").strip()
        parts = text.split()
        if len(parts) != 3 or parts[0] != ALGORITHM:
            raise ValueError(f"{path}: expected 'ed25519 <version> <base64 seed>'")
        seed = decode_base64(parts[2])
        if len(seed) != 32:
            raise ValueError(f"{path}: the seed must decode to 32 bytes")
        return cls(seed, parts[1])

    def save(self, path: str | os.PathLike) -> None:
        """Write the key file readable by the owner only, since the seed is secret."""
        line = f"{ALGORITHM} {self.version} {encode_base64(bytes(self._key))}\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line)

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return self._key.verify_key

    @property
    def public_key_base64(self) -> str:
        return encode_base64(bytes(self._key.verify_key))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of `message`."""
        return self._key.sign(message).signature


def _signable(obj: dict) -> bytes:
    return encode_canonical_json({key: value for key, value in obj.items() if key not in ("signatures", "unsigned")})


def sign_json(obj: dict, server_name: str, signing_key: SigningKey) -> dict:
    """Return a copy of `obj` with this server's signature added to `signatures`."""
    signature = encode_base64(signing_key.sign(_signable(obj)))
    signatures = {name: dict(keys) for name, keys in obj.get("signatures", {}).items()}
    signatures.setdefault(server_name, {})[signing_key.key_id] = signature
    return {**obj, "signatures": signatures}


def verify_signed_json(obj: dict, server_name: str, key_id: str, verify_key_bytes: bytes) -> None:
    """Raise SignatureError unless `obj` carries a valid `server_name`/`key_id` signature."""
    signatures = obj.get("signatures")
    server_signatures = signatures.get(server_name) if isinstance(signatures, dict) else None
    if not isinstance(server_signatures, dict) or key_id not in server_signatures:
        raise SignatureError(f"no signature from {server_name} with key {key_id}")
    if not key_id.startswith(ALGORITHM + ":"):
        raise SignatureError(f"unsupported signing algorithm in {key_id}")
    try:
        signature = decode_base64(server_signatures[key_id])
        nacl.signing.VerifyKey(verify_key_bytes).verify(_signable(obj), signature)
    except (TypeError, ValueError, UnicodeEncodeError, nacl.exceptions.CryptoError) as exc:
        raise SignatureError(f"invalid signature from {server_name} with key {key_id}") from exc


def sign_event(pdu: dict, room_version: RoomVersion, server_name: str, signing_key: SigningKey) -> dict:
    """Return a copy of `pdu` signed over its redacted form, as the spec requires.

    Signing the redacted form lets signatures be checked on redacted copies; the
    content hash (which must already be in `hashes`) protects the rest.
    """
    signed_redacted = sign_json(redact(pdu, room_version), server_name, signing_key)
    return {**pdu, "signatures": signed_redacted["signatures"]}


def verify_event_signature(
    pdu: dict, room_version: RoomVersion, server_name: str, key_id: str, verify_key_bytes: bytes
) -> None:
    """Raise SignatureError unless `server_name` signed the redacted form of `pdu`."""
    verify_signed_json(redact(pdu, room_version), server_name, key_id, verify_key_bytes)
