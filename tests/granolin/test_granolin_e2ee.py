"""The encryption pieces without a server: devices' signatures, rotation rules, a store of another device."""

from __future__ import annotations

from pathlib import Path

import pytest
import vodozemac

from granolin import Client
from granolin.e2ee.devices import Device
from granolin.e2ee.megolm import WEEK_MS, OutboundSession
from granolin.e2ee.olm import OlmAccount, OlmError
from granolin.e2ee.store import CryptoStore

pytestmark = pytest.mark.interop  # vodozemac, an encryption library


def account(tmp_path: Path, user_id: str, device_id: str) -> OlmAccount:
    return OlmAccount(CryptoStore(tmp_path / f"{device_id}.crypto.db"), user_id, device_id)


def test_a_device_is_kept_only_with_its_own_valid_signature(tmp_path: Path) -> None:
    alice = account(tmp_path, "@alice:x", "PHONE")
    keys = alice.device_keys()
    device = Device.from_keys("@alice:x", "PHONE", keys)
    assert device is not None and (device.ed25519, device.curve25519) == (alice.ed25519, alice.curve25519)
    assert Device.from_keys("@alice:x", "LAPTOP", keys) is None  # published under another device ID
    assert Device.from_keys("@mallory:x", "PHONE", keys) is None
    forged = {**keys, "keys": {**keys["keys"], "curve25519:PHONE": account(tmp_path, "@m:x", "M").curve25519}}
    assert Device.from_keys("@alice:x", "PHONE", forged) is None  # the signature no longer covers the keys


def test_olm_messages_reach_only_their_recipient(tmp_path: Path) -> None:
    alice, bob, carol = (account(tmp_path, f"@{n}:x", n.upper()) for n in ("alice", "bob", "carol"))
    one_time = next(iter(bob.one_time_keys(1).values()))
    alice.start_session(bob.curve25519, one_time["key"])
    bob_device = Device.from_keys("@bob:x", "BOB", bob.device_keys())
    assert bob_device is not None
    message = alice.encrypt(bob_device.recipient, "m.room_key", {"room_id": "!r:x"})
    sender_key, payload = bob.decrypt("@alice:x", message)
    assert (sender_key, payload["type"], payload["content"], payload["keys"]["ed25519"]) == (
        alice.curve25519, "m.room_key", {"room_id": "!r:x"}, alice.ed25519)
    with pytest.raises(OlmError, match="another sender"):
        bob.decrypt("@mallory:x", alice.encrypt(bob_device.recipient, "m.dummy", {}))
    with pytest.raises(OlmError, match="not an Olm message for this device"):
        carol.decrypt("@alice:x", message)


def test_rotation_follows_the_rooms_settings() -> None:
    session = OutboundSession("!r:x", vodozemac.GroupSession(), shared_history=True, created_ms=0)
    assert not session.expired({}, now_ms=WEEK_MS - 1) and session.expired({}, now_ms=WEEK_MS)
    assert session.expired({"rotation_period_ms": 1000}, now_ms=1000)
    assert not session.expired({"rotation_period_ms": "soon"}, now_ms=1000)  # malformed: the default
    for _ in range(3):
        session.session.encrypt(b"x")
    assert session.expired({"rotation_period_msgs": 3}, now_ms=0) and not session.expired({"rotation_period_msgs": 4}, now_ms=0)


def test_a_store_of_another_device_is_moved_aside(tmp_path: Path) -> None:
    first = Client("https://hs.example.org", hardcopy=tmp_path / "bot.json")
    first.user_id, first.access_token, first.device_id = "@bot:example.org", "token", "OLD"
    assert first.encryption is not None
    old_keys = first.encryption.identity_keys
    first.encryption.close()

    again = Client("https://hs.example.org", hardcopy=tmp_path / "bot.json")
    again.user_id, again.access_token, again.device_id = "@bot:example.org", "token", "NEW"  # logged in anew
    assert again.encryption is not None and again.encryption.identity_keys != old_keys
    assert (tmp_path / "bot.crypto.db.OLD.old").exists() and (tmp_path / "bot.crypto.db").exists()
