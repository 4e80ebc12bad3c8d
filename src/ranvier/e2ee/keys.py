"""Device keys, one-time and fallback keys, and the device-list stream.

A device uploads its identity keys (signed by its own ed25519 key), one-time keys and
fallback keys; others query the identity keys and claim one key per device to start an
Olm session. Each change to a user's devices or keys takes the next position of the
device-list stream and wakes the syncs of everyone sharing a room with them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Protocol

import orjson
from unpaddedbase64 import decode_base64

from ranvier.e2ee.keys_store import KeyStore, OneTimeKey
from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.events.signing import SignatureError, verify_signed_json
from ranvier.notify.notifier import Notifier
from ranvier.notify.streams import StreamPositions

#: The one-time key algorithm clients count on seeing, even at zero (as Synapse does):
#: some clients upload one-time keys only once they have read a count for it.
SIGNED_CURVE25519 = "signed_curve25519"
_COUNTS_CACHED = 10_000
#: Distinct (counts, fallback algorithms) values kept for sharing: most devices report the
#: same few, so the cached counts of thousands of devices point at a handful of objects.
_ALIKE_COUNTS_KEPT = 1_000
#: What `failures` says for a server that could not be asked.
UNREACHABLE = {"status": 503, "message": "That server could not be reached"}


class RemoteKeys(Protocol):
    """Other servers' keys (the federation service, handed over by the server)."""

    async def query_keys(self, server: str, device_keys: dict[str, list[str]]) -> dict[str, Any]: ...

    async def claim_keys(self, server: str, one_time_keys: dict[str, dict[str, str]]) -> dict[str, Any]: ...


def split_key_id(key_id: Any, what: str) -> tuple[str, str]:
    """`<algorithm>:<id>` into its two non-empty parts, or M_INVALID_PARAM."""
    if isinstance(key_id, str):
        algorithm, sep, identifier = key_id.partition(":")
        if sep and algorithm and identifier:
            return algorithm, identifier
    raise MatrixError("M_INVALID_PARAM", f"{what} key IDs must look like <algorithm>:<key ID>, got {key_id!r}")


def parse_one_time_keys(keys: dict[str, Any], what: str) -> list[OneTimeKey]:
    """The keys of an upload: each a string, or a signed object with a `key` string."""
    parsed = []
    for key_id, key in keys.items():
        algorithm, identifier = split_key_id(key_id, what)
        if not (isinstance(key, str) or (isinstance(key, dict) and isinstance(key.get("key"), str))):
            raise MatrixError("M_BAD_JSON", f"{what} key {key_id} must be a string or an object with a key")
        parsed.append((algorithm, identifier, orjson.dumps(key).decode()))
    return parsed


def check_device_keys(device_keys: dict[str, Any], user_id: str, device_id: str) -> str:
    """The device keys as JSON text, once they are shown to be this device's, signed by
    its own ed25519 key."""
    if device_keys.get("user_id") != user_id or device_keys.get("device_id") != device_id:
        raise MatrixError("M_INVALID_PARAM", "device_keys must be for the user and device of the access token")
    algorithms, keys = device_keys.get("algorithms"), device_keys.get("keys")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise MatrixError("M_BAD_JSON", "device_keys.algorithms must be a list of strings")
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise MatrixError("M_BAD_JSON", "device_keys.keys must map key IDs to strings")
    if not isinstance(device_keys.get("signatures"), dict):
        raise MatrixError("M_BAD_JSON", "device_keys.signatures must be an object")
    key_id = f"ed25519:{device_id}"
    try:
        verify_signed_json(device_keys, user_id, key_id, decode_base64(keys.get(key_id, "")))
    except (SignatureError, ValueError):
        raise MatrixError("M_INVALID_SIGNATURE", f"device_keys must be signed by the device's own {key_id} key") from None
    return orjson.dumps(device_keys).decode()


class KeyService:
    def __init__(self, store: KeyStore, notifier: Notifier, server_name: str) -> None:
        self.store = store
        self.notifier = notifier
        self.server_name = server_name
        self.positions = StreamPositions(0)
        self._upload_ids = itertools.count(time.time_ns())
        #: user -> {device: (one-time key counts, unused fallback algorithms)}, what every
        #: /sync reports, so a sync reads no key counts from the database.
        self._counts: OrderedDict[str, dict[str, tuple[dict[str, int], list[str]]]] = OrderedDict()
        #: The values of `_counts`, one object per distinct value (never changed by readers).
        self._alike_counts: dict[tuple, tuple[dict[str, int], list[str]]] = {}
        #: Set by the server when federation is on: other servers' users' keys.
        self.remote: RemoteKeys | None = None
        #: Told of each change of a local user's devices or keys (other servers are sent it):
        #: listener(user_id, stream position, the devices and keys `devices_for_federation` gives).
        self.device_list_listeners: list[Callable[[str, int, dict[str, Any]], Awaitable[None]]] = []

    async def start(self) -> None:
        self.positions = StreamPositions(await self.store.max_device_list_position())

    @property
    def position(self) -> int:
        """The device-list stream's position."""
        return self.positions.current

    # -- uploads and counts ------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, device_keys: dict[str, Any] | None,
                     one_time_keys: dict[str, Any] | None, fallback_keys: dict[str, Any] | None) -> dict[str, int]:
        """POST /keys/upload; returns the device's one-time key counts."""
        device_json = check_device_keys(device_keys, user_id, device_id) if device_keys is not None else None
        one_time = parse_one_time_keys(one_time_keys or {}, "one_time_keys")
        fallback = parse_one_time_keys(fallback_keys or {}, "fallback_keys")
        if len({algorithm for algorithm, _, _ in fallback}) != len(fallback):
            raise MatrixError("M_INVALID_PARAM", "fallback_keys may hold one key per algorithm")
        try:
            changed = await self.store.upload(user_id, device_id, device_json, one_time, fallback, next(self._upload_ids))
        finally:
            self._forget_counts(user_id)
        if changed:
            await self.device_list_changed(user_id)
        counts, _ = await self.key_counts(user_id, device_id)
        return counts

    async def key_counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        """(one-time key counts with signed_curve25519 always present, unused fallback key algorithms)."""
        devices = self._counts.get(user_id)
        cached = devices.get(device_id) if devices is not None else None
        if cached is None:
            counts, fallback = await self.store.key_counts(user_id, device_id)
            cached = self._shared_counts({SIGNED_CURVE25519: 0, **counts}, fallback)
            self._counts.setdefault(user_id, {})[device_id] = cached
            if len(self._counts) > _COUNTS_CACHED:
                self._counts.popitem(last=False)
        self._counts.move_to_end(user_id)
        return cached

    def _shared_counts(self, counts: dict[str, int], fallback: list[str]) -> tuple[dict[str, int], list[str]]:
        alike = (tuple(sorted(counts.items())), tuple(fallback))
        shared = self._alike_counts.get(alike)
        if shared is None:
            shared = (counts, fallback)
            if len(self._alike_counts) < _ALIKE_COUNTS_KEPT:
                self._alike_counts[alike] = shared
        return shared

    def _forget_counts(self, user_id: str) -> None:
        self._counts.pop(user_id, None)

    # -- queries and claims ------------------------------------------------------------------

    async def query(self, requester_id: str, wanted: dict[str, list[str]]) -> dict[str, Any]:
        """POST /keys/query: the identity keys of the listed devices (all of a user's when
        the list is empty) with their display names, and the users' cross-signing keys
        with every signature the requester may see."""
        local = [user_id for user_id in wanted if domain_of(user_id) == self.server_name]
        signatures = self._signatures_by_target(await self.store.signatures(local))
        device_keys: dict[str, dict[str, Any]] = {user_id: {} for user_id in local}
        for user_id, device_id, key_json, display_name in await self.store.device_keys(local):
            if wanted[user_id] and device_id not in wanted[user_id]:
                continue
            device_keys[user_id][device_id] = _answered_device_keys(
                key_json, signatures.get((user_id, device_id), ()), display_name)
        response: dict[str, Any] = {"device_keys": device_keys, "failures": {}, "master_keys": {},
                                    "self_signing_keys": {}, "user_signing_keys": {}}
        for user_id, usage, public_key, key_json in await self.store.cross_signing_keys(local):
            if usage == "user_signing" and user_id != requester_id:
                continue  # only its owner sees a user-signing key
            key = orjson.loads(key_json)
            if usage == "master":
                _merge_signatures(key, [s for s in signatures.get((user_id, public_key), ())
                                        if s[0] in (user_id, requester_id)])
            response[f"{usage}_keys"][user_id] = key
        response["failures"] = await self._ask_servers(
            {user_id: devices for user_id, devices in wanted.items() if user_id not in local}, response,
            lambda server, users: self.remote.query_keys(server, users),
            ("device_keys", "master_keys", "self_signing_keys"))
        return response

    async def _ask_servers(self, wanted: dict[str, Any], response: dict[str, Any], ask,
                           sections: tuple[str, ...]) -> dict[str, Any]:
        """Ask each other server about its users, at once, merging the answers' sections;
        returns the failures (each server that could not be asked)."""
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, value in wanted.items():
            by_server.setdefault(domain_of(user_id), {})[user_id] = value
        if self.remote is None:
            return {server: UNREACHABLE for server in by_server}
        answers = await asyncio.gather(*(ask(server, users) for server, users in by_server.items()),
                                       return_exceptions=True)
        failures: dict[str, Any] = {}
        for (server, users), answer in zip(by_server.items(), answers):
            if not isinstance(answer, dict):
                failures[server] = UNREACHABLE
                continue
            for section in sections:
                values = answer.get(section)
                if isinstance(values, dict):
                    response[section].update({user_id: value for user_id, value in values.items()
                                              if user_id in users and isinstance(value, dict)})
        return failures

    async def devices_for_federation(self, user_id: str) -> dict[str, Any]:
        """A local user's devices with keys, and cross-signing keys (GET /user/devices)."""
        devices = []
        for _, device_id, key_json, display_name in await self.store.device_keys([user_id]):
            device: dict[str, Any] = {"device_id": device_id, "keys": orjson.loads(key_json)}
            if display_name is not None:
                device["device_display_name"] = display_name
            devices.append(device)
        answer: dict[str, Any] = {"user_id": user_id, "stream_id": await self.store.device_list_position(user_id),
                                  "devices": devices}
        for _, usage, _, key_json in await self.store.cross_signing_keys([user_id]):
            if usage in ("master", "self_signing"):
                answer[f"{usage}_key"] = orjson.loads(key_json)
        return answer

    @staticmethod
    def _signatures_by_target(rows) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
        by_target: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for target_user, target_key, signer, signer_key, signature in rows:
            by_target.setdefault((target_user, target_key), []).append((signer, signer_key, signature))
        return by_target

    async def claim(self, wanted: dict[str, dict[str, str]]) -> dict[str, Any]:
        """POST /keys/claim: one key per listed device and algorithm, each one-time key
        handed out once, the device's fallback key when it has none left."""
        local = [(user_id, device_id, algorithm) for user_id, devices in wanted.items()
                 if domain_of(user_id) == self.server_name for device_id, algorithm in devices.items()]
        claimed = await self.store.claim(local)
        one_time_keys: dict[str, dict[str, Any]] = {}
        for (user_id, device_id), (algorithm, key_id, key_json) in claimed.items():
            one_time_keys.setdefault(user_id, {})[device_id] = {f"{algorithm}:{key_id}": orjson.Fragment(key_json)}
        for user_id, _, _ in local:
            self._forget_counts(user_id)
        response = {"one_time_keys": one_time_keys}
        response["failures"] = await self._ask_servers(
            {user_id: devices for user_id, devices in wanted.items() if domain_of(user_id) != self.server_name},
            response, lambda server, users: self.remote.claim_keys(server, users), ("one_time_keys",))
        return response

    # -- the device-list stream ----------------------------------------------------------------

    async def devices_changed(self, user_id: str, removed: bool) -> None:
        """The users service's hook: a device was added, renamed or removed. A removed
        device's keys go with it."""
        if removed:
            await self.store.prune_deleted_devices(user_id)
            self._forget_counts(user_id)
        await self.device_list_changed(user_id)

    async def device_list_changed(self, user_id: str) -> None:
        """Move the user to the head of the device-list stream and wake the syncs of the
        user and of everyone in the user's rooms."""
        position = self.positions.allocate()
        try:
            await self.store.mark_device_list_changed(user_id, position)
        finally:
            self.positions.finish(position)
        rooms = await self.store.joined_rooms(user_id)
        self.notifier.notify([f"user:{user_id}", *(f"room:{room_id}" for room_id in rooms)])
        if self.device_list_listeners and domain_of(user_id) == self.server_name:
            devices = await self.devices_for_federation(user_id)
            for listener in self.device_list_listeners:
                await listener(user_id, position, devices)


def _answered_device_keys(key_json: str, signatures, display_name: str | None) -> dict[str, Any] | orjson.Fragment:
    """A device's keys as /keys/query answers them: as uploaded, with the stored signatures
    of others merged in and the display name in `unsigned`. Most have no signatures beyond
    the device's own, and their stored text (orjson's, so a key is never escaped) has no
    `unsigned` to replace: their answer is that text, with the display name appended,
    rather than a parsed copy; a query of a thousand devices then builds no objects."""
    if not signatures and '"unsigned"' not in key_json:
        if display_name is None:
            return orjson.Fragment(key_json)
        unsigned = orjson.dumps({"device_display_name": display_name}).decode()
        return orjson.Fragment(f'{key_json[:-1]},"unsigned":{unsigned}}}')
    keys = orjson.loads(key_json)
    _merge_signatures(keys, signatures)
    if display_name is not None:
        keys["unsigned"] = {"device_display_name": display_name}
    return keys


def _merge_signatures(key: dict[str, Any], signatures) -> None:
    """Add stored (signer, signer's key ID, signature) to the key's own `signatures`."""
    if not signatures:
        return
    merged = key.get("signatures")
    merged = ({user: dict(keys) for user, keys in merged.items() if isinstance(keys, dict)}
              if isinstance(merged, dict) else {})
    for signer, signer_key, signature in signatures:
        merged.setdefault(signer, {})[signer_key] = signature
    key["signatures"] = merged
