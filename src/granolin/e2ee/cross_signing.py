"""Cross-signing: the bot's master key, and its self-signing key that vouches for its devices.

The bot makes both keys, uploads them (``/keys/device_signing/upload``, which
asks for the account's password unless the account had no master key yet),
then signs its own device with the self-signing key. Other clients then see
the bot's device as cross-signed by its owner. A device of the bot's user
signed by this self-signing key is one the bot trusts (it answers its key
requests). No user-signing key is made: the bot does not cross-sign other
users.

The Python bindings of vodozemac expose no bare Ed25519 key pair, so each
cross-signing key is the Ed25519 key of an Olm account of its own, never
published as a device; it is pickled (encrypted) in the crypto store like the
device's account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import vodozemac

from .olm import sign_with, signature_is_valid
from .store import CryptoStore


class CrossSigningKeys:
    """The bot's master and self-signing keys (or none yet), saved in the crypto store."""

    def __init__(self, store: CryptoStore, user_id: str) -> None:
        self.store = store
        self.user_id = user_id
        saved = store.get("cross_signing", "keys")
        self.master: vodozemac.Account | None = None
        self.self_signing: vodozemac.Account | None = None
        self.uploaded = False
        """Whether the server holds these keys (and the device is signed)."""
        if saved:
            self.master = vodozemac.Account.from_pickle(saved["master"], store.pickle_key)
            self.self_signing = vodozemac.Account.from_pickle(saved["self_signing"], store.pickle_key)
            self.uploaded = bool(saved["uploaded"])

    @property
    def master_public(self) -> str | None:
        return self.master.ed25519_key.to_base64() if self.master is not None else None

    @property
    def self_signing_public(self) -> str | None:
        return self.self_signing.ed25519_key.to_base64() if self.self_signing is not None else None

    def generate(self) -> None:
        """New master and self-signing keys (not uploaded yet)."""
        self.master, self.self_signing = vodozemac.Account(), vodozemac.Account()
        self.uploaded = False
        self.save()

    def mark_uploaded(self) -> None:
        self.uploaded = True
        self.save()

    def save(self) -> None:
        assert self.master is not None and self.self_signing is not None
        key = self.store.pickle_key
        self.store.put("cross_signing", "keys", {"master": self.master.pickle(key), "self_signing": self.self_signing.pickle(key),
                                                 "uploaded": self.uploaded})

    def upload_body(self) -> dict[str, Any]:
        """The body of ``/keys/device_signing/upload`` (without ``auth``)."""
        assert self.master is not None and self.self_signing is not None
        master_id = f"ed25519:{self.master_public}"
        master = {"user_id": self.user_id, "usage": ["master"], "keys": {master_id: self.master_public}}
        self_signing: dict[str, Any] = {"user_id": self.user_id, "usage": ["self_signing"],
                                        "keys": {f"ed25519:{self.self_signing_public}": self.self_signing_public}}
        self_signing["signatures"] = {self.user_id: {master_id: sign_with(self.master, self_signing)}}
        return {"master_key": master, "self_signing_key": self_signing}

    def sign_device(self, device_keys: Mapping[str, Any]) -> dict[str, Any]:
        """``device_keys`` with the self-signing key's signature, for ``/keys/signatures/upload``."""
        assert self.self_signing is not None
        signed = {k: v for k, v in device_keys.items() if k != "unsigned"}
        signatures = {user: dict(keys) for user, keys in (device_keys.get("signatures") or {}).items()}
        signatures.setdefault(self.user_id, {})[f"ed25519:{self.self_signing_public}"] = sign_with(self.self_signing, signed)
        return {**signed, "signatures": signatures}

    def signed_device(self, device_keys: Mapping[str, Any]) -> bool:
        """Whether ``device_keys`` (of the bot's user) carry a valid signature of this self-signing key."""
        public = self.self_signing_public
        return public is not None and signature_is_valid(device_keys, self.user_id, f"ed25519:{public}", public)
