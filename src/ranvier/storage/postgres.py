"""The PostgreSQL engine on an asyncpg pool.

SQL is written with `?` placeholders for both engines; here they become `$1, $2, ...`.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, AsyncIterator, Awaitable, Sequence

import asyncpg

from ranvier.metrics import DB_READ, DB_TRANSACTION
from ranvier.storage.engine import Database, Row, Statement, Transaction, UniqueViolation

_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=4096)
def to_postgres(sql: str) -> str:
    """Rewrite `?` placeholders as numbered ones."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _rowcount(status: str) -> int:
    """asyncpg returns a command tag such as 'UPDATE 3' or 'INSERT 0 1'."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def to_literal(value: Any) -> str:
    """`value` as an SQL literal, for writes sent as one script (no parameters there).

    Connections are opened with standard_conforming_strings on, so doubling quotes is the
    whole escaping of a string; a NUL, which PostgreSQL text cannot hold, is refused.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("PostgreSQL text cannot hold a NUL character")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(value).hex() + "'::bytea"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def with_literals(sql: str, args: Sequence[Any]) -> str:
    """`sql` with each `?` replaced by the literal of the next argument."""
    values = iter(args)
    return _PLACEHOLDER.sub(lambda _: to_literal(next(values)), sql)


class _PostgresTransaction(Transaction):
    """Writes whose results nobody reads (executemany, execute_batch) wait in a script that
    goes out with the next statement that must answer, or with COMMIT: storing an event is
    one round trip instead of one per statement, and every trip is a chance for a busy
    event loop to keep the transaction (and the room) waiting."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._script: list[str] = ["BEGIN"]
        self._open = False  # BEGIN has reached the server, COMMIT has not

    async def flush(self, *, commit: bool = False) -> None:
        """Send the waiting writes (and COMMIT) in one round trip."""
        if commit and not self._open and self._script == ["BEGIN"]:
            self._script = []  # nothing was written
        elif commit:
            self._script.append("COMMIT")
        if not self._script:
            return
        script, self._script = ";\n".join(self._script), []
        self._open = self._open or script.startswith("BEGIN")
        await _unique_violation_as_ours(self._conn.execute(script))
        self._open = not commit

    async def abandon(self) -> None:
        """Drop the waiting writes and roll back what the server has seen."""
        self._script = []
        if self._open:
            self._open = False
            await self._conn.execute("ROLLBACK")

    async def execute(self, sql: str, *args: Any) -> int:
        await self.flush()
        return _rowcount(await _unique_violation_as_ours(self._conn.execute(to_postgres(sql), *args)))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._script += [with_literals(sql, row) for row in rows]

    async def execute_batch(self, statements: Sequence[Statement]) -> None:
        for statement in statements:
            rows = statement.args if statement.many else [statement.args]
            self._script += [with_literals(statement.sql, row) for row in rows]

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        await self.flush()
        return await self._conn.fetch(to_postgres(sql), *args)


async def _unique_violation_as_ours(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(str(exc)) from None


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10) -> "PostgresDatabase":
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size,
                                         server_settings={"standard_conforming_strings": "on"})
        return cls(pool)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        started = time.perf_counter()
        try:
            return await self._pool.fetch(to_postgres(sql), *args)
        finally:
            DB_READ.observe(time.perf_counter() - started)

    def connections_in_use(self) -> int:
        return self._pool.get_size() - self._pool.get_idle_size()

    @asynccontextmanager
    async def transaction(self, *, wait_durable: bool = True) -> AsyncIterator[Transaction]:
        """PostgreSQL groups commits itself: the block's commit is durable when it returns."""
        started = time.perf_counter()
        async with self._pool.acquire() as conn:
            txn = _PostgresTransaction(conn)
            try:
                yield txn
                await txn.flush(commit=True)
            except BaseException:
                await txn.abandon()
                raise
        DB_TRANSACTION.observe(time.perf_counter() - started)
        txn.durable = asyncio.get_running_loop().create_future()
        txn.durable.set_result(None)

    async def close(self) -> None:
        await self._pool.close()
