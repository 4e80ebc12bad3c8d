"""Server-side key backups over HTTP: /room_keys/version and /room_keys/keys."""

from __future__ import annotations

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:localhost"


def key(first_message_index=0, forwarded_count=0, is_verified=False, data="x") -> dict:
    return {"first_message_index": first_message_index, "forwarded_count": forwarded_count,
            "is_verified": is_verified, "session_data": {"ciphertext": data, "mac": "m", "ephemeral": "e"}}


async def create(api, token: str, auth_data=None) -> str:
    status, body = await api.post("/room_keys/version", {"algorithm": ALGORITHM,
                                                         "auth_data": auth_data or {"public_key": "abc"}}, token=token)
    assert status == 200, body
    return body["version"]


async def test_versions_are_created_read_updated_and_deleted(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    status, body = await api.get("/room_keys/version", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    first = await create(api, token)
    status, body = await api.get("/room_keys/version", token=token)
    assert status == 200
    assert body == {"algorithm": ALGORITHM, "auth_data": {"public_key": "abc"}, "count": 0, "etag": body["etag"],
                    "version": first}
    assert isinstance(body["etag"], str)
    second = await create(api, token, {"public_key": "def"})
    assert int(second) > int(first)
    assert (await api.get("/room_keys/version", token=token))[1]["version"] == second
    assert (await api.get(f"/room_keys/version/{first}", token=token))[1]["auth_data"] == {"public_key": "abc"}

    status, _ = await api.put(f"/room_keys/version/{second}", {"algorithm": ALGORITHM, "auth_data": {"public_key": "ghi"},
                                                               "version": second}, token=token)
    assert status == 200
    assert (await api.get(f"/room_keys/version/{second}", token=token))[1]["auth_data"] == {"public_key": "ghi"}
    for body, errcode in [({"algorithm": "m.other", "auth_data": {}}, "M_INVALID_PARAM"),
                          ({"algorithm": ALGORITHM, "auth_data": {}, "version": first}, "M_INVALID_PARAM"),
                          ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
                          ({"algorithm": ALGORITHM, "auth_data": []}, "M_BAD_JSON")]:
        status, got = await api.put(f"/room_keys/version/{second}", body, token=token)
        assert (status, got["errcode"]) == (400, errcode), (body, got)
    status, got = await api.put("/room_keys/version/999", {"algorithm": ALGORITHM, "auth_data": {}}, token=token)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")

    assert (await api.delete(f"/room_keys/version/{second}", token=token))[0] == 200
    assert (await api.delete(f"/room_keys/version/{second}", token=token))[0] == 200  # again: fine
    assert (await api.get(f"/room_keys/version/{second}", token=token))[0] == 404
    assert (await api.get("/room_keys/version", token=token))[1]["version"] == first
    for version in ("999", "abc", "\u00b2"):
        status, got = await api.delete(f"/room_keys/version/{version}", token=token)
        assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
        assert (await api.get(f"/room_keys/version/{version}", token=token))[0] == 404
    third = await create(api, token)
    assert int(third) > int(second)  # never reused


async def test_creating_needs_the_known_algorithm_and_auth_data(api):
    (alice,) = await api.register_all("alice")
    for body, errcode in [({"algorithm": "m.other", "auth_data": {}}, "M_INVALID_PARAM"),
                          ({"auth_data": {}}, "M_MISSING_PARAM"), ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
                          ({"algorithm": 5, "auth_data": {}}, "M_BAD_JSON"),
                          ({"algorithm": ALGORITHM, "auth_data": "x"}, "M_BAD_JSON")]:
        status, got = await api.post("/room_keys/version", body, token=alice["access_token"])
        assert (status, got["errcode"]) == (400, errcode), (body, got)


async def test_keys_are_stored_read_and_deleted_with_etag_and_count(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    version = await create(api, token)
    params = {"version": version}
    status, body = await api.put(f"/room_keys/keys/{ROOM}/s1", key(), token=token, params=params)
    assert status == 200 and body["count"] == 1
    etags = [body["etag"]]
    status, body = await api.put(f"/room_keys/keys/{ROOM}", {"sessions": {"s2": key(), "s3": key()}}, token=token,
                                 params=params)
    assert body["count"] == 3
    etags.append(body["etag"])
    status, body = await api.put("/room_keys/keys", {"rooms": {"!other:localhost": {"sessions": {"s4": key()}}}},
                                 token=token, params=params)
    assert body["count"] == 4
    etags.append(body["etag"])
    assert len(set(etags)) == 3

    status, body = await api.get("/room_keys/keys", token=token, params=params)
    assert set(body["rooms"]) == {ROOM, "!other:localhost"}
    assert set(body["rooms"][ROOM]["sessions"]) == {"s1", "s2", "s3"}
    assert (await api.get(f"/room_keys/keys/{ROOM}/s2", token=token, params=params))[1] == key()
    assert (await api.get("/room_keys/keys/!empty:localhost", token=token, params=params))[1] == {"sessions": {}}
    status, got = await api.get(f"/room_keys/keys/{ROOM}/nosuch", token=token, params=params)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    current = (await api.get("/room_keys/version", token=token))[1]
    assert (current["count"], current["etag"]) == (4, etags[-1])

    status, body = await api.delete(f"/room_keys/keys/{ROOM}/s1", token=token, params=params)
    assert body["count"] == 3 and body["etag"] not in etags
    etags.append(body["etag"])
    status, body = await api.delete(f"/room_keys/keys/{ROOM}", token=token, params=params)
    assert body["count"] == 1 and body["etag"] not in etags
    status, body = await api.delete("/room_keys/keys", token=token, params=params)
    assert body["count"] == 0
    assert (await api.get("/room_keys/keys", token=token, params=params))[1] == {"rooms": {}}


async def test_a_stored_key_is_replaced_only_by_a_better_one(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    params = {"version": await create(api, token)}
    path = f"/room_keys/keys/{ROOM}/s1"

    async def put(data) -> str:
        status, body = await api.put(path, data, token=token, params=params)
        assert status == 200, body
        return body["etag"]

    async def stored() -> dict:
        return (await api.get(path, token=token, params=params))[1]

    etag = await put(key(first_message_index=5, forwarded_count=2, data="a"))
    for worse in (key(first_message_index=6, forwarded_count=0, data="b"),
                  key(first_message_index=5, forwarded_count=3, data="c"),
                  key(first_message_index=5, forwarded_count=2, data="tie")):
        assert await put(worse) == etag  # nothing changed, nor did the etag
        assert (await stored())["session_data"]["ciphertext"] == "a"
    assert await put(key(first_message_index=5, forwarded_count=1, data="d")) != etag
    assert (await stored())["session_data"]["ciphertext"] == "d"
    await put(key(first_message_index=0, forwarded_count=9, data="e"))
    assert (await stored())["session_data"]["ciphertext"] == "e"
    await put(key(first_message_index=9, forwarded_count=9, is_verified=True, data="f"))
    assert (await stored())["session_data"]["ciphertext"] == "f"  # verified beats everything
    await put(key(first_message_index=0, forwarded_count=0, is_verified=False, data="g"))
    assert (await stored())["session_data"]["ciphertext"] == "f"
    assert (await api.get("/room_keys/version", token=token))[1]["count"] == 1


async def test_keys_go_to_the_current_version_only(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    status, got = await api.put(f"/room_keys/keys/{ROOM}/s1", key(), token=token, params={"version": "1"})
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")  # no backup at all
    old = await create(api, token)
    current = await create(api, token)
    for path, body in [(f"/room_keys/keys/{ROOM}/s1", key()), (f"/room_keys/keys/{ROOM}", {"sessions": {"s1": key()}}),
                       ("/room_keys/keys", {"rooms": {ROOM: {"sessions": {"s1": key()}}}})]:
        for version in (old, "999", "x"):
            status, got = await api.put(path, body, token=token, params={"version": version})
            assert (status, got["errcode"], got.get("current_version")) == (403, "M_WRONG_ROOM_KEYS_VERSION", current)
    status, got = await api.get("/room_keys/keys", token=token, params={"version": "999"})
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    status, got = await api.delete("/room_keys/keys", token=token, params={"version": "999"})
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    assert (await api.get("/room_keys/keys", token=token, params={"version": old}))[1] == {"rooms": {}}


async def test_malformed_key_uploads_are_refused(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    params = {"version": await create(api, token)}
    status, got = await api.put(f"/room_keys/keys/{ROOM}/s1", key(), token=token)
    assert (status, got["errcode"]) == (400, "M_MISSING_PARAM")
    cases = [
        (f"/room_keys/keys/{ROOM}/s1", {**key(), "first_message_index": -1}, "M_BAD_JSON"),
        (f"/room_keys/keys/{ROOM}/s1", {**key(), "forwarded_count": "1"}, "M_BAD_JSON"),
        (f"/room_keys/keys/{ROOM}/s1", {**key(), "is_verified": 1}, "M_BAD_JSON"),
        (f"/room_keys/keys/{ROOM}/s1", {**key(), "session_data": "x"}, "M_BAD_JSON"),
        (f"/room_keys/keys/{ROOM}/s1", {"first_message_index": 0}, "M_MISSING_PARAM"),
        ("/room_keys/keys/notaroom/s1", key(), "M_INVALID_PARAM"),
        (f"/room_keys/keys/{ROOM}/%00", key(), "M_INVALID_PARAM"),
        (f"/room_keys/keys/{ROOM}", {"sessions": []}, "M_BAD_JSON"),
        (f"/room_keys/keys/{ROOM}", {"sessions": {"s1": 5}}, "M_BAD_JSON"),
        ("/room_keys/keys", {"rooms": {ROOM: {"sessions": 5}}}, "M_BAD_JSON"),
        ("/room_keys/keys", {"rooms": {"notaroom": {"sessions": {"s": key()}}}}, "M_INVALID_PARAM"),
        ("/room_keys/keys", {}, "M_MISSING_PARAM"),
    ]
    for path, body, errcode in cases:
        status, got = await api.put(path, body, token=token, params=params)
        assert (status, got.get("errcode")) == (400, errcode), (path, body, got)
    assert (await api.get("/room_keys/version", token=token))[1]["count"] == 0
    status, _ = await api.get("/room_keys/version")
    assert status == 401


async def test_backups_are_per_user(api):
    alice, bob = await api.register_all("alice", "bob")
    version = await create(api, alice["access_token"])
    await api.put(f"/room_keys/keys/{ROOM}/s1", key(), token=alice["access_token"], params={"version": version})
    status, got = await api.get(f"/room_keys/version/{version}", token=bob["access_token"])
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    status, got = await api.get("/room_keys/keys", token=bob["access_token"], params={"version": version})
    assert status == 404
