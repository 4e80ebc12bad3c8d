"""Per-user rate limit overrides (Synapse's override_ratelimit) feed the message limiter."""

from __future__ import annotations

import pytest

from tests.admin.conftest import SYNAPSE
from tests.conftest import test_config

V1 = f"{SYNAPSE}/v1"


@pytest.fixture
def server_config(tmp_path, database_url):
    """A message limit low enough to reach: a burst of 3, then one a minute."""
    config = test_config(tmp_path / "data", database_url)
    config.rate_limits.message.per_second, config.rate_limits.message.burst = 1 / 60, 3
    return config


async def test_rate_limit_override_as_documented(api, admin):
    alice = await api.register("alice")
    room = await api.create_room(alice["access_token"])

    async def send(n: int) -> int:
        status, _ = await api.put(f"/rooms/{room}/send/m.room.message/t{n}", {"msgtype": "m.text", "body": "x"},
                                  token=alice["access_token"])
        return status

    assert [await send(n) for n in range(4)] == [200, 200, 200, 429]
    path = f"{V1}/users/@alice:localhost/override_ratelimit"
    assert await api.get(path, token=admin) == (200, {})
    status, body = await api.post(path, {"messages_per_second": 0, "burst_count": 0}, token=admin)
    assert (status, body) == (200, {"messages_per_second": 0, "burst_count": 0})
    assert [await send(n) for n in range(4, 10)] == [200] * 6
    assert (await api.get(path, token=admin))[1] == {"messages_per_second": 0, "burst_count": 0}
    assert (await api.delete(path, token=admin)) == (200, {})
    assert await send(10) == 429
    for bad in ({"messages_per_second": -1}, {"burst_count": "10"}):
        assert (await api.post(path, bad, token=admin))[0] == 400
