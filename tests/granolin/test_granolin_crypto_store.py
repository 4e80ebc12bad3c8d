"""The crypto store: private files, authenticated rows, one transaction per change, keys that must match."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from granolin.e2ee.store import CryptoStore, CryptoStoreError, key_path_for, store_path_for


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_beside_the_hardcopy_private_and_read_back_with_its_key_file(tmp_path: Path) -> None:
    path = store_path_for(tmp_path / "bot.hardcopy.json")
    assert path == tmp_path / "bot.hardcopy.crypto.db" and key_path_for(path) == tmp_path / "bot.hardcopy.crypto.key"
    store = CryptoStore(path)
    store.put("olm_account", "", "pickled")
    store.put("devices", "@a:x", {"devices": {}, "outdated": False})
    store.close()
    assert mode(path) == 0o600 and mode(key_path_for(path)) == 0o600

    again = CryptoStore(path)
    assert again.get("olm_account", "") == "pickled" and again.load("devices") == {"@a:x": {"devices": {}, "outdated": False}}
    assert again.get("olm_account", "other") is None


def test_a_wrong_key_or_a_changed_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.crypto.db"
    store = CryptoStore(path, b"k" * 32)
    store.put("trusted_device", "@a:x|DEV", "ed25519-key")
    store.close()
    with pytest.raises(CryptoStoreError, match="does not match its key"):
        CryptoStore(path, b"x" * 32).load("trusted_device")

    with sqlite3.connect(path) as db:
        db.execute("UPDATE items SET value = '\"another-key\"' WHERE kind = 'trusted_device'")
    with pytest.raises(CryptoStoreError, match="does not match its key"):
        CryptoStore(path, b"k" * 32).get("trusted_device", "@a:x|DEV")


def test_a_passphrase_is_stretched_with_a_salt_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.crypto.db"
    first = CryptoStore(path, "correct horse battery staple")
    first.put("meta", "owner", {"user_id": "@bot:x", "device_id": "D"})
    first.close()
    assert not key_path_for(path).exists()
    assert CryptoStore(path, "correct horse battery staple").get("meta", "owner") == {"user_id": "@bot:x", "device_id": "D"}
    with pytest.raises(CryptoStoreError):
        CryptoStore(path, "wrong horse").get("meta", "owner")
    other = CryptoStore(tmp_path / "other.crypto.db", "correct horse battery staple")
    assert other.pickle_key != CryptoStore(path, "correct horse battery staple").pickle_key  # each store its own salt


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    store = CryptoStore(tmp_path / "bot.crypto.db")
    store.put("megolm_outbound", "!r:x", {"index": 1})
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put("megolm_outbound", "!r:x", {"index": 2})
            with store.transaction():  # nested: part of the outer one
                store.put("megolm_inbound", "!r:x|s", {"pickle": "p"})
            raise RuntimeError("crash in the middle")
    assert store.get("megolm_outbound", "!r:x") == {"index": 1} and store.load("megolm_inbound") == {}


def test_a_store_without_its_key_and_short_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.crypto.db"
    CryptoStore(path).close()
    key_path_for(path).unlink()
    with pytest.raises(CryptoStoreError, match="key file"):
        CryptoStore(path)
    with pytest.raises(CryptoStoreError, match="at least 32 bytes"):
        CryptoStore(tmp_path / "short.crypto.db", b"short")
    assert not (tmp_path / "short.crypto.db").exists()
