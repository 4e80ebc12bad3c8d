"""Periodic work in the background of a running server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger("ranvier.background")


def every(interval_s: float, work: Callable[[], Awaitable[Any]], what: str, *, first_now: bool = False) -> asyncio.Task:
    """Run `work` every `interval_s` seconds until the task is cancelled. A failed run is
    logged and tried again at the next interval: one bad row must not end the sweeps."""

    async def forever() -> None:
        if not first_now:
            await asyncio.sleep(interval_s)
        while True:
            try:
                await work()
            except Exception:
                log.exception("%s failed; trying again in %s s", what, interval_s)
            await asyncio.sleep(interval_s)

    return asyncio.create_task(forever(), name=what)


async def cancel(task: asyncio.Task | None) -> None:
    """Stop a task started by `every` and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for above
        await task
