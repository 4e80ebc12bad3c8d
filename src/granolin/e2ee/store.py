"""The crypto store: the bot's end-to-end encryption state across restarts.

It is an SQLite file beside the hardcopy (``bot.hardcopy.json`` ->
``bot.hardcopy.crypto.db``), created readable by its owner only (0600; SQLite
gives its journal the same mode). Every change is one SQLite transaction
(``synchronous=FULL``), so a crash leaves the state as it was before the change
or after it, never half of it.

What it holds, one row per item: the Olm account (the device's identity keys
and unpublished one-time keys), the Olm sessions with other devices, the Megolm
sessions (inbound and outbound), the cross-signing keys, the published device
keys of the users the bot shares encrypted rooms with, the devices it was told
to trust, and the encrypted events still waiting for their room key.

The secrets among them (every vodozemac object) are pickled by vodozemac,
encrypted and authenticated with the *pickle key*. Every row also carries an
HMAC-SHA256 with the *MAC key*, checked when the store is opened: a row changed
behind the bot's back, or a wrong key, makes opening fail. Both keys are
derived from one secret:

- ``crypto_key`` given to the client: bytes (at least 32, used as they are) or
  a passphrase (a string, stretched with scrypt and a random salt kept in the
  file);
- otherwise a key file beside the store (``bot.hardcopy.crypto.key``): 32
  random bytes, created at the first start, mode 0600. It protects the store
  when the database file alone is copied; keep the key apart (pass
  ``crypto_key`` from a secret manager) to protect it from someone who can read
  the bot's directory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import GranolinError

SECRET_BYTES = 32


class CryptoStoreError(GranolinError):
    """The crypto store cannot be opened: a wrong key, a changed file, or a missing key file."""


def store_path_for(hardcopy: str | os.PathLike[str]) -> Path:
    """Where the crypto store of a hardcopy lives: the same name, ``.crypto.db`` for its suffix."""
    return Path(hardcopy).with_suffix(".crypto.db")


def key_path_for(store: Path) -> Path:
    return store.with_suffix(".key")


def _create_private(path: Path, data: bytes = b"") -> None:
    """Create ``path`` readable by its owner only (and fail if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _key_file_secret(path: Path, store_exists: bool) -> bytes:
    if path.exists():
        secret = base64.b64decode(path.read_bytes().strip())
        if len(secret) < SECRET_BYTES:
            raise CryptoStoreError(f"the crypto key file {path} holds fewer than {SECRET_BYTES} bytes")
        return secret
    if store_exists:
        raise CryptoStoreError(f"the crypto store exists but its key file {path} does not: give crypto_key, or restore the file")
    secret = secrets.token_bytes(SECRET_BYTES)
    _create_private(path, base64.b64encode(secret) + b"\n")
    return secret


class CryptoStore:
    """Rows of JSON by (kind, id), each authenticated, in one SQLite file (or in memory)."""

    def __init__(self, path: Path | None, secret: bytes | str | None = None) -> None:
        self.path = path
        if isinstance(secret, bytes) and len(secret) < SECRET_BYTES:
            raise CryptoStoreError(f"crypto_key must be at least {SECRET_BYTES} bytes (or a passphrase string)")
        exists = path is not None and path.exists()
        if path is None:
            secret = secret if secret is not None else secrets.token_bytes(SECRET_BYTES)
            self._db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            if secret is None:
                secret = _key_file_secret(key_path_for(path), exists)
            if not exists:
                path.parent.mkdir(parents=True, exist_ok=True)
                _create_private(path)
            self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS header (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (kind TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, mac TEXT NOT NULL,"
            " PRIMARY KEY (kind, id))"
        )
        self.pickle_key, self._mac_key = self._derive_keys(secret)
        self._depth = 0

    def _derive_keys(self, secret: bytes | str) -> tuple[bytes, bytes]:
        material = secret
        if isinstance(secret, str):
            row = self._db.execute("SELECT value FROM header WHERE name = 'salt'").fetchone()
            if row is None:
                salt = secrets.token_bytes(16)
                self._db.execute("INSERT INTO header (name, value) VALUES ('salt', ?)", (salt.hex(),))
            else:
                salt = bytes.fromhex(row[0])
            material = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=SECRET_BYTES)
        assert isinstance(material, bytes)
        derive = lambda label: hmac.new(material, label, hashlib.sha256).digest()  # noqa: E731
        return derive(b"granolin crypto store: pickle key"), derive(b"granolin crypto store: MAC key")

    def _mac(self, kind: str, item_id: str, value: str) -> str:
        return hmac.new(self._mac_key, f"{kind}\0{item_id}\0{value}".encode(), hashlib.sha256).hexdigest()

    def load(self, kind: str) -> dict[str, Any]:
        """Every item of ``kind``: id -> value, each checked against its MAC."""
        found: dict[str, Any] = {}
        for item_id, value, mac in self._db.execute("SELECT id, value, mac FROM items WHERE kind = ?", (kind,)):
            found[item_id] = self._checked(kind, item_id, value, mac)
        return found

    def get(self, kind: str, item_id: str) -> Any:
        """One item, or None."""
        row = self._db.execute("SELECT value, mac FROM items WHERE kind = ? AND id = ?", (kind, item_id)).fetchone()
        return None if row is None else self._checked(kind, item_id, row[0], row[1])

    def _checked(self, kind: str, item_id: str, value: str, mac: str) -> Any:
        if not hmac.compare_digest(mac, self._mac(kind, item_id, value)):
            raise CryptoStoreError(f"the crypto store {self.path} does not match its key (a wrong crypto_key, or the file was changed)")
        return json.loads(value)

    def put(self, kind: str, item_id: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        self._db.execute(
            "INSERT INTO items (kind, id, value, mac) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, id) DO UPDATE SET value = excluded.value, mac = excluded.mac",
            (kind, item_id, text, self._mac(kind, item_id, text)),
        )

    def delete(self, kind: str, item_id: str) -> None:
        self._db.execute("DELETE FROM items WHERE kind = ? AND id = ?", (kind, item_id))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes inside into one transaction (nested uses join the outer one)."""
        self._depth += 1
        if self._depth == 1:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
