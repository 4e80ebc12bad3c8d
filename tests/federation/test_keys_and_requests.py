"""Server keys and signed requests between two ranvier servers."""

from __future__ import annotations




async def test_each_server_fetches_and_verifies_the_others_keys(pair):
    a, b = pair
    keys = await a.hs.federation.keys.verify_key(b.name, b.hs.signing_key.key_id)
    assert keys == bytes(b.hs.signing_key.verify_key)
    answer = await a.hs.federation.client.get(b.name, "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "ranvier"
