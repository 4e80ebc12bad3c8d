"""The PostgreSQL engine on an asyncpg pool.

SQL is written with `?` placeholders for both engines; here they become `$1, $2, ...`.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, AsyncIterator, Sequence

import asyncpg

from ranvier.storage.engine import Database, Row, Transaction, UniqueViolation

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


class _PostgresTransaction(Transaction):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return _rowcount(await self._conn.execute(to_postgres(sql), *args))
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from None

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            try:
                await self._conn.executemany(to_postgres(sql), rows)
            except asyncpg.UniqueViolationError as exc:
                raise UniqueViolation(str(exc)) from None

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return await self._conn.fetch(to_postgres(sql), *args)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10) -> "PostgresDatabase":
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size)
        return cls(pool)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return await self._pool.fetch(to_postgres(sql), *args)

    @asynccontextmanager
    async def transaction(self, *, wait_durable: bool = True) -> AsyncIterator[Transaction]:
        """PostgreSQL groups commits itself: the block's commit is durable when it returns."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                txn = _PostgresTransaction(conn)
                yield txn
        txn.durable = asyncio.get_running_loop().create_future()
        txn.durable.set_result(None)

    async def close(self) -> None:
        await self._pool.close()
