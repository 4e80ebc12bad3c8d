"""Rate limits that must not hurt the wrong people: a retried send is answered, not
limited; strangers failing to log in do not lock the owner out."""

from __future__ import annotations

import aiohttp

from ranvier.server import Homeserver
from tests.conftest import Api, test_config

STRANGER_ADDRESS = "127.0.0.2"  # the whole of 127.0.0.0/8 reaches a server on 127.0.0.1


async def test_a_retried_send_that_succeeded_is_answered_not_rate_limited(make_server):
    api = await make_server(rate_limits={"message": {"per_second": 0.001, "burst": 2}})
    token = (await api.register("alice"))["access_token"]
    room = await api.create_room(token)
    path = f"/rooms/{room}/send/m.room.message/"
    first = await api.put(path + "t1", {"msgtype": "m.text", "body": "one"}, token=token)
    second = await api.put(path + "t2", {"msgtype": "m.text", "body": "two"}, token=token)
    assert [first[0], second[0]] == [200, 200]
    status, body = await api.put(path + "t3", {"msgtype": "m.text", "body": "three"}, token=token)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED"), "the limit is reached"
    assert await api.put(path + "t1", {"msgtype": "m.text", "body": "one"}, token=token) == first
    status, body = await api.put(f"/rooms/{room}/redact/{second[1]['event_id']}/r1", {}, token=token)
    assert status == 429


async def test_a_retry_from_before_a_restart_is_answered_not_rate_limited(tmp_path, database_url):
    limits = {"rate_limits": {"message": {"per_second": 0.001, "burst": 1}}}
    async with aiohttp.ClientSession() as session:
        hs = Homeserver(test_config(tmp_path / "data", database_url, **limits))
        await hs.start()
        try:
            api = Api(session, hs.base_url)
            token = (await api.register("alice"))["access_token"]
            room = await api.create_room(token)
            sent = await api.put(f"/rooms/{room}/send/m.room.message/t1", {"body": "x"}, token=token)
        finally:
            await hs.stop()
        hs = Homeserver(test_config(tmp_path / "data", database_url, **limits))
        await hs.start()
        try:
            api = Api(session, hs.base_url)
            assert (await api.put(f"/rooms/{room}/send/m.room.message/t2", {"body": "y"}, token=token))[0] == 200
            assert await api.put(f"/rooms/{room}/send/m.room.message/t1", {"body": "x"}, token=token) == sent
        finally:
            await hs.stop()


async def test_failed_logins_from_a_stranger_do_not_lock_the_owner_out(make_server):
    api = await make_server(rate_limits={"failed_login": {"per_second": 0.001, "burst": 3}})
    await api.register("grace")
    wrong = {"type": "m.login.password", "user": "grace", "password": "guessing"}
    right = {**wrong, "password": "correct horse"}
    connector = aiohttp.TCPConnector(local_addr=(STRANGER_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        stranger = Api(session, api.base_url)
        statuses = [(await stranger.post("/login", wrong))[0] for _ in range(5)]
        assert statuses == [403, 403, 403, 429, 429]
        assert (await stranger.post("/login", right))[0] == 429, "the stranger's address stays limited"
    status, body = await api.post("/login", right)
    assert (status, body.get("user_id")) == (200, "@grace:localhost"), "the owner's own address is not"
    assert (await api.post("/login", wrong))[0] == 403
