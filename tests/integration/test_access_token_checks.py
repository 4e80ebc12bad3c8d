"""The batched check of cached access tokens (`Tokens._recheck`) against a real database
on both engines: the tokens that exist come back with their account's flags, the others
not at all."""

from __future__ import annotations

from ranvier.users.tokens import hash_token


async def test_many_tokens_are_looked_up_in_one_query(homeserver, api):
    alice, bob = await api.register_all("alice", "bob")
    store = homeserver.users.tokens.store
    status, body = await api.post("/logout", {}, token=bob["access_token"])
    assert status == 200, body
    found = await store.lookup_access_tokens([hash_token(alice["access_token"]), hash_token(bob["access_token"]),
                                              hash_token("never issued")])
    assert list(found) == [hash_token(alice["access_token"])]
    info = found[hash_token(alice["access_token"])]
    assert (info.user_id, info.device_id) == (alice["user_id"], alice["device_id"])
    assert not (info.deactivated or info.locked or info.suspended or info.is_guest)
    assert info == await store.lookup_access_token(hash_token(alice["access_token"])), "as one lookup reads it"
