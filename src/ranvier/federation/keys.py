"""Server signing keys: this server's published keys, other servers' keys fetched from them
(or from the notaries in `federation.trusted_key_servers`) and cached with their validity,
old keys kept to verify old events, and the notary service for other servers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from unpaddedbase64 import decode_base64

from ranvier.events.identifiers import domain_of
from ranvier.events.model import MEMBER
from ranvier.events.room_versions import RoomVersion
from ranvier.events.signing import SignatureError, SigningKey, sign_json, verify_event_signature, verify_signed_json
from ranvier.federation.client import FederationClient, FederationError, Unreachable
from ranvier.federation.store import FederationStore, StoredKey

log = logging.getLogger(__name__)

#: How long this server's published key answer is valid for.
OWN_KEYS_VALIDITY_MS = 24 * 3600 * 1000
#: A server whose keys could not be fetched is not asked again for this long.
_REFETCH_AFTER_FAILURE_S = 60.0


def now_ms() -> int:
    return int(time.time() * 1000)


class KeyNotFound(Exception):
    """No usable key of that server is known or could be fetched."""


class ServerKeys:
    def __init__(self, store: FederationStore, client: FederationClient, server_name: str, signing_key: SigningKey,
                 trusted_key_servers: list[str]) -> None:
        self.store = store
        self.client = client
        self.server_name = server_name
        self.signing_key = signing_key
        self.notaries = trusted_key_servers
        self._keys: dict[str, dict[str, StoredKey]] = {}
        self._fetching: dict[str, asyncio.Future] = {}
        self._failed_at: dict[str, float] = {}

    # -- this server's keys ------------------------------------------------------------------

    def own_keys(self) -> dict[str, Any]:
        """GET /_matrix/key/v2/server: the current key, signed by itself."""
        return sign_json({
            "server_name": self.server_name,
            "verify_keys": {self.signing_key.key_id: {"key": self.signing_key.public_key_base64}},
            "old_verify_keys": {},
            "valid_until_ts": now_ms() + OWN_KEYS_VALIDITY_MS,
        }, self.server_name, self.signing_key)

    # -- other servers' keys --------------------------------------------------------------

    async def verify_key(self, server_name: str, key_id: str, *, at_ts: int | None = None) -> bytes:
        """The public key `key_id` of `server_name`, valid at `at_ts` (None: now, for
        requests); fetched when not known or no longer valid."""
        if server_name == self.server_name:
            if key_id != self.signing_key.key_id:
                raise KeyNotFound(f"{key_id} is not a key of this server")
            return bytes(self.signing_key.verify_key)
        keys = await self._known(server_name)
        key = keys.get(key_id)
        moment = at_ts if at_ts is not None else now_ms()
        if key is None or not _valid_at(key, moment):
            refreshed = await self._refresh(server_name)
            key = refreshed.get(key_id, key)
        if key is None:
            raise KeyNotFound(f"{server_name} has no key {key_id}")
        if at_ts is not None and not _valid_at(key, at_ts):
            raise KeyNotFound(f"{server_name}'s key {key_id} was not valid at {at_ts}")
        return decode_base64(key.verify_key)

    async def verify_json(self, obj: dict[str, Any], server_name: str, *, at_ts: int | None = None) -> None:
        """SignatureError unless `obj` carries a valid signature of `server_name`."""
        signatures = obj.get("signatures")
        key_ids = list(signatures.get(server_name, {})) if isinstance(signatures, dict) and isinstance(
            signatures.get(server_name), dict) else []
        for key_id in key_ids:
            if not key_id.startswith("ed25519:"):
                continue
            try:
                verify_signed_json(obj, server_name, key_id, await self.verify_key(server_name, key_id, at_ts=at_ts))
                return
            except (KeyNotFound, SignatureError):
                continue
        raise SignatureError(f"no valid signature of {server_name}")

    async def verify_event(self, pdu: dict[str, Any], version: RoomVersion, event_id: str, *,
                           signing_here: bool = False) -> None:
        """SignatureError unless the event bears the signatures the spec requires: the
        sender's server, the event ID's server (versions 1 and 2) and, for a restricted
        join, the authorising user's server; with keys valid at the event's time (v5+).
        `signing_here`: this server is about to sign it (a restricted join it authorises),
        so its own signature is not asked for."""
        sender = pdu.get("sender")
        servers = {domain_of(sender)} if isinstance(sender, str) else set()
        if version.event_id_has_domain:
            servers.add(domain_of(event_id))
        content = pdu.get("content")
        via = content.get("join_authorised_via_users_server") if isinstance(content, dict) else None
        if (pdu.get("type") == MEMBER and version.restricted_join_rule and isinstance(content, dict)
                and content.get("membership") == "join" and isinstance(via, str)):
            servers.add(domain_of(via))
        servers.discard(None)
        if signing_here:
            servers.discard(self.server_name)
        if not servers:
            raise SignatureError("the event names no server")
        ts = pdu.get("origin_server_ts")
        at_ts = ts if version.enforce_key_validity and isinstance(ts, int) else None
        signatures = pdu.get("signatures")
        for server in servers:
            key_ids = signatures.get(server) if isinstance(signatures, dict) else None
            if not isinstance(key_ids, dict):
                raise SignatureError(f"the event is not signed by {server}")
            for key_id in key_ids:
                try:
                    key = await self.verify_key(server, key_id, at_ts=at_ts) if key_id.startswith("ed25519:") else None
                    if key is None:
                        continue
                    verify_event_signature(pdu, version, server, key_id, key)
                    break
                except (KeyNotFound, SignatureError, ValueError):
                    continue
            else:
                raise SignatureError(f"no valid signature of {server} on the event")

    async def _known(self, server_name: str) -> dict[str, StoredKey]:
        keys = self._keys.get(server_name)
        if keys is None:
            keys = self._keys[server_name] = await self.store.keys_of(server_name)
        return keys

    async def _refresh(self, server_name: str) -> dict[str, StoredKey]:
        """Fetch a server's keys (one fetch at a time per server, not again soon after a failure)."""
        failed = self._failed_at.get(server_name)
        if failed is not None and time.monotonic() - failed < _REFETCH_AFTER_FAILURE_S:
            return await self._known(server_name)
        fetching = self._fetching.get(server_name)
        if fetching is None:
            fetching = self._fetching[server_name] = asyncio.ensure_future(self._fetch(server_name))
            fetching.add_done_callback(lambda _: self._fetching.pop(server_name, None))
        return await asyncio.shield(fetching)

    async def _fetch(self, server_name: str) -> dict[str, StoredKey]:
        responses: list[dict[str, Any]] = []
        try:
            responses = [await self.client.get(server_name, "/_matrix/key/v2/server")]
        except (Unreachable, FederationError) as exc:
            log.info("keys of %s not fetched from it: %s", server_name, exc)
            for notary in self.notaries:
                try:
                    answer = await self.client.post(notary, "/_matrix/key/v2/query",
                                                    {"server_keys": {server_name: {}}})
                except (Unreachable, FederationError) as notary_exc:
                    log.info("keys of %s not fetched from %s: %s", server_name, notary, notary_exc)
                    continue
                for response in answer.get("server_keys", []) if isinstance(answer, dict) else []:
                    if isinstance(response, dict):
                        try:
                            await self.verify_json(response, notary)
                        except SignatureError:
                            continue
                        responses.append(response)
                if responses:
                    break
        fetched: dict[str, StoredKey] = {}
        for response in responses:
            fetched.update(_checked_keys(response, server_name))
        if not fetched:
            self._failed_at[server_name] = time.monotonic()
            return await self._known(server_name)
        self._failed_at.pop(server_name, None)
        await self.store.store_keys(server_name, fetched)
        keys = await self._known(server_name)
        keys.update(fetched)
        return keys

    # -- the notary service ---------------------------------------------------------------

    async def query(self, wanted: dict[str, int]) -> list[dict[str, Any]]:
        """POST /_matrix/key/v2/query: each server's key answer valid until at least the
        given time (fetched again when the cached one is not), countersigned by this server."""
        answers: list[dict[str, Any]] = []
        for server_name, minimum_valid_until in wanted.items():
            if server_name == self.server_name:
                answers.append(self.own_keys())
                continue
            keys = await self._known(server_name)
            if not keys or max(key.valid_until_ts for key in keys.values()) < minimum_valid_until:
                keys = await self._refresh(server_name)
            for key_json in {key.key_json for key in keys.values()}:
                answers.append(sign_json(orjson.loads(key_json), self.server_name, self.signing_key))
        return answers


def _valid_at(key: StoredKey, moment: int) -> bool:
    if key.expired_ts is not None:
        return moment < key.expired_ts
    return moment <= key.valid_until_ts


def _checked_keys(response: dict[str, Any], server_name: str) -> dict[str, StoredKey]:
    """The keys of a key answer that is about `server_name` and signed by each of its own
    current keys; nothing when it is not."""
    if response.get("server_name") != server_name:
        return {}
    verify_keys = response.get("verify_keys")
    valid_until = response.get("valid_until_ts")
    if not isinstance(verify_keys, dict) or not isinstance(valid_until, int) or not verify_keys:
        return {}
    key_json = orjson.dumps(response).decode()
    fetched_ts = now_ms()
    keys: dict[str, StoredKey] = {}
    for key_id, entry in verify_keys.items():
        key = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key, str):
            return {}
        try:
            verify_signed_json(response, server_name, key_id, decode_base64(key))
        except (SignatureError, ValueError):
            return {}
        keys[key_id] = StoredKey(key, valid_until, None, fetched_ts, key_json)
    old_keys = response.get("old_verify_keys")
    if isinstance(old_keys, dict):
        for key_id, entry in old_keys.items():
            if (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and isinstance(entry.get("expired_ts"), int) and key_id not in keys):
                keys[key_id] = StoredKey(entry["key"], entry["expired_ts"], entry["expired_ts"], fetched_ts, key_json)
    return keys

