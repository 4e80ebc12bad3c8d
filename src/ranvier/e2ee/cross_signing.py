"""Cross-signing: a user's master, self-signing and user-signing keys, and the signatures
uploaded for keys.

Every signature is checked before it is stored: the self-signing and user-signing keys by
the master key, one's own devices by the self-signing key, one's master key by one's own
devices, other users' master keys by one's user-signing key. Nothing invalid is stored.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import orjson
from unpaddedbase64 import decode_base64

from ranvier.e2ee.keys import KeyService
from ranvier.e2ee.locks import KeyedLocks
from ranvier.errors import MatrixError
from ranvier.events.signing import SignatureError, verify_signed_json

USAGES = ("master", "self_signing", "user_signing")
_ED25519 = "ed25519:"


def public_key_of(key: Any, user_id: str, usage: str) -> str:
    """The public key of a cross-signing key object, once its shape is right."""
    if not isinstance(key, dict):
        raise MatrixError("M_BAD_JSON", f"The {usage} key must be an object")
    if key.get("user_id") != user_id:
        raise MatrixError("M_INVALID_PARAM", f"The {usage} key must belong to {user_id}")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise MatrixError("M_INVALID_PARAM", f"The {usage} key must list {usage!r} in its usage")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise MatrixError("M_INVALID_PARAM", f"The {usage} key must hold exactly one public key")
    (key_id, public_key), = keys.items()
    if key_id != _ED25519 + str(public_key) or not _is_ed25519_key(public_key):
        raise MatrixError("M_INVALID_PARAM", f"The {usage} key must be ed25519:<unpadded base64 public key>")
    if key.get("signatures") is not None and not isinstance(key["signatures"], dict):
        raise MatrixError("M_BAD_JSON", f"The {usage} key's signatures must be an object")
    return public_key


def _is_ed25519_key(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(decode_base64(value)) == 32
    except ValueError:
        return False


def signed_by(obj: dict[str, Any], user_id: str, public_key: str) -> bool:
    try:
        verify_signed_json(obj, user_id, _ED25519 + public_key, decode_base64(public_key))
    except (SignatureError, ValueError):
        return False
    return True


def _signed_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in ("signatures", "unsigned")}


def _signatures_by(obj: dict[str, Any], signer: str) -> dict[str, Any]:
    """{key ID: signature} of one signer in a signed object (empty when malformed)."""
    signatures = obj.get("signatures")
    mine = signatures.get(signer) if isinstance(signatures, dict) else None
    return mine if isinstance(mine, dict) else {}


class _Refused(Exception):
    """One signature of an upload refused; reported in `failures`, the others go on."""

    def __init__(self, errcode: str, error: str) -> None:
        super().__init__(error)
        self.body = {"errcode": errcode, "error": error}


class CrossSigning:
    def __init__(self, keys: KeyService) -> None:
        self.keys = keys
        self.store = keys.store
        #: One cross-signing upload per user at a time, so two first uploads cannot both
        #: go without user-interactive auth.
        self._lock = KeyedLocks()

    async def _stored(self, user_ids: list[str]) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
        """{user: {usage: (public key, key object)}}."""
        stored: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        for user_id, usage, public_key, key_json in await self.store.cross_signing_keys(user_ids):
            stored.setdefault(user_id, {})[usage] = (public_key, orjson.loads(key_json))
        return stored

    async def upload_keys(self, user_id: str, uploaded: dict[str, Any],
                          authenticate: Callable[[], Awaitable[Any]]) -> None:
        """POST /keys/device_signing/upload. `uploaded` is {usage: key object} for the keys
        in the request; `authenticate` runs user-interactive auth, which is skipped when
        the user has no master key yet or when the request repeats the stored keys."""
        async with self._lock(user_id):
            await self._upload_keys(user_id, uploaded, authenticate)

    async def _upload_keys(self, user_id: str, uploaded: dict[str, Any],
                           authenticate: Callable[[], Awaitable[Any]]) -> None:
        public_keys = {usage: public_key_of(key, user_id, usage) for usage, key in uploaded.items()}
        stored = (await self._stored([user_id])).get(user_id, {})
        master = public_keys.get("master") or stored.get("master", (None,))[0]
        if master is None:
            raise MatrixError("M_MISSING_PARAM", "No master signing key is available")
        for usage in ("self_signing", "user_signing"):
            if usage in uploaded and not signed_by(uploaded[usage], user_id, master):
                raise MatrixError("M_INVALID_SIGNATURE", f"The {usage} key must be signed by the master key")
        devices = await self.store.device_ids(user_id)
        if any(public_key in devices for public_key in public_keys.values()):
            raise MatrixError("M_FORBIDDEN", "A cross-signing public key may not be one of your device IDs")
        unchanged = all(stored.get(usage, (None, None))[1] == key for usage, key in uploaded.items())
        if "master" in stored and not ("master" in uploaded and unchanged):
            await authenticate()
        if unchanged:
            return
        await self.store.set_cross_signing_keys(
            user_id, {usage: (public_keys[usage], orjson.dumps(key).decode()) for usage, key in uploaded.items()})
        await self.keys.device_list_changed(user_id)

    async def upload_signatures(self, user_id: str, signed: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """POST /keys/signatures/upload: {user: {key ID: signed object}}. Returns `failures`,
        {user: {key ID: error}}, for every signature not stored."""
        stored = await self._stored(list({user_id, *signed}))
        own = {usage: public_key for usage, (public_key, _) in stored.get(user_id, {}).items()}
        own_devices = {device_id: orjson.loads(key_json)
                       for _, device_id, key_json, _ in await self.store.device_keys([user_id])}
        rows: list[tuple[str, str, str, str, str]] = []
        failures: dict[str, dict[str, Any]] = {}
        for target_user, objects in signed.items():
            for key_id, obj in objects.items():
                try:
                    if not isinstance(obj, dict):
                        raise _Refused("M_BAD_JSON", "The signed key must be an object")
                    if target_user != user_id:
                        target = stored.get(target_user, {}).get("master")
                        rows.append(self._user_signing(user_id, own, target_user, key_id, obj, target))
                    elif key_id == own.get("master"):
                        rows += self._master_by_devices(user_id, obj, stored[user_id]["master"], own_devices)
                    else:
                        rows.append(self._device_by_self_signing(user_id, own, key_id, obj, own_devices.get(key_id)))
                except _Refused as refused:
                    failures.setdefault(target_user, {})[key_id] = refused.body
        if rows:
            await self.store.add_signatures(rows)
            for target_user in sorted({row[0] for row in rows}):
                await self.keys.device_list_changed(target_user)
        return failures

    @staticmethod
    def _check_same_key(obj: dict[str, Any], stored: dict[str, Any] | None) -> None:
        if stored is None:
            raise _Refused("M_NOT_FOUND", "No such key")
        if _signed_part(obj) != _signed_part(stored):
            raise _Refused("M_INVALID_PARAM", "The signed object does not match the stored key")

    @staticmethod
    def _signature(obj: dict[str, Any], signer: str, key_id: str) -> str:
        signature = _signatures_by(obj, signer).get(key_id)
        if not isinstance(signature, str):
            raise _Refused("M_INVALID_SIGNATURE", f"No signature by {key_id}")
        return signature

    @staticmethod
    def _device_by_self_signing(user_id: str, own: dict[str, str], device_id: str, obj: dict[str, Any],
                                device_keys: dict[str, Any] | None) -> tuple[str, str, str, str, str]:
        """One's own device, signed by one's self-signing key."""
        CrossSigning._check_same_key(obj, device_keys)
        ssk = own.get("self_signing")
        if ssk is None:
            raise _Refused("M_INVALID_SIGNATURE", "You have no self-signing key")
        signature = CrossSigning._signature(obj, user_id, _ED25519 + ssk)
        if not signed_by(obj, user_id, ssk):
            raise _Refused("M_INVALID_SIGNATURE", "Invalid signature by the self-signing key")
        return user_id, device_id, user_id, _ED25519 + ssk, signature

    @staticmethod
    def _master_by_devices(user_id: str, obj: dict[str, Any], master: tuple[str, dict[str, Any]],
                           devices: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
        """One's own master key, signed by one or more of one's devices."""
        master_public_key, master_key = master
        CrossSigning._check_same_key(obj, master_key)
        rows = []
        for signer_key, signature in _signatures_by(obj, user_id).items():
            device_id = signer_key.removeprefix(_ED25519)
            device_key = devices.get(device_id, {}).get("keys", {}).get(signer_key)
            if device_key is None or not isinstance(signature, str):
                continue  # the master key's own signature, or no device of the user's
            try:
                verify_signed_json(obj, user_id, signer_key, decode_base64(device_key))
            except (SignatureError, ValueError):
                raise _Refused("M_INVALID_SIGNATURE", f"Invalid signature by {signer_key}") from None
            rows.append((user_id, master_public_key, user_id, signer_key, signature))
        if not rows:
            raise _Refused("M_INVALID_SIGNATURE", "No signature by one of your devices")
        return rows

    @staticmethod
    def _user_signing(user_id: str, own: dict[str, str], target_user: str, key_id: str, obj: dict[str, Any],
                      target: tuple[str, dict[str, Any]] | None) -> tuple[str, str, str, str, str]:
        """Another user's master key, signed by one's user-signing key."""
        if target is None or key_id != target[0]:
            raise _Refused("M_NOT_FOUND", f"{key_id} is not the master key of {target_user}")
        CrossSigning._check_same_key(obj, target[1])
        usk = own.get("user_signing")
        if usk is None:
            raise _Refused("M_INVALID_SIGNATURE", "You have no user-signing key")
        signature = CrossSigning._signature(obj, user_id, _ED25519 + usk)
        if not signed_by(obj, user_id, usk):
            raise _Refused("M_INVALID_SIGNATURE", "Invalid signature by the user-signing key")
        return target_user, target[0], user_id, _ED25519 + usk, signature

