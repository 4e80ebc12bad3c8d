"""ranvier's own metrics: counted on the hot paths, served as Prometheus text on the main
listener when `metrics.main_listener` is on (and only then)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ranvier.errors import MatrixError
from ranvier.metrics import RATE_LIMITED
from ranvier.ratelimit import RateLimiter
from ranvier.server import Homeserver
from tests.conftest import test_config


@pytest.fixture
def server_config(tmp_path, database_url):
    return test_config(tmp_path / "data", database_url, metrics={"main_listener": True})


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(key) == value for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(api) -> str:
    async with api.session.get(api.base_url + "/_synapse/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def test_requests_events_and_caches_are_counted_by_route_pattern(api):
    alice = await api.register("alice")
    room = await api.create_room(alice["access_token"])
    before = await scrape(api)
    send_endpoint = "/_matrix/client/{api_version}/rooms/{room_id}/send/{event_type}/{txn_id}"
    sent_before = sample(before, "ranvier_http_requests_total", method="PUT", endpoint=send_endpoint, status="200")
    persisted_before = sample(before, "ranvier_events_persisted_total")
    for n in range(5):
        await api.send_text(alice["access_token"], room, f"counted {n}")
    await api.get("/no/such/thing")
    after = await scrape(api)
    assert sample(after, "ranvier_http_requests_total", method="PUT", endpoint=send_endpoint,
                  status="200") == sent_before + 5
    assert sample(after, "ranvier_events_persisted_total") == persisted_before + 5
    assert sample(after, "ranvier_http_request_duration_seconds_count", endpoint=send_endpoint) >= 5
    assert sample(after, "ranvier_http_requests_total", endpoint="unmatched", status="404") >= 1
    assert room not in after  # the pattern, never the raw path
    assert sample(after, "ranvier_cache_lookups_total", cache="access_tokens", result="hit") > 0
    assert sample(after, "ranvier_db_duration_seconds_count", kind="transaction") > 0
    assert "ranvier_sync_waiters" in after and "ranvier_db_connections_in_use" in after


async def test_the_scrape_parses_as_prometheus_text_with_the_process_and_python_families(api):
    await api.register("alice")
    async with api.session.get(api.base_url + "/_synapse/metrics") as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert "untyped" not in types.values()  # the parser makes a sample outside its family an untyped one
    assert types["ranvier_http_requests"] == "counter" and types["ranvier_http_requests_created"] == "gauge"
    assert types["ranvier_http_request_duration_seconds"] == "histogram"
    assert types["ranvier_sync_waiters"] == "gauge" and types["ranvier_db_connections_in_use"] == "gauge"
    for name in ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds",
                 "process_open_fds", "process_max_fds", "python_info"):
        assert types[name] == "gauge", name
    for name in ("process_cpu_seconds", "python_gc_objects_collected", "python_gc_objects_uncollectable",
                 "python_gc_collections"):
        assert types[name] == "counter", name
    assert sample(text, "process_resident_memory_bytes") > 0


async def test_sync_waiters_and_wakeups(api):
    alice = await api.register("alice")
    room = await api.create_room(alice["access_token"])
    status, first = await api.get("/sync", token=alice["access_token"])
    waiting = asyncio.create_task(api.get("/sync", token=alice["access_token"],
                                          params={"since": first["next_batch"], "timeout": "10000"}))
    for _ in range(100):
        if sample(await scrape(api), "ranvier_sync_waiters") >= 1:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the long poll never showed as waiting")
    woken_before = sample(await scrape(api), "ranvier_notifier_wakeups_total")
    await api.send_text(alice["access_token"], room, "wake up")
    status, _ = await waiting
    assert status == 200
    after = await scrape(api)
    assert sample(after, "ranvier_notifier_wakeups_total") > woken_before
    assert sample(after, "ranvier_sync_waiters") == 0


def test_rate_limit_refusals_are_counted():
    limiter = RateLimiter(1.0, 1, name="test_only")
    counter = RATE_LIMITED.labels("test_only")
    before = counter.value
    limiter.check("k")
    with pytest.raises(MatrixError):
        limiter.check("k")
    assert counter.value == before + 1


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_the_main_listener_serves_no_metrics_unless_asked(tmp_path, database_url):
    hs = Homeserver(test_config(tmp_path / "plain", database_url))
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(hs.base_url + "/_synapse/metrics") as response:
            assert response.status == 404
    finally:
        await hs.stop()
