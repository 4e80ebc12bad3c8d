"""Concurrent requests that race for the same unique row: the losers get the Matrix error
the spec names for the conflict (or the same success), never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

CONCURRENT = 8


async def _all(*requests):
    return await asyncio.gather(*requests)


async def test_concurrent_create_room_with_one_alias_one_wins_the_others_get_room_in_use(make_server):
    api = await make_server()
    token = (await api.register("alice"))["access_token"]
    answers = await _all(*(api.post("/createRoom", {"room_alias_name": "same"}, token=token)
                           for _ in range(CONCURRENT)))
    outcomes = Counter((status, body.get("errcode")) for status, body in answers)
    assert outcomes == {(200, None): 1, (400, "M_ROOM_IN_USE"): CONCURRENT - 1}, answers
    winner = next(body["room_id"] for status, body in answers if status == 200)
    status, resolved = await api.get("/directory/room/%23same:localhost")
    assert (status, resolved["room_id"]) == (200, winner)


async def test_concurrent_alias_creation_one_wins_the_others_get_409(make_server):
    api = await make_server()
    token = (await api.register("alice"))["access_token"]
    rooms = [await api.create_room(token) for _ in range(CONCURRENT)]
    answers = await _all(*(api.put("/directory/room/%23taken:localhost", {"room_id": room}, token=token)
                           for room in rooms))
    assert Counter(status for status, _ in answers) == {200: 1, 409: CONCURRENT - 1}, answers


async def test_concurrent_registrations_of_one_name_one_wins_the_others_get_user_in_use(make_server):
    api = await make_server()

    async def register():
        body = {"username": "popular", "password": "correct horse", "auth": {"type": "m.login.dummy"}}
        status, challenge = await api.post("/register", {"username": "popular", "password": "correct horse"})
        if status != 401:  # the name was taken before this attempt began its auth
            return status, challenge
        body["auth"]["session"] = challenge["session"]
        return await api.post("/register", body)

    answers = await _all(*(register() for _ in range(CONCURRENT)))
    outcomes = Counter((status, body.get("errcode")) for status, body in answers)
    assert outcomes == {(200, None): 1, (400, "M_USER_IN_USE"): CONCURRENT - 1}, answers


async def test_concurrent_filters_get_distinct_ids(make_server):
    api = await make_server()
    token = (await api.register("alice"))["access_token"]
    answers = await _all(*(api.post("/user/@alice:localhost/filter", {"room": {"timeline": {"limit": n}}}, token=token)
                           for n in range(CONCURRENT)))
    assert [status for status, _ in answers] == [200] * CONCURRENT, answers
    ids = [body["filter_id"] for _, body in answers]
    assert len(set(ids)) == CONCURRENT
    for n, filter_id in enumerate(ids):
        status, stored = await api.get(f"/user/@alice:localhost/filter/{filter_id}", token=token)
        assert (status, stored) == (200, {"room": {"timeline": {"limit": n}}})


async def test_concurrent_pushers_all_succeed(make_server):
    api = await make_server(push={"http_gateway_urls": ["http://127.0.0.1:"]}, outbound={"allowed_networks": ["127.0.0.0/8"]})
    token = (await api.register("alice"))["access_token"]

    def pusher(pushkey):
        return {"kind": "http", "app_id": "org.example.app", "pushkey": pushkey, "app_display_name": "Example",
                "device_display_name": "Phone", "lang": "en", "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"}}

    distinct = await _all(*(api.post("/pushers/set", pusher(f"key-{n}"), token=token) for n in range(CONCURRENT)))
    same = await _all(*(api.post("/pushers/set", pusher("shared"), token=token) for _ in range(CONCURRENT)))
    assert [status for status, _ in distinct + same] == [200] * (2 * CONCURRENT), distinct + same
    status, listed = await api.get("/pushers", token=token)
    assert sorted(p["pushkey"] for p in listed["pushers"]) == sorted([f"key-{n}" for n in range(CONCURRENT)] + ["shared"])


async def test_concurrent_backup_versions_get_distinct_numbers(make_server):
    api = await make_server()
    token = (await api.register("alice"))["access_token"]
    body = {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "abcdefg"}}
    answers = await _all(*(api.post("/room_keys/version", body, token=token) for _ in range(CONCURRENT)))
    assert [status for status, _ in answers] == [200] * CONCURRENT, answers
    assert len({body["version"] for _, body in answers}) == CONCURRENT
