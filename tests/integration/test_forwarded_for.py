"""Behind a reverse proxy: a listener with `x_forwarded` takes each client's address from
the X-Forwarded-For header, so per-address limits count clients and devices show where
they really were; a listener without it ignores the header, since anyone could send one."""

from __future__ import annotations

import aiohttp

from ranvier.server import Homeserver
from ranvier.web.serving import forwarded_address
from tests.conftest import Api, test_config


def test_the_address_is_the_last_one_the_proxy_added():
    assert forwarded_address("198.51.100.7") == "198.51.100.7"
    assert forwarded_address("10.0.0.1, 198.51.100.7") == "198.51.100.7"
    assert forwarded_address(" 2001:db8::1 ") == "2001:db8::1"
    assert forwarded_address("unknown") is None and forwarded_address("") is None and forwarded_address(None) is None


async def test_addresses_from_the_proxy_header_only_on_a_trusting_listener(tmp_path, database_url):
    config = test_config(
        tmp_path, database_url,
        listeners=[{"bind": "127.0.0.1", "port": 0, "x_forwarded": True}, {"bind": "127.0.0.1", "port": 0}],
        rate_limits={"failed_login": {"per_second": 0.001, "burst": 2}},
    )
    hs = Homeserver(config)
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            proxied = Api(session, f"http://127.0.0.1:{hs.ports[0]}")
            direct = Api(session, f"http://127.0.0.1:{hs.ports[1]}")
            alice = await proxied.register("alice")
            status, body = await proxied.get("/devices", token=alice["access_token"],
                                             headers={"X-Forwarded-For": "198.51.100.7"})
            assert status == 200 and body["devices"][0]["last_seen_ip"] == "198.51.100.7"

            wrong = {"type": "m.login.password", "user": "alice", "password": "not it"}

            async def failed_login(api: Api, address: str) -> int:
                status, _ = await api.post("/login", wrong, headers={"X-Forwarded-For": address})
                return status

            # Two failures from one client use up its allowance; another client still gets its own.
            assert [await failed_login(proxied, "203.0.113.1") for _ in range(3)] == [403, 403, 429]
            assert await failed_login(proxied, "203.0.113.2") == 403
            # On the listener that does not trust the header, every claimed address is the peer's.
            assert [await failed_login(direct, f"203.0.113.{n}") for n in range(10, 13)] == [403, 403, 429]
    finally:
        await hs.stop()
