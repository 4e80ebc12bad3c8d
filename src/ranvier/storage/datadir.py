"""One process owns a data directory: `ranvier serve` (and `restore`, `migrate-database`)
hold an exclusive lock on its `ranvier.lock` file while they run, so a restore cannot
overwrite the database under a running server and a second `ranvier serve` refuses to
start. The lock belongs to the process (servers started in one process, as tests do,
share it) and goes with it, even when it is killed; the file itself stays."""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = "ranvier.lock"

#: Lock file path -> (its descriptor, how many holders in this process).
_held: dict[str, tuple[int, int]] = {}


class DataDirInUse(RuntimeError):
    """Another process holds the data directory."""


class DataDirLock:
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.realpath(os.path.join(data_dir, LOCK_FILE))
        self._holding = False

    def acquire(self, doing: str) -> None:
        """Take the lock or raise DataDirInUse naming the data directory."""
        if self._holding:
            return
        held = _held.get(self.path)
        if held is not None:
            _held[self.path] = (held[0], held[1] + 1)
            self._holding = True
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(f"{os.path.dirname(self.path)} is in use by a running ranvier; stop it before "
                               f"{doing}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[self.path] = (fd, 1)
        self._holding = True

    def release(self) -> None:
        if not self._holding:
            return
        self._holding = False
        fd, holders = _held.pop(self.path)
        if holders > 1:
            _held[self.path] = (fd, holders - 1)
        else:
            os.close(fd)
