"""The embedded SQLite engine: WAL mode, one writer thread, a few reader threads.

All writes go through a single connection owned by one thread, so they are serialised
without blocking the event loop; readers use their own connections and see the last
committed state (WAL lets them run while the writer writes).

Group commit: each transaction runs as a savepoint inside a shared SQLite transaction,
and one COMMIT (one fsync) makes every transaction queued at that moment durable
together. A transaction's block returns only after that COMMIT, so nothing is reported
done before it is on disk; a failing transaction rolls back its own savepoint only.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Sequence

from ranvier.metrics import DB_READ, DB_TRANSACTION
from ranvier.storage.engine import Database, Row, Statement, Transaction, UniqueViolation

_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: A group commit waits until no new transaction joined for this long (seconds) ...
_GROUP_IDLE = 0.0005
#: ... but never longer than this, so a busy writer still commits often.
_GROUP_MAX_WAIT = 0.005
#: Page cache of each reader connection, in KiB (the writer keeps SQLite's default, 2 MiB).
_READER_CACHE_KIB = 1024


def _connect(path: str, synchronous: str, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
        # A reader's page cache is emptied whenever another connection wrote, which is most
        # of the time on a busy server: 1 MiB each rather than the default 2 MiB.
        conn.execute(f"PRAGMA cache_size=-{_READER_CACHE_KIB}")
    return conn


class _SqliteTransaction(Transaction):
    """Writes whose result nobody reads (executemany, execute_batch) are queued and sent
    to the writer thread together with the next statement that needs an answer, or at
    the end of the transaction: most transactions cost one trip to the writer thread."""

    def __init__(self, db: "SqliteDatabase", opening: list[str]) -> None:
        self._db = db
        self._queued: list[Statement] = [Statement(sql) for sql in opening]

    def _run(self, fn):
        queued, self._queued = self._queued, []

        def run(conn: sqlite3.Connection):
            for statement in queued:
                if statement.many:
                    conn.executemany(statement.sql, statement.args)
                else:
                    conn.execute(statement.sql, statement.args)
            return fn(conn) if fn is not None else None

        return self._db._on_writer(run)

    async def execute(self, sql: str, *args: Any) -> int:
        with _unique_violation():
            return await self._run(lambda c: c.execute(sql, args).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._queued.append(Statement(sql, rows, many=True))

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        with _unique_violation():
            return await self._run(lambda c: c.execute(sql, args).fetchall())

    async def execute_batch(self, statements: Sequence[Statement]) -> None:
        self._queued.extend(s for s in statements if not s.many or s.args)

    async def flush(self) -> None:
        if self._queued:
            with _unique_violation():
                await self._run(None)


@contextmanager
def _unique_violation():
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
            raise UniqueViolation(str(exc)) from None
        raise


def _rollback_to(conn: sqlite3.Connection, name: str) -> None:
    if conn.in_transaction:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")


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
        self._in_group = False
        self._group: list[asyncio.Future] = []
        self._commit_scheduled = False
        self._commit_task: asyncio.Future | None = None
        self._savepoints = 0
        self._reads_running = 0
        #: The savepoint of the last transaction that succeeded, released by the next one.
        self._unreleased: str | None = None

    @classmethod
    async def open(cls, path: str, *, readers: int = 4, synchronous: str = "FULL") -> "SqliteDatabase":
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
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

        started = time.perf_counter()
        self._reads_running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_pool, run)
        finally:
            self._reads_running -= 1
            DB_READ.observe(time.perf_counter() - started)

    def connections_in_use(self) -> int:
        return min(self._reads_running, self._reader_pool._max_workers) + int(self._write_lock.locked())

    @asynccontextmanager
    async def transaction(self, *, wait_durable: bool = True) -> AsyncIterator[Transaction]:
        """A savepoint in the current group. Transactions run one at a time, so rolling back
        to a failed transaction's savepoint undoes nothing of the transactions before it.
        A successful transaction's savepoint stays until the next transaction begins (a
        block cancelled after its writes ran can still roll them back), which releases it;
        the group's COMMIT releases the last. Nested savepoints are costly: SQLite keeps
        the pages each one changes for a rollback, and FTS5 writes its pending rows at
        every savepoint, so leaving a group's savepoints nested tripled the cost of an
        event with a search index row."""
        started = time.perf_counter()
        async with self._write_lock:
            opening = [] if self._in_group else ["BEGIN IMMEDIATE"]
            if self._unreleased is not None:
                opening.append(f"RELEASE {self._unreleased}")
            self._in_group = True
            self._savepoints += 1
            name = f"t{self._savepoints}"
            txn = _SqliteTransaction(self, opening + [f"SAVEPOINT {name}"])
            try:
                yield txn
                await txn.flush()
            except BaseException:
                if not txn._queued:  # the savepoint exists (and the last one is released) once something was sent
                    self._unreleased = None
                    await asyncio.shield(self._on_writer(lambda c: _rollback_to(c, name)))
                self._schedule_commit()
                raise
            self._unreleased = name
            txn.durable = asyncio.get_running_loop().create_future()
            self._group.append(txn.durable)
            self._schedule_commit()
        DB_TRANSACTION.observe(time.perf_counter() - started)
        if wait_durable:
            await txn.durable

    def _schedule_commit(self) -> None:
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._commit_task = asyncio.ensure_future(self._commit_group())

    async def _commit_group(self) -> None:
        """Commit once transactions stop arriving (briefly), so one fsync serves them all.

        The writer lock is fair, so queueing for it behind waiting transactions lets them
        join this group too; a transaction arriving later waits for the next one.
        """
        loop = asyncio.get_running_loop()
        started, joined = loop.time(), -1
        while joined != len(self._group) and loop.time() - started < _GROUP_MAX_WAIT:
            joined = len(self._group)
            await asyncio.sleep(_GROUP_IDLE)
        async with self._write_lock:
            self._commit_scheduled = False
            group, self._group = self._group, []
            try:
                await self._on_writer(lambda c: c.execute("COMMIT") if c.in_transaction else None)
            except Exception as exc:  # handed to every transaction of the group
                await self._on_writer(lambda c: c.execute("ROLLBACK") if c.in_transaction else None)
                outcome: Exception | None = exc
            else:
                outcome = None
            finally:
                self._in_group = False
                self._savepoints = 0
                self._unreleased = None
            for future in group:
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)

    async def close(self) -> None:
        """Close the connections once nothing runs on them. A read whose caller was cancelled
        (a background task stopped with the server) still runs in its thread, and closing
        a connection under a running query crashes the process."""
        if self._commit_task is not None:
            await self._commit_task  # the last group commits before the connection closes
        await asyncio.to_thread(self._reader_pool.shutdown, wait=True)
        for conn in self._reader_conns:
            conn.close()
        if self._writer_conn is not None:
            await self._on_writer(lambda c: c.close())
        self._writer_pool.shutdown(wait=True)
