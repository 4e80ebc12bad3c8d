"""ranvier's own metrics, declared in the process's registry (`metrics_registry`).

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

from ranvier.metrics_registry import (CONTENT_TYPE, Counter, CounterChild, Gauge, Histogram, HistogramChild,
                                      process_stats, render_text)

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

_request_children: dict[tuple[str, str, int], tuple[CounterChild, HistogramChild]] = {}


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


# -- exposition ------------------------------------------------------------------------


async def serve_metrics(request: web.Request) -> web.Response:
    """GET /metrics (own listener) or GET /_synapse/metrics (main listener, when
    `metrics.main_listener` is on): every metric as Prometheus text. No authentication:
    expose it only where the scraper can reach it."""
    return web.Response(body=render_text(), headers={"Content-Type": CONTENT_TYPE})


def metrics_app() -> web.Application:
    """The application of the metrics' own listener (`metrics.enabled`)."""
    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return app


def _is_long_poll(endpoint: str) -> bool:
    """/sync, /events and sliding sync wait up to their timeout: their latency says how
    long nothing happened, so the web admin's percentiles leave them out."""
    return endpoint.endswith(("/sync", "/events"))


def snapshot() -> dict[str, Any]:
    """The current values the web admin draws, summed over labels (the browser computes
    rates and percentiles from two snapshots); latency buckets, cumulative by `le`, leave
    the long polls out."""
    buckets: dict[str, int] = {}
    for (endpoint,), child in REQUEST_SECONDS.children():
        if not _is_long_poll(endpoint):
            for bound, count in zip(REQUEST_SECONDS.bucket_labels, child.cumulative()):
                buckets[bound] = buckets.get(bound, 0) + count
    process = process_stats()
    return {"requests": sum(child.value for _, child in REQUESTS.children()),
            "events_persisted": EVENTS_PERSISTED.value, "sync_waiters": SYNC_WAITERS.value,
            "notifier_wakeups": NOTIFIER_WAKEUPS.value, "db_connections_in_use": DB_CONNECTIONS_IN_USE.value,
            "ratelimit_refusals": sum(child.value for _, child in RATE_LIMITED.children()),
            "memory_bytes": process.resident_bytes if process else 0.0,
            "cpu_seconds": process.cpu_seconds if process else 0.0,
            "latency_buckets": buckets, "time": time.time()}
