"""One process owns a data directory: `ranvier serve` (and `restore`, `migrate-database`)
hold an exclusive lock on its `ranvier.lock` file while they run, so a restore cannot
overwrite the database under a running server. The lock goes with the process (even
when it is killed); the file itself stays."""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = "ranvier.lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data directory."""


class DataDirLock:
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self, doing: str) -> None:
        """Take the lock or raise DataDirInUse naming the data directory."""
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
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
