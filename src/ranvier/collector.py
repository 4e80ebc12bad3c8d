"""Pausing the cyclic garbage collector while a large answer is built.

An initial sync of thousands of rooms makes millions of objects that all stay alive until
the answer is serialised, then are freed at once by reference counting. The collector,
triggered by the allocations, would traverse them again and again and find nothing to
free: seconds at 10,000 rooms. While at least one such answer is being built the collector
is off; it is back on (if it was on) when the last one is done.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

_builders = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _builders, _resume
    if _builders == 0:
        _resume = gc.isenabled()
        gc.disable()
    _builders += 1
    try:
        yield
    finally:
        _builders -= 1
        if _builders == 0 and _resume:
            gc.enable()
