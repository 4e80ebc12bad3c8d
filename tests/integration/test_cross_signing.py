"""Cross-signing over HTTP: /keys/device_signing/upload and /keys/signatures/upload, and
what /keys/query shows of them to whom."""

from __future__ import annotations

import copy

from e2ee_support import CrossSigningKeys, Device, public_key

PASSWORD_AUTH = {"type": "m.login.password", "password": "correct horse"}


async def upload_cross_signing(api, device: Device, body: dict) -> tuple[int, dict]:
    return await api.post("/keys/device_signing/upload", body, token=device.token)


async def query(api, device: Device, *users: str) -> dict:
    status, body = await api.post("/keys/query", {"device_keys": {u: [] for u in users}}, token=device.token)
    assert status == 200, body
    return body


async def with_password(api, device: Device, body: dict, localpart: str) -> tuple[int, dict]:
    status, challenge = await upload_cross_signing(api, device, body)
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}], challenge
    auth = {**PASSWORD_AUTH, "session": challenge["session"], "identifier": {"type": "m.id.user", "user": localpart}}
    return await upload_cross_signing(api, device, {**body, "auth": auth})


async def test_first_upload_needs_no_auth_a_repeat_neither_a_change_does(api):
    alice = Device.of(await api.register("alice"))
    keys = CrossSigningKeys(alice.user_id)
    assert await upload_cross_signing(api, alice, keys.upload_body()) == (200, {})
    assert await upload_cross_signing(api, alice, keys.upload_body()) == (200, {})  # the same again

    replacement = CrossSigningKeys(alice.user_id)
    status, body = await with_password(api, alice, replacement.upload_body(), "alice")
    assert (status, body) == (200, {})
    shown = await query(api, alice, alice.user_id)
    assert shown["master_keys"][alice.user_id]["keys"] == {f"ed25519:{replacement.master_public}": replacement.master_public}

    # a new self-signing key alone, signed by the stored master key, also needs auth
    newer = CrossSigningKeys(alice.user_id)
    newer.master = replacement.master
    body = {"self_signing_key": newer.upload_body()["self_signing_key"]}
    status, result = await with_password(api, alice, body, "alice")
    assert (status, result) == (200, {})


async def test_cross_signing_keys_are_checked(api):
    alice = Device.of(await api.register("alice"))
    keys = CrossSigningKeys(alice.user_id)
    good = keys.upload_body()
    status, body = await upload_cross_signing(api, alice, {"self_signing_key": good["self_signing_key"]})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")  # no master key anywhere

    forged = copy.deepcopy(good)
    forged["self_signing_key"]["usage"] = ["self_signing", "extra"]
    status, body = await upload_cross_signing(api, alice, forged)
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    unsigned = copy.deepcopy(good)
    del unsigned["user_signing_key"]["signatures"]
    status, body = await upload_cross_signing(api, alice, unsigned)
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")

    for broken in ({**good["master_key"], "user_id": "@bob:localhost"}, {**good["master_key"], "usage": ["user_signing"]},
                   {**good["master_key"], "keys": {"ed25519:abc": "abc"}}, {**good["master_key"], "keys": {}}):
        status, body = await upload_cross_signing(api, alice, {**good, "master_key": broken})
        assert status == 400 and body["errcode"] == "M_INVALID_PARAM", (broken, body)
    status, body = await upload_cross_signing(api, alice, {**good, "master_key": "text"})
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    assert (await query(api, alice, alice.user_id))["master_keys"] == {}  # nothing refused was stored


async def test_a_public_key_may_not_be_a_device_id(api):
    keys = CrossSigningKeys("@alice:localhost")
    registered = await api.register("alice", device_id=keys.master_public)
    status, body = await upload_cross_signing(api, Device.of(registered), keys.upload_body())
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_query_shows_the_user_signing_key_to_its_owner_only(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    keys = CrossSigningKeys(alice.user_id)
    await upload_cross_signing(api, alice, keys.upload_body())
    own = await query(api, alice, alice.user_id)
    seen = await query(api, bob, alice.user_id)
    assert own["master_keys"] == seen["master_keys"] == {alice.user_id: keys.upload_body()["master_key"]}
    assert own["self_signing_keys"] == seen["self_signing_keys"]
    assert own["self_signing_keys"][alice.user_id] == keys.upload_body()["self_signing_key"]
    assert own["user_signing_keys"] == {alice.user_id: keys.upload_body()["user_signing_key"]}
    assert seen["user_signing_keys"] == {}


async def test_signatures_of_own_devices_own_master_key_and_others_master_keys(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    for device in (alice, bob):
        await api.post("/keys/upload", {"device_keys": device.device_keys()}, token=device.token)
    alice_keys, bob_keys = CrossSigningKeys(alice.user_id), CrossSigningKeys(bob.user_id)
    await upload_cross_signing(api, alice, alice_keys.upload_body())
    await upload_cross_signing(api, bob, bob_keys.upload_body())
    ssk_id = f"ed25519:{public_key(alice_keys.self_signing)}"
    usk_id = f"ed25519:{public_key(alice_keys.user_signing)}"

    device_signed = CrossSigningKeys.sign_with(alice.device_keys(), alice.user_id, alice_keys.self_signing)
    master_signed = alice.sign(alice_keys.upload_body()["master_key"])
    bob_master_signed = CrossSigningKeys.sign_with(bob_keys.upload_body()["master_key"], alice.user_id,
                                                   alice_keys.user_signing)
    status, body = await api.post("/keys/signatures/upload", {
        alice.user_id: {alice.device_id: device_signed, alice_keys.master_public: master_signed},
        bob.user_id: {bob_keys.master_public: bob_master_signed},
    }, token=alice.token)
    assert (status, body) == (200, {"failures": {}})

    by_alice = await query(api, alice, alice.user_id, bob.user_id)
    by_bob = await query(api, bob, alice.user_id, bob.user_id)
    for view in (by_alice, by_bob):
        device = view["device_keys"][alice.user_id][alice.device_id]
        assert device["signatures"][alice.user_id][ssk_id] == device_signed["signatures"][alice.user_id][ssk_id]
        master = view["master_keys"][alice.user_id]
        assert master["signatures"][alice.user_id][f"ed25519:{alice.device_id}"] == \
            master_signed["signatures"][alice.user_id][f"ed25519:{alice.device_id}"]
    # a user-signing key's signatures are seen by their signer only
    assert by_alice["master_keys"][bob.user_id]["signatures"][alice.user_id][usk_id] == \
        bob_master_signed["signatures"][alice.user_id][usk_id]
    assert alice.user_id not in by_bob["master_keys"][bob.user_id].get("signatures", {})


async def test_invalid_signatures_are_reported_per_key_and_never_stored(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    await api.post("/keys/upload", {"device_keys": alice.device_keys()}, token=alice.token)
    alice_keys, bob_keys = CrossSigningKeys(alice.user_id), CrossSigningKeys(bob.user_id)
    await upload_cross_signing(api, alice, alice_keys.upload_body())
    await upload_cross_signing(api, bob, bob_keys.upload_body())

    wrong_signer = CrossSigningKeys.sign_with(alice.device_keys(), alice.user_id, alice_keys.user_signing)
    tampered = CrossSigningKeys.sign_with(alice.device_keys(), alice.user_id, alice_keys.self_signing)
    tampered["keys"][f"curve25519:{alice.device_id}"] = "notthestoredkey"
    ssk_id = f"ed25519:{public_key(alice_keys.self_signing)}"
    bad_signature = CrossSigningKeys.sign_with(alice.device_keys(), alice.user_id, alice_keys.self_signing)
    bad_signature["signatures"][alice.user_id][ssk_id] = bad_signature["signatures"][alice.user_id][ssk_id][::-1]
    bob_by_ssk = CrossSigningKeys.sign_with(bob_keys.upload_body()["master_key"], alice.user_id, alice_keys.self_signing)

    for body, user_id, key_id, errcode in [
        ({alice.user_id: {alice.device_id: wrong_signer}}, alice.user_id, alice.device_id, "M_INVALID_SIGNATURE"),
        ({alice.user_id: {alice.device_id: tampered}}, alice.user_id, alice.device_id, "M_INVALID_PARAM"),
        ({alice.user_id: {alice.device_id: bad_signature}}, alice.user_id, alice.device_id, "M_INVALID_SIGNATURE"),
        ({alice.user_id: {"NOSUCHDEVICE": alice.device_keys()}}, alice.user_id, "NOSUCHDEVICE", "M_NOT_FOUND"),
        ({alice.user_id: {alice.device_id: "text"}}, alice.user_id, alice.device_id, "M_BAD_JSON"),
        ({bob.user_id: {bob_keys.master_public: bob_by_ssk}}, bob.user_id, bob_keys.master_public, "M_INVALID_SIGNATURE"),
        ({bob.user_id: {"notbobsmaster": bob_by_ssk}}, bob.user_id, "notbobsmaster", "M_NOT_FOUND"),
    ]:
        status, result = await api.post("/keys/signatures/upload", body, token=alice.token)
        assert status == 200
        assert result["failures"][user_id][key_id]["errcode"] == errcode, (body, result)

    view = await query(api, bob, alice.user_id, bob.user_id)
    assert list(view["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]) == \
        [f"ed25519:{alice.device_id}"]
    assert "signatures" not in view["master_keys"][bob.user_id]
    status, result = await api.post("/keys/signatures/upload", {"notauser": {}}, token=alice.token)
    assert (status, result["errcode"]) == (400, "M_INVALID_PARAM")
    status, result = await api.post("/keys/signatures/upload", {alice.user_id: []}, token=alice.token)
    assert (status, result["errcode"]) == (400, "M_BAD_JSON")


async def test_new_cross_signing_keys_and_signatures_are_device_list_changes(api):
    alice, bob = [Device.of(r) for r in await api.register_all("alice", "bob")]
    room = await api.create_room(alice.token, preset="public_chat")
    await api.post(f"/join/{room}", {}, token=bob.token)
    status, first = await api.get("/sync", token=bob.token, params={"timeout": "0"})
    await upload_cross_signing(api, alice, CrossSigningKeys(alice.user_id).upload_body())
    status, later = await api.get("/sync", token=bob.token, params={"timeout": "0", "since": first["next_batch"]})
    assert later["device_lists"]["changed"] == [alice.user_id]


async def test_signatures_merge_into_keys_whatever_else_they_were_signed_with(api):
    alice = Device.of(await api.register("alice"))
    own = alice.device_keys()
    signed = {**own, "signatures": {**own["signatures"], "@someone:localhost": "not an object"}}
    status, _ = await api.post("/keys/upload", {"device_keys": signed}, token=alice.token)
    assert status == 200
    keys = CrossSigningKeys(alice.user_id)
    await upload_cross_signing(api, alice, keys.upload_body())
    by_ssk = CrossSigningKeys.sign_with(signed, alice.user_id, keys.self_signing)
    status, body = await api.post("/keys/signatures/upload", {alice.user_id: {alice.device_id: by_ssk}},
                                  token=alice.token)
    assert (status, body) == (200, {"failures": {}})
    device = (await query(api, alice, alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    assert set(device["signatures"][alice.user_id]) == {f"ed25519:{alice.device_id}",
                                                        f"ed25519:{public_key(keys.self_signing)}"}
