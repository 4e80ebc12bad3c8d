"""The web admin's snapshot of ranvier's metrics: the values the exposition shows, summed,
with long polls left out of the latency buckets."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ranvier.metrics import RATE_LIMITED, count_request, snapshot
from ranvier.metrics_registry import render_text


def test_snapshot_sums_requests_and_leaves_long_polls_out_of_the_latency_buckets():
    before = snapshot()
    count_request("GET", "/test/snapshot", 200, 0.003)
    count_request("PUT", "/test/snapshot", 400, 0.2)
    count_request("GET", "/_matrix/client/{api_version}/sync", 200, 29.0)
    after = snapshot()
    assert after["requests"] == before["requests"] + 3
    grown = {bound: count - before["latency_buckets"].get(bound, 0) for bound, count in after["latency_buckets"].items()}
    assert (grown["0.0025"], grown["0.005"], grown["0.25"], grown["30.0"], grown["+Inf"]) == (0, 1, 2, 2, 2)
    assert after["memory_bytes"] > 0 and after["cpu_seconds"] > 0 and after["time"] > before["time"]


def test_snapshot_agrees_with_the_exposition():
    RATE_LIMITED.labels("test_snapshot").inc()
    count_request("GET", "/test/agree", 200, 0.01)
    values = snapshot()
    families = {family.name: family for family in text_string_to_metric_families(render_text().decode())}

    def total(name: str) -> float:
        return sum(sample.value for sample in families[name].samples)

    assert values["requests"] == total("ranvier_http_requests")
    assert values["ratelimit_refusals"] == total("ranvier_ratelimit_refusals") >= 1
    assert values["events_persisted"] == total("ranvier_events_persisted")
    assert values["sync_waiters"] == total("ranvier_sync_waiters")
    assert values["notifier_wakeups"] == total("ranvier_notifier_wakeups")
