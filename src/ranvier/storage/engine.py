"""The database interface every service writes its SQL against.

Services write SQL once, with `?` placeholders and types both engines share (TEXT,
INTEGER, BIGINT); each engine adapts it. Rows are indexable and unpackable tuples.
"""

from __future__ import annotations

import abc
import asyncio
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Sequence

Row = Sequence[Any]


class Queries(abc.ABC):
    """Statements that can run inside or outside a transaction."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetchall(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchone(sql, *args)
        return row[0] if row else None


def any_of(db: "Database", values: Sequence[str]) -> tuple[str, Any]:
    """`(condition, parameter)` that tests a column against any number of strings with one
    parameter: `= ANY(array)` on PostgreSQL, a JSON array read by `json_each` on SQLite.

    The statement's text is then the same for every count. Each connection caches each
    text it prepared, and an `IN` list of 500 placeholders is 113 KiB of SQLite's memory,
    once per reader: a key query for a thousand users left 1.8 MiB of such statements."""
    if db.dialect == "postgresql":
        return "= ANY(?::text[])", list(values)
    query, parameter = rows_of(db, values)
    return f"IN ({query})", parameter


def tuples_of(db: "Database", rows: Sequence[Sequence[str]], width: int) -> tuple[str, list[Any]]:
    """`(query, parameters)`: a query of these rows of `width` strings, one statement text
    for any count (as `any_of`), for `(a, b, ...) IN (query)`: the columns as arrays
    unnested together on PostgreSQL, a JSON array of arrays on SQLite."""
    if db.dialect == "postgresql":
        columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]
        return "SELECT * FROM unnest(" + ", ".join(["?::text[]"] * width) + ")", columns
    return ("SELECT " + ", ".join(f"value->>{i}" for i in range(width)) + " FROM json_each(?)",
            [json.dumps([list(row) for row in rows])])


def rows_of(db: "Database", values: Sequence[str]) -> tuple[str, Any]:
    """`(query, parameter)`: a one-column query of these strings, one parameter for any
    count (as `any_of`), for a `WITH wanted(x) AS (query)` that other tables join."""
    if db.dialect == "postgresql":
        return "SELECT unnest(?::text[])", list(values)
    return "SELECT value FROM json_each(?)", json.dumps(list(values))


@dataclass(frozen=True, slots=True)
class Statement:
    """One write of a batch: `args` are its parameters, or a list of parameter tuples if `many`."""

    sql: str
    args: Sequence[Any] = ()
    many: bool = False


class Transaction(Queries):
    """One atomic unit of writes; reads inside it see its own writes.

    `durable` completes once the transaction is on disk. By default the `transaction()`
    block waits for it; with `wait_durable=False` the block returns once the writes are
    done and the caller awaits `durable` itself (to release its own locks sooner).
    """

    durable: "asyncio.Future[None]"

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter tuple, in one round trip when possible."""

    async def execute_batch(self, statements: Sequence["Statement"]) -> None:
        """Run several writes in order; engines that can do it in one round trip do."""
        for statement in statements:
            if statement.many:
                await self.executemany(statement.sql, statement.args)
            else:
                await self.execute(statement.sql, *statement.args)


class Database(Queries):
    """An engine: reads run concurrently, writes go through `transaction()` one at a time."""

    dialect: str

    @abc.abstractmethod
    def transaction(self, *, wait_durable: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """Begin a write transaction; it commits when the block exits normally."""

    async def execute(self, sql: str, *args: Any) -> int:
        """A single write in a transaction of its own."""
        async with self.transaction() as txn:
            return await txn.execute(sql, *args)

    @abc.abstractmethod
    def connections_in_use(self) -> int:
        """Connections busy now (a metric: pool use)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class UniqueViolation(Exception):
    """A write broke a unique constraint; the same on every engine, so services can react."""


class DatabaseURLError(ValueError):
    """The database setting is not `sqlite:PATH` or `postgresql://...`."""


async def open_database(url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL") -> Database:
    """Open the engine named by `url`; only the chosen engine's driver is imported."""
    if url.startswith("sqlite:"):
        from ranvier.storage.sqlite import SqliteDatabase

        return await SqliteDatabase.open(url[len("sqlite:"):], readers=min(pool_size, 4), synchronous=sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        from ranvier.storage.postgres import PostgresDatabase

        return await PostgresDatabase.open(url, pool_size=pool_size)
    raise DatabaseURLError("database must be sqlite:PATH or postgresql://USER@HOST:PORT/DB")


def split_statements(script: str) -> list[str]:
    """Split a DDL script on `;` at line ends (our migrations never put `;` inside literals)."""
    statements, current = [], []
    for line in script.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if statement.strip(";").strip():
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements
