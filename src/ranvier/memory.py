"""What the process's C allocator keeps, where it is glibc's.

Rows read on the database threads are allocated in those threads' own malloc arenas and
freed on the event loop's; each arena keeps its freed pages. Two arenas in all, and
handing free pages back to the system once a burst of requests is over, keep the process
near what it really holds. Elsewhere (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: glibc's mallopt parameters: the most arenas, and the size from which a block gets its own
#: mapping (returned to the system as soon as it is freed).
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
_ARENAS = 2
#: Fixed, which turns off glibc's sliding threshold: after a large mapped block is freed
#: (a 19 MiB password hash, a decoded image), glibc would otherwise serve blocks up to
#: that size from the arenas, where small long-lived objects later settle among them and
#: keep their pages.
_MMAP_THRESHOLD = 256 * 1024
#: Seconds between two returns of free pages to the system. A return costs under a
#: millisecond after the benchmark's load (27 MiB of heap); at 30 s, what a burst of
#: requests left free (20 MiB after the registration of a thousand users) stayed resident
#: for up to half a minute after it.
TRIM_INTERVAL_S = 5


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()


def limit_arenas() -> None:
    """Call before any thread starts: threads then share two arenas, and large blocks
    always have mappings of their own."""
    if _LIBC is None:
        return
    if not _LIBC.mallopt(_M_ARENA_MAX, _ARENAS):
        log.debug("mallopt(M_ARENA_MAX) refused")
    if not _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD):
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")


def return_free_memory() -> None:
    """Hand the free pages of every arena back to the system (under a millisecond)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


async def release_free_memory() -> None:
    """`return_free_memory`, as the periodic task runs it."""
    return_free_memory()
