"""The media, registration token and event report admin APIs against the examples of
Synapse's documentation (media_admin_api.md, registration_tokens.md, event_reports.md)."""

from __future__ import annotations

import asyncio
import os
import time

from tests.admin.conftest import SYNAPSE

V1 = f"{SYNAPSE}/v1"
MEDIA_KEYS = {"created_ts", "last_access_ts", "media_id", "media_length", "media_type", "quarantined_by",
              "safe_from_quarantine", "upload_name"}


async def upload(api, token: str, data: bytes, name: str) -> str:
    status, body = await api.post("/_matrix/media/v3/upload", data=data, token=token,
                                  headers={"Content-Type": "image/png"}, params={"filename": name})
    assert status == 200, body
    return body["content_uri"].rsplit("/", 1)[1]


async def download_status(api, token: str, media_id: str) -> int:
    async with api.session.get(f"{api.base_url}/_matrix/client/v1/media/download/localhost/{media_id}",
                               headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def test_user_media_list_and_delete_as_documented(api, admin, homeserver):
    alice = await api.register("alice")
    token = alice["access_token"]
    ids = [await upload(api, token, os.urandom(67 + n), f"test{n}.png") for n in range(3)]
    status, body = await api.get(f"{V1}/users/@alice:localhost/media", token=admin)
    assert status == 200 and body["total"] == 3 and "next_token" not in body
    assert set(body["media"][0]) == MEDIA_KEYS
    assert [m["media_id"] for m in body["media"]] == ids[::-1]  # newest first by default
    assert body["media"][0]["media_length"] == 69 and body["media"][0]["upload_name"] == "test2.png"
    status, page = await api.get(f"{V1}/users/@alice:localhost/media", token=admin,
                                 params={"limit": "2", "order_by": "media_length", "dir": "f"})
    assert [m["media_length"] for m in page["media"]] == [67, 68] and page["next_token"] == 2
    status, deleted = await api.delete(f"{V1}/users/@alice:localhost/media", token=admin, params={"limit": "1"})
    assert deleted == {"deleted_media": [ids[2]], "total": 1}
    assert await download_status(api, token, ids[2]) == 404
    status, body = await api.get(f"{V1}/users/@alice:localhost/media", token=admin, params={"order_by": "size"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_delete_media_by_id_removes_the_file_unless_shared(api, admin, homeserver):
    alice = await api.register("alice")
    token = alice["access_token"]
    data = os.urandom(500)
    first, second = await upload(api, token, data, "a.png"), await upload(api, token, data, "b.png")
    content_hash = (await homeserver.media.store.get_media(first)).content_hash
    path = homeserver.media.files.path(content_hash)
    status, body = await api.delete(f"{V1}/media/localhost/{first}", token=admin)
    assert (status, body) == (200, {"deleted_media": [first], "total": 1})
    assert os.path.exists(path)  # the second upload shares the bytes
    assert await download_status(api, token, second) == 200
    assert (await api.delete(f"{V1}/media/localhost/{second}", token=admin))[0] == 200
    assert not os.path.exists(path)
    assert (await api.delete(f"{V1}/media/localhost/{second}", token=admin))[0] == 404
    assert (await api.delete(f"{V1}/media/elsewhere.org/{second}", token=admin))[0] == 400


async def test_delete_old_media_by_age_and_size(api, admin, homeserver):
    alice = await api.register("alice")
    token = alice["access_token"]
    small, big, avatar, kept = [await upload(api, token, os.urandom(size), "x.png")
                                for size in (100, 5000, 6000, 7000)]
    await api.put("/profile/@alice:localhost/avatar_url", {"avatar_url": f"mxc://localhost/{avatar}"}, token=token)
    assert (await api.post(f"{V1}/media/protect/{kept}", {}, token=admin))[0] == 200
    await asyncio.sleep(0.01)  # every upload strictly before `before`
    before = int(time.time() * 1000)
    status, body = await api.post(f"{V1}/media/delete", {}, token=admin,
                                  params={"before_ts": str(before), "size_gt": "1000"})
    assert (status, body) == (200, {"deleted_media": [big], "total": 1})
    assert await download_status(api, token, small) == 200
    status, body = await api.post(f"{V1}/media/delete", {}, token=admin,
                                  params={"before_ts": str(before), "keep_profiles": "false"})
    assert sorted(body["deleted_media"]) == sorted([small, avatar])
    assert await download_status(api, token, kept) == 200
    for params, errcode in [({}, "M_MISSING_PARAM"), ({"before_ts": str(2**45)}, "M_INVALID_PARAM"),
                            ({"before_ts": "soon"}, "M_INVALID_PARAM")]:
        status, body = await api.post(f"{V1}/media/delete", {}, token=admin, params=params)
        assert (status, body["errcode"]) == (400, errcode), params


async def test_quarantine_stops_serving_and_protection_prevents_it(api, admin):
    alice = await api.register("alice")
    token = alice["access_token"]
    bad, good, other = [await upload(api, token, os.urandom(50), "x.png") for _ in range(3)]
    assert await api.post(f"{V1}/media/quarantine/localhost/{bad}", {}, token=admin) == (200, {})
    assert await download_status(api, token, bad) == 404
    status, info = await api.get(f"{V1}/media/localhost/{bad}", token=admin)
    assert info["media_info"]["quarantined_by"] == "@root:localhost"
    assert info["media_info"]["user_id"] == "@alice:localhost"
    assert (await api.post(f"{V1}/media/unquarantine/localhost/{bad}", {}, token=admin))[0] == 200
    assert await download_status(api, token, bad) == 200
    assert (await api.post(f"{V1}/media/protect/{good}", {}, token=admin))[0] == 200
    status, body = await api.post(f"{V1}/user/@alice:localhost/media/quarantine", {}, token=admin)
    assert body == {"num_quarantined": 2}
    assert await download_status(api, token, good) == 200
    assert await download_status(api, token, other) == 404
    assert (await api.post(f"{V1}/media/protect/nope", {}, token=admin))[0] == 404


async def test_registration_tokens_as_documented(api, admin, homeserver):
    homeserver.config.registration.mode = "token"
    status, created = await api.post(f"{V1}/registration_tokens/new", {}, token=admin)
    assert status == 200 and len(created["token"]) == 16
    assert created == {"token": created["token"], "uses_allowed": None, "pending": 0, "completed": 0,
                       "expiry_time": None}
    status, named = await api.post(f"{V1}/registration_tokens/new", {"token": "defg", "uses_allowed": 1},
                                   token=admin)
    assert named["token"] == "defg" and named["uses_allowed"] == 1
    assert (await api.post(f"{V1}/registration_tokens/new", {"token": "defg"}, token=admin))[0] == 400
    status, short = await api.post(f"{V1}/registration_tokens/new", {"length": 5}, token=admin)
    assert len(short["token"]) == 5
    for bad in ({"token": "no spaces"}, {"length": 65}, {"uses_allowed": -1}, {"expiry_time": 1}):
        assert (await api.post(f"{V1}/registration_tokens/new", bad, token=admin))[0] == 400, bad
    # use defg up: one registration
    body = {"username": "newcomer", "password": "correct horse"}
    status, challenge = await api.post("/register", body)
    body["auth"] = {"type": "m.login.registration_token", "token": "defg", "session": challenge["session"]}
    assert (await api.post("/register", body))[0] == 200
    assert (await api.get(f"{V1}/registration_tokens/defg", token=admin))[1]["completed"] == 1
    status, valid = await api.get(f"{V1}/registration_tokens", token=admin, params={"valid": "true"})
    assert "defg" not in [t["token"] for t in valid["registration_tokens"]]
    status, used_up = await api.get(f"{V1}/registration_tokens", token=admin, params={"valid": "false"})
    assert [t["token"] for t in used_up["registration_tokens"]] == ["defg"]
    expiry = int(time.time() * 1000) + 86_400_000
    status, updated = await api.put(f"{V1}/registration_tokens/defg", {"uses_allowed": None, "expiry_time": expiry},
                                    token=admin)
    assert (updated["uses_allowed"], updated["expiry_time"], updated["completed"]) == (None, expiry, 1)
    assert await api.delete(f"{V1}/registration_tokens/defg", token=admin) == (200, {})
    assert (await api.get(f"{V1}/registration_tokens/defg", token=admin))[1]["errcode"] == "M_NOT_FOUND"
    assert (await api.delete(f"{V1}/registration_tokens/defg", token=admin))[0] == 404


async def test_event_reports_as_documented(api, admin):
    alice, bob = await api.register_all("alice", "bob")
    room = await api.create_room(alice["access_token"], name="Reported", preset="public_chat")
    await api.post(f"/rooms/{room}/join", {}, token=bob["access_token"])
    events = [await api.send_text(alice["access_token"], room, f"rude {n}") for n in range(3)]
    for event_id in events:
        assert (await api.post(f"/rooms/{room}/report/{event_id}", {"reason": "this makes me sad", "score": -100},
                               token=bob["access_token"]))[0] == 200
    assert (await api.post(f"/rooms/{room}/report", {"reason": "the whole room"}, token=bob["access_token"]))[0] == 200
    status, body = await api.get(f"{V1}/event_reports", token=admin, params={"from": "0", "limit": "2"})
    assert status == 200 and body["total"] == 3 and body["next_token"] == 2
    newest = body["event_reports"][0]
    assert newest["event_id"] == events[2] and newest["room_id"] == room and newest["name"] == "Reported"
    assert (newest["user_id"], newest["sender"], newest["reason"], newest["score"]) == (
        "@bob:localhost", "@alice:localhost", "this makes me sad", -100)
    status, rest = await api.get(f"{V1}/event_reports", token=admin, params={"from": "2"})
    assert [r["event_id"] for r in rest["event_reports"]] == [events[0]] and "next_token" not in rest
    oldest_first = await api.get(f"{V1}/event_reports", token=admin, params={"dir": "f"})
    assert oldest_first[1]["event_reports"][0]["event_id"] == events[0]
    by_sender = await api.get(f"{V1}/event_reports", token=admin, params={"event_sender_user_id": "@bob:localhost"})
    assert by_sender[1]["total"] == 0
    status, details = await api.get(f"{V1}/event_reports/{newest['id']}", token=admin)
    assert details["event_json"]["content"]["body"] == "rude 2"
    assert await api.delete(f"{V1}/event_reports/{newest['id']}", token=admin) == (200, {})
    assert (await api.get(f"{V1}/event_reports/{newest['id']}", token=admin))[0] == 404
    assert (await api.get(f"{V1}/event_reports", token=admin))[1]["total"] == 2
    status, rooms = await api.get(f"{V1}/room_reports", token=admin)
    assert [r["reason"] for r in rooms["room_reports"]] == ["the whole room"]
