"""ranvier's own metrics, in prometheus-client's default registry.

Every metric is counted whether or not anyone scrapes it: the cost is a counter increment
per request, per committed batch of events or per wake-up, never one per event per member.
They are served as Prometheus text on their own listener (`metrics.enabled`) and, behind
`metrics.main_listener`, on the main listener at `/_synapse/metrics`; the web admin reads
a JSON snapshot of them (`snapshot()`).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

#: Request latency buckets (seconds): /sync long polls land in the last ones.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DB_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

REQUESTS = Counter("ranvier_http_requests", "HTTP requests answered, by route pattern and status",
                   ["method", "endpoint", "status"])
REQUEST_SECONDS = Histogram("ranvier_http_request_duration_seconds", "Time to answer a request, by route pattern",
                            ["endpoint"], buckets=_LATENCY_BUCKETS)
EVENTS_PERSISTED = Counter("ranvier_events_persisted", "Room events made durable")
SYNC_WAITERS = Gauge("ranvier_sync_waiters", "Long polls (/sync, /events, sliding sync) waiting for news now")
NOTIFIER_WAKEUPS = Counter("ranvier_notifier_wakeups", "Long polls woken by the notifier")
DB_SECONDS = Histogram("ranvier_db_duration_seconds", "Database reads and write transactions, start to end",
                       ["kind"], buckets=_DB_BUCKETS)
DB_CONNECTIONS_IN_USE = Gauge("ranvier_db_connections_in_use", "Database connections busy (reads and the writer)")
CACHE_LOOKUPS = Counter("ranvier_cache_lookups", "Cache lookups, by cache and result (hit or miss)",
                        ["cache", "result"])
RATE_LIMITED = Counter("ranvier_ratelimit_refusals", "Requests refused with M_LIMIT_EXCEEDED, by limiter",
                       ["limiter"])
BACKGROUND_RUNS = Counter("ranvier_background_job_runs", "Runs of periodic background jobs, by job and outcome",
                          ["job", "outcome"])
BACKGROUND_SECONDS = Histogram("ranvier_background_job_duration_seconds", "Time a background job run took",
                               ["job"], buckets=_LATENCY_BUCKETS)

DB_READ = DB_SECONDS.labels("read")
DB_TRANSACTION = DB_SECONDS.labels("transaction")
EVENT_CACHE_HITS = CACHE_LOOKUPS.labels("events", "hit")
EVENT_CACHE_MISSES = CACHE_LOOKUPS.labels("events", "miss")
TOKEN_CACHE_HITS = CACHE_LOOKUPS.labels("access_tokens", "hit")
TOKEN_CACHE_MISSES = CACHE_LOOKUPS.labels("access_tokens", "miss")

_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def count_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    """One answered request; the labelled children are looked up once per (method,
    endpoint, status) and kept, so a request costs two plain increments."""
    key = (method, endpoint, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (REQUESTS.labels(method, endpoint, str(status)),
                                             REQUEST_SECONDS.labels(endpoint))
    children[0].inc()
    children[1].observe(seconds)


class Timer:
    """`with Timer(histogram_child):` observes the block's duration."""

    __slots__ = ("child", "started")

    def __init__(self, child) -> None:
        self.child = child

    def __enter__(self) -> "Timer":
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.child.observe(time.perf_counter() - self.started)


# -- exposition ------------------------------------------------------------------------


async def serve_metrics(request: web.Request) -> web.Response:
    """GET /metrics (own listener) or GET /_synapse/metrics (main listener, when
    `metrics.main_listener` is on): every metric as Prometheus text. No authentication:
    expose it only where the scraper can reach it."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return app


#: The families the web admin draws; each as {name: [[labels, value], ...]}.
SNAPSHOT_FAMILIES = (
    "ranvier_http_requests", "ranvier_http_request_duration_seconds", "ranvier_events_persisted",
    "ranvier_sync_waiters", "ranvier_notifier_wakeups", "ranvier_db_connections_in_use",
    "ranvier_ratelimit_refusals", "process_resident_memory_bytes", "process_cpu_seconds",
)


def _is_long_poll(endpoint: str) -> bool:
    """/sync, /events and sliding sync wait up to their timeout: their latency says how
    long nothing happened, so the web admin's percentiles leave them out."""
    return endpoint.endswith(("/sync", "/events"))


def snapshot() -> dict[str, Any]:
    """The current samples of the families the web admin draws, summed over endpoints
    (the browser computes rates and percentiles from two snapshots); latency buckets
    leave the long polls out."""
    wanted = set(SNAPSHOT_FAMILIES)
    totals: dict[str, Any] = {"requests": 0.0, "events_persisted": 0.0, "sync_waiters": 0.0,
                              "notifier_wakeups": 0.0, "db_connections_in_use": 0.0, "ratelimit_refusals": 0.0,
                              "memory_bytes": 0.0, "cpu_seconds": 0.0, "latency_buckets": {}}
    plain = {"ranvier_http_requests_total": "requests", "ranvier_events_persisted_total": "events_persisted",
             "ranvier_sync_waiters": "sync_waiters", "ranvier_notifier_wakeups_total": "notifier_wakeups",
             "ranvier_db_connections_in_use": "db_connections_in_use",
             "ranvier_ratelimit_refusals_total": "ratelimit_refusals",
             "process_resident_memory_bytes": "memory_bytes", "process_cpu_seconds_total": "cpu_seconds"}
    buckets: dict[str, float] = totals["latency_buckets"]
    for family in REGISTRY.collect():
        if family.name not in wanted:
            continue
        for sample in family.samples:
            if sample.name in plain:
                totals[plain[sample.name]] += sample.value
            elif sample.name == "ranvier_http_request_duration_seconds_bucket" and not _is_long_poll(
                    sample.labels["endpoint"]):
                bound = sample.labels["le"]
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    totals["time"] = time.time()
    return totals
