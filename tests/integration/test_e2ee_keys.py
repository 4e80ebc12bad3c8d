"""Device keys, one-time and fallback keys over HTTP: /keys/upload, /keys/query, /keys/claim,
and the key counts of /sync."""

from __future__ import annotations

import asyncio
import json

from e2ee_support import Device, sync


async def upload(api, device: Device, **body) -> tuple[int, dict]:
    return await api.post("/keys/upload", body, token=device.token)


async def test_upload_answers_counts_and_sync_reports_them(api):
    alice = Device.of(await api.register("alice"))
    status, body = await upload(api, alice, device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(5),
                                fallback_keys=alice.fallback_key())
    assert (status, body) == (200, {"one_time_key_counts": {"signed_curve25519": 5}})
    status, body = await upload(api, alice, one_time_keys={"other_alg:k1": "abc"})
    assert body["one_time_key_counts"] == {"signed_curve25519": 5, "other_alg": 1}
    synced = await sync(api, alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 5, "other_alg": 1}
    assert synced["device_unused_fallback_key_types"] == ["signed_curve25519"]


async def test_a_fresh_device_reports_zero_keys_and_no_fallback(api):
    bob = Device.of(await api.register("bob"))
    status, body = await upload(api, bob)
    assert (status, body) == (200, {"one_time_key_counts": {"signed_curve25519": 0}})
    synced = await sync(api, bob.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert synced["device_unused_fallback_key_types"] == []


async def test_device_keys_must_be_the_requesters_own_and_self_signed(api):
    alice = Device.of(await api.register("alice"))
    other = Device(alice.user_id, "SOMEOTHER", alice.token)
    status, body = await upload(api, alice, device_keys=other.device_keys())
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    stranger = Device("@mallory:localhost", alice.device_id, alice.token)
    status, body = await upload(api, alice, device_keys=stranger.device_keys())
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    forged = alice.device_keys()
    forged["keys"][f"curve25519:{alice.device_id}"] = "changedafterSigning"
    status, body = await upload(api, alice, device_keys=forged)
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    unsigned = {**alice.device_keys(), "signatures": {}}
    status, body = await upload(api, alice, device_keys=unsigned)
    assert (status, body["errcode"]) == (400, "M_INVALID_SIGNATURE")
    for bad in ({**alice.device_keys(), "keys": "x"}, {**alice.device_keys(), "algorithms": [1]}, "text"):
        status, body = await upload(api, alice, device_keys=bad)
        assert status == 400 and body["errcode"] == "M_BAD_JSON", (bad, body)

    status, body = await api.post("/keys/query", {"device_keys": {alice.user_id: []}}, token=alice.token)
    assert body["device_keys"] == {alice.user_id: {}}  # nothing refused was stored


async def test_a_reused_one_time_key_id_with_another_key_is_refused_and_nothing_is_stored(api):
    alice = Device.of(await api.register("alice"))
    first = alice.one_time_keys(2)
    await upload(api, alice, one_time_keys=first)
    status, body = await upload(api, alice, one_time_keys=first)  # the same keys again: harmless
    assert (status, body["one_time_key_counts"]) == (200, {"signed_curve25519": 2})
    key_id = next(iter(first))
    clash = {key_id: alice.sign({"key": "somethingelse"}), **alice.one_time_keys(3)}
    status, body = await upload(api, alice, one_time_keys=clash, device_keys=alice.device_keys())
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await upload(api, alice)
    assert body["one_time_key_counts"] == {"signed_curve25519": 2}
    status, body = await api.post("/keys/query", {"device_keys": {alice.user_id: []}}, token=alice.token)
    assert body["device_keys"][alice.user_id] == {}


async def test_malformed_key_uploads_are_refused(api):
    alice = Device.of(await api.register("alice"))
    cases = [
        ({"one_time_keys": {"nocolon": "k"}}, 400, "M_INVALID_PARAM"),
        ({"one_time_keys": {":k": "k"}}, 400, "M_INVALID_PARAM"),
        ({"one_time_keys": {"signed_curve25519:\u0000": "k"}}, 400, "M_INVALID_PARAM"),
        ({"one_time_keys": {"signed_curve25519:a": 5}}, 400, "M_BAD_JSON"),
        ({"one_time_keys": {"signed_curve25519:a": {"nokey": 1}}}, 400, "M_BAD_JSON"),
        ({"one_time_keys": []}, 400, "M_BAD_JSON"),
        ({"fallback_keys": {"signed_curve25519:a": "k", "signed_curve25519:b": "l"}}, 400, "M_INVALID_PARAM"),
        ({"fallback_keys": "k"}, 400, "M_BAD_JSON"),
    ]
    for body, status, errcode in cases:
        got_status, got = await upload(api, alice, **body)
        assert (got_status, got.get("errcode")) == (status, errcode), (body, got)
    status, body = await api.post("/keys/upload", {}, token=None)
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.request("POST", "/keys/upload", data=b"[1]", token=alice.token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_query_returns_devices_with_display_names(api):
    alice = Device.of(await api.register("alice", initial_device_display_name="Alice's phone"))
    await upload(api, alice, device_keys=alice.device_keys())
    status, login = await api.post("/login", {"type": "m.login.password", "password": "correct horse",
                                              "identifier": {"type": "m.id.user", "user": "alice"}})
    laptop = Device(alice.user_id, login["device_id"], login["access_token"])
    await upload(api, laptop, device_keys=laptop.device_keys())
    bob = Device.of(await api.register("bob"))

    status, body = await api.post("/keys/query", {"device_keys": {alice.user_id: []}, "timeout": 10000},
                                  token=bob.token)
    assert status == 200
    devices = body["device_keys"][alice.user_id]
    assert set(devices) == {alice.device_id, laptop.device_id}
    phone = devices[alice.device_id]
    assert phone["unsigned"] == {"device_display_name": "Alice's phone"}
    assert {k: v for k, v in phone.items() if k != "unsigned"} == alice.device_keys()
    assert "unsigned" not in devices[laptop.device_id] or "device_display_name" not in devices[laptop.device_id]["unsigned"]
    assert body["failures"] == {}

    status, body = await api.post("/keys/query", {"device_keys": {alice.user_id: [laptop.device_id, "NOSUCH"],
                                                                  "@nobody:localhost": [],
                                                                  "@carol:elsewhere.example": []}}, token=bob.token)
    assert list(body["device_keys"][alice.user_id]) == [laptop.device_id]
    assert body["device_keys"].get("@nobody:localhost", {}) == {}
    assert "@carol:elsewhere.example" not in body["device_keys"]
    assert list(body["failures"]) == ["elsewhere.example"]


def _without_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key repeated in {keys}"
    return dict(pairs)


async def test_query_names_each_device_once_whatever_its_upload_carried(api):
    """The answer's `unsigned` is the server's: an uploaded one is replaced, not repeated,
    and a display name needing escapes stays intact."""
    name = 'Ali "the" \\ phone \u2713\n'
    alice = Device.of(await api.register("alice", initial_device_display_name=name))
    uploaded = {**alice.device_keys(), "unsigned": {"custom": 1, "device_display_name": "spoofed"}}
    await upload(api, alice, device_keys=uploaded)
    bob = Device.of(await api.register("bob"))
    await upload(api, bob, device_keys={**bob.device_keys(), "unsigned": {"custom": 2}})
    carol = Device.of(await api.register("carol"))
    async with api.session.post(f"{api.base_url}/_matrix/client/v3/keys/query",
                                json={"device_keys": {alice.user_id: [], bob.user_id: []}},
                                headers={"Authorization": f"Bearer {carol.token}"}) as response:
        assert response.status == 200
        raw = json.loads(await response.read(), object_pairs_hook=_without_repeated_keys)
    phone = raw["device_keys"][alice.user_id][alice.device_id]
    assert phone["unsigned"] == {"device_display_name": name}
    assert {k: v for k, v in phone.items() if k != "unsigned"} == alice.device_keys()
    assert raw["device_keys"][bob.user_id][bob.device_id]["unsigned"] == {"custom": 2}


async def test_malformed_queries_and_claims_are_refused(api):
    alice = Device.of(await api.register("alice"))
    cases = [
        ("/keys/query", {}, "M_MISSING_PARAM"),
        ("/keys/query", {"device_keys": []}, "M_BAD_JSON"),
        ("/keys/query", {"device_keys": {"notauser": []}}, "M_INVALID_PARAM"),
        ("/keys/query", {"device_keys": {alice.user_id: "DEVICE"}}, "M_BAD_JSON"),
        ("/keys/query", {"device_keys": {alice.user_id: [5]}}, "M_BAD_JSON"),
        ("/keys/query", {"device_keys": {alice.user_id: []}, "timeout": "soon"}, "M_BAD_JSON"),
        ("/keys/claim", {}, "M_MISSING_PARAM"),
        ("/keys/claim", {"one_time_keys": {alice.user_id: ["DEVICE"]}}, "M_BAD_JSON"),
        ("/keys/claim", {"one_time_keys": {alice.user_id: {"DEVICE": 5}}}, "M_BAD_JSON"),
        ("/keys/claim", {"one_time_keys": {alice.user_id: {"DEVICE": ""}}}, "M_BAD_JSON"),
        ("/keys/claim", {"one_time_keys": {"@\u0000:localhost": {"D": "signed_curve25519"}}}, "M_INVALID_PARAM"),
    ]
    for path, body, errcode in cases:
        status, got = await api.post(path, body, token=alice.token)
        assert (status, got.get("errcode")) == (400, errcode), (path, body, got)


async def test_claim_hands_out_one_time_keys_oldest_first_then_the_fallback_key(api):
    alice = Device.of(await api.register("alice"))
    bob = Device.of(await api.register("bob"))
    first, second = alice.one_time_keys(1), alice.one_time_keys(1)
    await upload(api, alice, one_time_keys=first)
    await upload(api, alice, one_time_keys=second)
    fallback = alice.fallback_key()
    await upload(api, alice, fallback_keys=fallback)
    wanted = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

    claimed = []
    for _ in range(4):
        status, body = await api.post("/keys/claim", wanted, token=bob.token)
        assert status == 200 and body["failures"] == {}
        claimed.append(body["one_time_keys"][alice.user_id][alice.device_id])
    assert claimed[:2] == [first, second]
    assert claimed[2] == claimed[3] == fallback  # the fallback key is handed out again and again

    synced = await sync(api, alice.token)
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert synced["device_unused_fallback_key_types"] == []  # used: time to replace it
    await upload(api, alice, fallback_keys=fallback)  # the same one again does not make it unused
    assert (await sync(api, alice.token))["device_unused_fallback_key_types"] == []
    await upload(api, alice, fallback_keys=alice.fallback_key())
    assert (await sync(api, alice.token))["device_unused_fallback_key_types"] == ["signed_curve25519"]


async def test_claims_of_devices_without_keys_and_of_other_servers(api):
    alice = Device.of(await api.register("alice"))
    status, body = await api.post("/keys/claim", {"one_time_keys": {
        alice.user_id: {alice.device_id: "signed_curve25519", "NOSUCH": "signed_curve25519"},
        "@someone:elsewhere.example": {"DEV": "signed_curve25519"},
    }}, token=alice.token)
    assert status == 200
    assert body["one_time_keys"] == {}
    assert list(body["failures"]) == ["elsewhere.example"]


async def test_fifty_concurrent_claims_never_share_a_key(api):
    alice = Device.of(await api.register("alice"))
    one_time, fallback = alice.one_time_keys(40), alice.fallback_key()
    await upload(api, alice, one_time_keys=one_time, fallback_keys=fallback)
    claimers = [Device.of(await api.register(f"claimer{i}")) for i in range(5)]
    wanted = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}

    async def claim(i: int) -> str:
        status, body = await api.post("/keys/claim", wanted, token=claimers[i % 5].token)
        assert status == 200, body
        (key_id,) = body["one_time_keys"][alice.user_id][alice.device_id]
        return key_id

    key_ids = await asyncio.gather(*(claim(i) for i in range(50)))
    (fallback_id,) = fallback
    assert key_ids.count(fallback_id) == 10
    assert sorted(k for k in key_ids if k != fallback_id) == sorted(one_time)  # each exactly once
    status, body = await upload(api, alice)
    assert body["one_time_key_counts"] == {"signed_curve25519": 0}


async def test_a_deleted_device_loses_its_keys(api):
    alice = Device.of(await api.register("alice"))
    status, login = await api.post("/login", {"type": "m.login.password", "password": "correct horse",
                                              "identifier": {"type": "m.id.user", "user": "alice"}})
    laptop = Device(alice.user_id, login["device_id"], login["access_token"])
    await upload(api, laptop, device_keys=laptop.device_keys(), one_time_keys=laptop.one_time_keys(3))
    status, _ = await api.post("/logout", {}, token=laptop.token)
    assert status == 200
    status, body = await api.post("/keys/query", {"device_keys": {alice.user_id: []}}, token=alice.token)
    assert body["device_keys"][alice.user_id] == {}
    status, body = await api.post("/keys/claim", {"one_time_keys": {alice.user_id: {laptop.device_id: "signed_curve25519"}}},
                                  token=alice.token)
    assert body["one_time_keys"] == {}
