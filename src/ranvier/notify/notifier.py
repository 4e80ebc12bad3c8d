"""Wakes long-polling readers the moment something they care about commits.

Readers listen on keys (`room:<id>`, `user:<id>`); writers notify keys after their
transaction commits. Nothing polls a clock. A reader subscribes *before* it last checks
for news, so a notification that lands in between is never lost.
"""

from __future__ import annotations

import asyncio
from typing import Iterable

from ranvier.metrics import NOTIFIER_WAKEUPS, SYNC_WAITERS


class Subscription:
    def __init__(self, notifier: "Notifier", keys: list[str]) -> None:
        self._notifier = notifier
        self._keys = keys
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()

    async def wait(self, timeout: float) -> bool:
        """True if notified within `timeout` seconds (or already before waiting); after a
        timeout the subscription still listens. A timer and a callback wake the waiter: no
        task and no shield per wait, which a wake-up of a thousand long polls would pay a
        thousand times."""
        if self.future.done():
            return True
        SYNC_WAITERS.inc()
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        self.future.add_done_callback(wake)
        timer = loop.call_later(timeout, wake)
        try:
            await woken
        finally:
            timer.cancel()
            self.future.remove_done_callback(wake)
            SYNC_WAITERS.dec()
        return self.future.done()

    def close(self) -> None:
        for key in self._keys:
            waiters = self._notifier._waiters.get(key)
            if waiters is not None:
                waiters.discard(self.future)
                if not waiters:
                    del self._notifier._waiters[key]

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future]] = {}
        self.closed = False

    def notify(self, keys: Iterable[str]) -> None:
        woken = 0
        for key in keys:
            for future in self._waiters.pop(key, ()):
                if not future.done():
                    future.set_result(key)
                    woken += 1
        if woken:
            NOTIFIER_WAKEUPS.inc(woken)

    def close(self) -> None:
        """At shutdown: every long poll answers now instead of at its timeout."""
        self.closed = True
        self.notify(list(self._waiters))

    def subscribe(self, keys: Iterable[str]) -> Subscription:
        subscription = Subscription(self, list(keys))
        if self.closed:
            subscription.future.set_result(None)
            return subscription
        for key in subscription._keys:
            self._waiters.setdefault(key, set()).add(subscription.future)
        return subscription
