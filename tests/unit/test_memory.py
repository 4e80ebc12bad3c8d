"""glibc's allocator as `memory.limit_arenas` sets it: a large block freed goes back to the
system at once, even after another large block was freed before it (glibc's sliding
threshold would otherwise serve the second one from an arena and keep its pages)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ranvier import memory

PROGRAM = """
import sys
from ranvier import memory
if sys.argv[1] == "limited":
    memory.limit_arenas()

def resident_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) // 1024

before = resident_mib()
for _ in range(3):  # the size of a password hash's working memory
    block = bytearray(19 * 2**20)
    del block
print(resident_mib() - before)
"""


def kept_mib(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(memory._LIBC is None or not sys.platform.startswith("linux"), reason="glibc on Linux only")
def test_large_blocks_freed_are_returned_at_once():
    assert kept_mib("default") >= 10, "glibc's own setting keeps the second block's pages"
    assert kept_mib("limited") <= 2


FREED_IN_THE_MIDDLE = """
import sys
from ranvier import memory
memory.limit_arenas()

def resident_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) // 1024

blocks = [bytearray(64 * 1024) for _ in range(320)]  # 20 MiB of blocks under the mapping threshold
last = bytearray(64 * 1024)  # above them: the heap cannot shrink from its end
before = resident_mib()
del blocks
freed = resident_mib()
memory.return_free_memory()
print(before - freed, before - resident_mib())
"""


@pytest.mark.skipif(memory._LIBC is None or not sys.platform.startswith("linux"), reason="glibc on Linux only")
def test_free_pages_inside_the_heap_are_returned_when_asked():
    done = subprocess.run([sys.executable, "-c", FREED_IN_THE_MIDDLE], capture_output=True, text=True, check=True)
    returned_by_free, returned_when_asked = map(int, done.stdout.split())
    assert returned_by_free <= 2, "free() alone keeps pages below a block still in use"
    assert returned_when_asked >= 15
