"""End-to-end encryption as Element Web does it: two matrix-js-sdk clients with the SDK's
Rust crypto (tests/js/e2ee_clients.mjs) bootstrap cross-signing through interactive auth,
make key backups, and exchange messages in an encrypted room that each reads decrypted.
This drives every endpoint of the encryption module the way the most used client does:
keys upload, query and claim, signatures upload, to-device messages, device lists in
/sync, and room key backups."""

from __future__ import annotations

import pytest

from tests.js_support import node_with, script_steps

pytestmark = pytest.mark.interop


async def test_element_s_crypto_stack_chats_in_an_encrypted_room(homeserver):
    steps = await script_steps(node_with("matrix-js-sdk"), "e2ee_clients.mjs", homeserver.base_url)
    for name in ("alice", "bob"):
        ready = steps[f"{name} ready"]
        assert ready["crossSigning"] is True and ready["backup"], ready
    for reader, writer in (("bob", "alice"), ("alice", "bob")):
        read = steps[f"{reader} read"]
        assert read["encrypted"] is True and read["failure"] is None
        assert read["sender"] == steps[f"{writer} ready"]["user"]
    assert steps["bob's device"] == {"step": "bob's device", "known": True, "signedByOwner": True}
    assert steps["backup"]["sessions"] >= 1
