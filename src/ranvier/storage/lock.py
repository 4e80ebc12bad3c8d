"""One server process per database, until workers exist.

Stream positions, state group numbers and room heads are handed out in memory, so a second
process writing the same database would hand out the same ones. The server takes a lock
at start and holds it until it stops: on SQLite an exclusive `flock` on a file beside the
database (`homeserver.db.lock`, holding the owner's process ID), on PostgreSQL a
session-level advisory lock held by a connection of its own. The operating system, or
PostgreSQL, drops the lock when the process dies, so a crash never leaves it behind.
The command-line tools (`ranvier user ...`) do not take it: they work beside a running
server through the services' own transactions.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

#: PostgreSQL advisory lock key of the process that owns the database (any fixed number,
#: other than the migrations' one).
OWNER_LOCK_ID = 7_251_005


class DatabaseInUse(RuntimeError):
    """Another server process owns the database."""


class DatabaseLock:
    """Held from `acquire_database_lock` until `release`."""

    def __init__(self, release_lock) -> None:
        self._release_lock = release_lock

    async def release(self) -> None:
        if self._release_lock is not None:
            release, self._release_lock = self._release_lock, None
            await release()


async def acquire_database_lock(url: str) -> DatabaseLock:
    """Take the lock of the database named by `url`, or raise DatabaseInUse."""
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        return DatabaseLock(None) if path == ":memory:" else _lock_file(path + ".lock", path)
    return await _advisory_lock(url)


def _lock_file(lock_path: str, database: str) -> DatabaseLock:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseInUse(
            f"another ranvier process (pid {owner}) is serving the database {database}; one process per "
            f"database: stop it first (it holds the lock on {lock_path})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())

    async def release() -> None:
        os.close(fd)  # closing drops the flock; the file stays, harmless and reused

    return DatabaseLock(release)


async def _advisory_lock(url: str) -> DatabaseLock:
    import asyncpg

    conn: Any = await asyncpg.connect(url)
    try:
        taken = await conn.fetchval("SELECT pg_try_advisory_lock($1)", OWNER_LOCK_ID)
        if not taken:
            owner = await conn.fetchrow(
                "SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = $1 AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                OWNER_LOCK_ID)
            holder = (f" (its connection: backend pid {owner['pid']} from {owner['client_addr'] or 'a local socket'}, "
                      f"since {owner['backend_start']:%Y-%m-%d %H:%M:%S})") if owner else ""
            raise DatabaseInUse(f"another ranvier process is serving this PostgreSQL database{holder}; one process "
                                "per database: stop it first")
    except BaseException:
        await conn.close()
        raise
    return DatabaseLock(conn.close)
