"""Work in the background of a running server: periodic jobs (`every`) and one-off
tasks an admin starts and follows (`Tasks`: room deletions, history purges)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ranvier.metrics import BACKGROUND_RUNS, BACKGROUND_SECONDS

log = logging.getLogger("ranvier.background")


@dataclass
class JobStatus:
    """What a periodic job has done in this process."""

    name: str
    interval_s: float
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_started_ts: int | None = None
    last_duration_ms: float | None = None


#: Every periodic job of this process, by name.
JOBS: dict[str, JobStatus] = {}


def every(interval_s: float, work: Callable[[], Awaitable[Any]], what: str, *, first_now: bool = False) -> asyncio.Task:
    """Run `work` every `interval_s` seconds until the task is cancelled. A failed run is
    logged and tried again at the next interval: one bad row must not end the sweeps."""
    status = JOBS[what] = JobStatus(what, interval_s)
    ok, failed = BACKGROUND_RUNS.labels(what, "ok"), BACKGROUND_RUNS.labels(what, "failed")
    duration = BACKGROUND_SECONDS.labels(what)

    async def forever() -> None:
        if not first_now:
            await asyncio.sleep(interval_s)
        while True:
            started = time.perf_counter()
            status.running, status.last_started_ts = True, int(time.time() * 1000)
            try:
                await work()
                ok.inc()
            except Exception:
                status.failures += 1
                failed.inc()
                log.exception("%s failed; trying again in %s s", what, interval_s)
            finally:
                status.running, status.runs = False, status.runs + 1
                status.last_duration_ms = (time.perf_counter() - started) * 1000
                duration.observe(status.last_duration_ms / 1000)
            await asyncio.sleep(interval_s)

    return asyncio.create_task(forever(), name=what)


async def cancel(task: asyncio.Task | None) -> None:
    """Stop a task started by `every` and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for above
        await task


SCHEDULED, ACTIVE, COMPLETE, FAILED = "scheduled", "active", "complete", "failed"


@dataclass
class Task:
    """One admin task: what it does (`action`), to what (`resource_id`), and how it went."""

    task_id: str
    action: str
    resource_id: str
    status: str = SCHEDULED
    started_ts: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Tasks:
    """One-off tasks started by admins, run one at a time in start order (a room deletion
    and a purge of the same room never race), kept in memory with their outcome (the
    newest 1,000; a restart forgets them)."""

    KEPT = 1_000

    def __init__(self) -> None:
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._queue: asyncio.Queue[tuple[Task, Callable[[Task], Awaitable[dict[str, Any]]]]] = asyncio.Queue()
        self._runner: asyncio.Task | None = None
        self._sequence = itertools.count()

    def start(self, action: str, resource_id: str, work: Callable[[Task], Awaitable[dict[str, Any]]]) -> Task:
        """Queue `work(task)`; its returned dict becomes the task's result."""
        task = Task(f"{next(self._sequence):06d}{secrets.token_hex(6)}", action, resource_id,
                    started_ts=int(time.time() * 1000))
        self._tasks[task.task_id] = task
        while len(self._tasks) > self.KEPT:
            self._tasks.popitem(last=False)
        self._queue.put_nowait((task, work))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="admin tasks")
        return task

    async def _run(self) -> None:
        while True:
            task, work = await self._queue.get()
            task.status = ACTIVE
            try:
                task.result = await work(task)
                task.status = COMPLETE
            except Exception as exc:
                task.status, task.error = FAILED, getattr(exc, "message", None) or str(exc) or type(exc).__name__
                log.exception("admin task %s %s on %s failed", task.task_id, task.action, task.resource_id)

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def find(self, *, action: str | None = None, resource_id: str | None = None) -> list[Task]:
        return [task for task in self._tasks.values()
                if (action is None or task.action == action) and (resource_id is None or task.resource_id == resource_id)]

    async def stop(self) -> None:
        await cancel(self._runner)
        self._runner = None
