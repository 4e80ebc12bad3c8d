"""Keys made and signed the way an encrypting client makes them (PyNaCl and signedjson),
for the raw-HTTP tests of the end-to-end encryption endpoints."""

from __future__ import annotations

import os
import uuid

from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


def random_key() -> str:
    return encode_base64(os.urandom(32))


def public_key(signing_key) -> str:
    return encode_base64(get_verify_key(signing_key).encode())


class Device:
    """One device of a user: its ed25519 key signs its device keys and one-time keys."""

    def __init__(self, user_id: str, device_id: str, token: str | None = None) -> None:
        self.user_id, self.device_id, self.token = user_id, device_id, token
        self.signing_key = generate_signing_key(device_id)
        self.ed25519 = public_key(self.signing_key)
        self.curve25519 = random_key()

    @classmethod
    def of(cls, registered: dict) -> "Device":
        return cls(registered["user_id"], registered["device_id"], registered["access_token"])

    def sign(self, obj: dict) -> dict:
        return sign_json(obj, self.user_id, self.signing_key)

    def device_keys(self) -> dict:
        return self.sign({
            "user_id": self.user_id, "device_id": self.device_id, "algorithms": ALGORITHMS,
            "keys": {f"curve25519:{self.device_id}": self.curve25519, f"ed25519:{self.device_id}": self.ed25519},
        })

    def one_time_keys(self, count: int) -> dict:
        return {f"signed_curve25519:{uuid.uuid4().hex[:12]}": self.sign({"key": random_key()}) for _ in range(count)}

    def fallback_key(self) -> dict:
        return {f"signed_curve25519:{uuid.uuid4().hex[:12]}": self.sign({"key": random_key(), "fallback": True})}


class CrossSigningKeys:
    """A user's master, self-signing and user-signing keys."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.master = generate_signing_key("master")
        self.self_signing = generate_signing_key("ssk")
        self.user_signing = generate_signing_key("usk")

    def _key(self, usage: str, signing_key) -> dict:
        public = public_key(signing_key)
        return {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}

    @staticmethod
    def sign_with(obj: dict, user_id: str, signing_key) -> dict:
        """`obj` signed by a cross-signing key, whose key ID is its public key."""
        signing_key.version = public_key(signing_key)
        return sign_json(obj, user_id, signing_key)

    def upload_body(self) -> dict:
        return {
            "master_key": self._key("master", self.master),
            "self_signing_key": self.sign_with(self._key("self_signing", self.self_signing), self.user_id, self.master),
            "user_signing_key": self.sign_with(self._key("user_signing", self.user_signing), self.user_id, self.master),
        }

    @property
    def master_public(self) -> str:
        return public_key(self.master)


async def sync(api, token: str, since: str | None = None, timeout: int = 0) -> dict:
    """GET /sync with `since` when given; asserts a 200."""
    params = {"timeout": str(timeout)}
    if since:
        params["since"] = since
    status, body = await api.get("/sync", token=token, params=params)
    assert status == 200, body
    return body


async def login(api, localpart: str) -> dict:
    """A new device of an existing user (password `correct horse`): the login answer."""
    status, body = await api.post("/login", {"type": "m.login.password", "password": "correct horse",
                                             "identifier": {"type": "m.id.user", "user": localpart}})
    assert status == 200, body
    return body
