"""The embedded SQLite engine: WAL mode, one writer thread, a few reader threads.

All writes go through a single connection owned by one thread, so they are serialised
without blocking the event loop; readers use their own connections and see the last
committed state (WAL lets them run while the writer writes).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

from ranvier.storage.engine import Database, Row, Transaction

_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _connect(path: str, synchronous: str, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


class _SqliteTransaction(Transaction):
    def __init__(self, db: "SqliteDatabase") -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._db._on_writer(lambda c: c.execute(sql, args).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db._on_writer(lambda c: c.executemany(sql, rows))

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return await self._db._on_writer(lambda c: c.execute(sql, args).fetchall())


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str, readers: int, synchronous: str) -> None:
        if synchronous.upper() not in _SYNCHRONOUS_MODES:
            raise ValueError(f"sqlite synchronous must be one of {', '.join(_SYNCHRONOUS_MODES)}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(max_workers=max(1, readers), thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._writer_conn: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, readers: int = 4, synchronous: str = "FULL") -> "SqliteDatabase":
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = cls(path, readers, synchronous)
        db._writer_conn = await asyncio.get_running_loop().run_in_executor(
            db._writer_pool, lambda: _connect(path, db._synchronous, readonly=False)
        )
        return db

    async def _on_writer(self, fn):
        conn = self._writer_conn
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, fn, conn)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self._synchronous, readonly=True)
            self._local.conn = conn
            self._reader_conns.append(conn)
        return conn

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        def run() -> list[Row]:
            return self._reader().execute(sql, args).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, run)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._write_lock:
            await self._on_writer(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTransaction(self)
            except BaseException:
                await asyncio.shield(self._on_writer(lambda c: c.execute("ROLLBACK")))
                raise
            await asyncio.shield(self._on_writer(lambda c: c.execute("COMMIT")))

    async def close(self) -> None:
        def close_readers() -> None:
            for conn in self._reader_conns:
                conn.close()

        await asyncio.get_running_loop().run_in_executor(self._reader_pool, close_readers)
        if self._writer_conn is not None:
            await self._on_writer(lambda c: c.close())
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)
