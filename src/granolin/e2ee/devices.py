"""The devices of the users the bot shares encrypted rooms with, as /keys/query published them.

A user is *tracked* once their keys were queried; /sync's
``device_lists.changed`` marks a tracked user outdated (queried again before
the next key share), ``device_lists.left`` stops tracking them. A device is
kept only when its keys are signed by its own Ed25519 key, and once known, a
device ID keeps its keys: an answer that changes them is ignored (a device
never changes its identity keys; a server that says so is not believed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..transport import log
from .olm import Recipient, signature_is_valid
from .store import CryptoStore


@dataclass(frozen=True, slots=True)
class Device:
    """One device's published keys."""

    user_id: str
    device_id: str
    ed25519: str
    curve25519: str
    keys: dict[str, Any]
    """The device keys object as published (with the signatures the server merged in)."""

    @property
    def display_name(self) -> str | None:
        name = (self.keys.get("unsigned") or {}).get("device_display_name")
        return name if isinstance(name, str) else None

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.user_id, self.device_id, self.curve25519, self.ed25519)

    @classmethod
    def from_keys(cls, user_id: str, device_id: str, keys: Mapping[str, Any]) -> Device | None:
        """The device, when its keys are well-formed, its own and signed by itself; else None."""
        if keys.get("user_id") != user_id or keys.get("device_id") != device_id or not isinstance(keys.get("keys"), dict):
            return None
        ed25519 = keys["keys"].get(f"ed25519:{device_id}")
        curve25519 = keys["keys"].get(f"curve25519:{device_id}")
        if not isinstance(ed25519, str) or not isinstance(curve25519, str):
            return None
        if not signature_is_valid(keys, user_id, f"ed25519:{device_id}", ed25519):
            return None
        return cls(user_id, device_id, ed25519, curve25519, dict(keys))


def cross_signing_key(key: Any, user_id: str, usage: str) -> str | None:
    """The public Ed25519 key of a cross-signing key object of ``user_id`` for ``usage``, or None."""
    if not isinstance(key, dict) or key.get("user_id") != user_id or usage not in (key.get("usage") or []):
        return None
    keys = [value for key_id, value in (key.get("keys") or {}).items() if key_id.startswith("ed25519:") and isinstance(value, str)]
    return keys[0] if len(keys) == 1 else None


class DeviceRegistry:
    """The tracked users' devices and cross-signing keys, and the devices the bot was told to trust."""

    def __init__(self, store: CryptoStore) -> None:
        self.store = store
        self._users: dict[str, dict[str, Any]] = store.load("devices")
        self._devices: dict[str, dict[str, Device]] = {}
        for user_id, row in self._users.items():
            self._devices[user_id] = {}
            for device_id, keys in row["devices"].items():
                device = Device.from_keys(user_id, device_id, keys)
                if device is not None:
                    self._devices[user_id][device_id] = device
        self._trusted: dict[str, str] = store.load("trusted_device")
        self._trusted_masters: dict[str, str] = store.load("trusted_master")

    # --- tracking ---------------------------------------------------------------

    def needing_query(self, user_ids: Iterable[str]) -> list[str]:
        """Those of ``user_ids`` whose devices are unknown or outdated."""
        return sorted({user_id for user_id in user_ids if user_id not in self._users or self._users[user_id]["outdated"]})

    def changed(self, user_ids: Iterable[str]) -> None:
        """/sync said these users' devices changed: look them up again before the next share."""
        for user_id in user_ids:
            row = self._users.get(user_id)
            if row is not None and not row["outdated"]:
                row["outdated"] = True
                self.store.put("devices", user_id, row)

    def left(self, user_ids: Iterable[str]) -> None:
        """/sync said the bot no longer shares a room with these users: stop tracking them."""
        for user_id in user_ids:
            if self._users.pop(user_id, None) is not None:
                self._devices.pop(user_id, None)
                self.store.delete("devices", user_id)

    def apply_query(self, answer: Mapping[str, Any], asked: Iterable[str]) -> None:
        """Take a /keys/query answer for the users ``asked`` (the ones missing from it have no devices)."""
        device_keys = answer.get("device_keys") if isinstance(answer.get("device_keys"), dict) else {}
        failures = answer.get("failures") if isinstance(answer.get("failures"), dict) else {}
        for user_id in asked:
            if user_id.partition(":")[2] in failures:
                continue  # the user's server did not answer: keep what is known, still outdated
            known = self._devices.get(user_id, {})
            devices: dict[str, Device] = {}
            for device_id, keys in (device_keys.get(user_id) or {}).items():
                device = Device.from_keys(user_id, device_id, keys) if isinstance(keys, dict) else None
                if device is None:
                    log.warning("the keys of device %s of %s are malformed or not signed by it: ignored", device_id, user_id)
                    continue
                before = known.get(device_id)
                if before is not None and (before.ed25519, before.curve25519) != (device.ed25519, device.curve25519):
                    log.warning("device %s of %s now shows other identity keys: the ones seen first are kept", device_id, user_id)
                    device = before
                devices[device_id] = device
            row = {
                "devices": {device_id: device.keys for device_id, device in devices.items()},
                "master_key": (answer.get("master_keys") or {}).get(user_id),
                "self_signing_key": (answer.get("self_signing_keys") or {}).get(user_id),
                "outdated": False,
            }
            self._users[user_id] = row
            self._devices[user_id] = devices
            self.store.put("devices", user_id, row)

    # --- reading ----------------------------------------------------------------

    def devices(self, user_id: str) -> list[Device]:
        return list(self._devices.get(user_id, {}).values())

    def device(self, user_id: str, device_id: str) -> Device | None:
        return self._devices.get(user_id, {}).get(device_id)

    def by_curve25519(self, user_id: str, curve25519: str) -> Device | None:
        """The device of ``user_id`` whose identity key is ``curve25519``."""
        return next((d for d in self._devices.get(user_id, {}).values() if d.curve25519 == curve25519), None)

    def master_key(self, user_id: str) -> dict[str, Any] | None:
        row = self._users.get(user_id)
        key = row.get("master_key") if row is not None else None
        return key if isinstance(key, dict) else None

    def published_master_key(self, user_id: str) -> str | None:
        """The public Ed25519 key of the master key ``user_id`` published, or None."""
        return cross_signing_key(self.master_key(user_id), user_id, "master")

    def cross_signed(self, device: Device, master: str) -> bool:
        """Whether ``device`` is signed by its user's self-signing key, itself signed by the master key ``master``."""
        user_id = device.user_id
        if self.published_master_key(user_id) != master:
            return False
        self_signing = self.self_signing_key(user_id)
        public = cross_signing_key(self_signing, user_id, "self_signing")
        return public is not None and self_signing is not None \
            and signature_is_valid(self_signing, user_id, f"ed25519:{master}", master) \
            and signature_is_valid(device.keys, user_id, f"ed25519:{public}", public)

    def self_signing_key(self, user_id: str) -> dict[str, Any] | None:
        row = self._users.get(user_id)
        key = row.get("self_signing_key") if row is not None else None
        return key if isinstance(key, dict) else None

    # --- trust ------------------------------------------------------------------

    def trust(self, device: Device) -> None:
        """Remember that ``device`` (with these very keys) is trusted."""
        self._trusted[f"{device.user_id}|{device.device_id}"] = device.ed25519
        self.store.put("trusted_device", f"{device.user_id}|{device.device_id}", device.ed25519)

    def is_trusted(self, device: Device) -> bool:
        return self._trusted.get(f"{device.user_id}|{device.device_id}") == device.ed25519

    def trust_master(self, user_id: str, master: str) -> None:
        """Remember that ``master`` is ``user_id``'s master key (verified interactively): the devices it cross-signs are trusted."""
        self._trusted_masters[user_id] = master
        self.store.put("trusted_master", user_id, master)

    def trusted_master(self, user_id: str) -> str | None:
        return self._trusted_masters.get(user_id)
