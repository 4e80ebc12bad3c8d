"""`ranvier migrate-database`: copy a SQLite database into an empty PostgreSQL database.

The target gets the same schema first (the same migrations, so the same tables and
versions), then every table's rows are copied in batches with PostgreSQL's COPY, and at
the end the row count of every table is compared on both sides. Tables that a migration
makes with each engine's own features (the full-text index) hold what the engine derives
from other tables: they are not copied but rebuilt on the target by that migration's
fill step, once the rest is in. The server must be stopped (the caller holds the data
directory's lock): nothing may change underneath.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
import re
from typing import Callable

import asyncpg

from ranvier.storage.engine import open_database
from ranvier.storage.migrations import Migration, Schema, apply_migrations

BATCH_ROWS = 5_000
#: Rows of these tables are written by the migrations themselves.
_SCHEMA_TABLES = {"schema_versions"}


_CREATED_TABLE = re.compile(r"CREATE\s+(?:VIRTUAL\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def _engine_specific(schemas: list[Schema]) -> tuple[set[str], list[Migration]]:
    """The tables made by migrations with a script per engine (with SQLite's shadow tables
    of virtual ones, `name_*`), and those migrations, whose fill steps rebuild them; not
    those whose tables hold the same rows on both engines (`same_rows`), which are copied."""
    tables: set[str] = set()
    migrations = []
    for schema in schemas:
        for migration in schema.migrations:
            if isinstance(migration.sql, str) or migration.same_rows:
                continue
            migrations.append(migration)
            for script in migration.sql.values():
                tables.update(_CREATED_TABLE.findall(script))
    return tables, migrations


def _is_rebuilt(table: str, rebuilt: set[str]) -> bool:
    return table in rebuilt or any(table.startswith(f"{name}_") for name in rebuilt)


class TransferError(RuntimeError):
    """The copy cannot be done or did not match; the message says why."""


@dataclass
class TableCount:
    table: str
    source: int
    target: int


def _sqlite_tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every ordinary table with its columns (virtual tables and their shadows excluded)."""
    tables = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"):
        tables[name] = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')]
    return tables


async def _postgres_tables(conn: asyncpg.Connection) -> dict[str, list[str]]:
    rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")
    tables: dict[str, list[str]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], []).append(row["column_name"])
    return tables


async def migrate(sqlite_path: str, postgres_url: str, schemas: list[Schema],
                  progress: Callable[[int, int], None] | None = None) -> list[TableCount]:
    """Copy every row; `progress(rows_done_now, rows_total)` is called per batch. Returns
    the per-table counts, after checking that they match (TransferError otherwise)."""
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        versions = dict(source.execute("SELECT component, version FROM schema_versions").fetchall())
        if versions != {schema.component: schema.latest for schema in schemas}:
            raise TransferError("the SQLite database's schema is not this ranvier's: start this version of "
                                "ranvier on it once (it migrates at start), stop it, then migrate")
        conn = await asyncpg.connect(postgres_url)
        try:
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM information_schema.tables "
                                   "WHERE table_schema = current_schema())"):
                raise TransferError("the PostgreSQL database is not empty (it has tables); migrate into a new database")
        finally:
            await conn.close()
        target_db = await open_database(postgres_url, pool_size=1)
        try:
            await apply_migrations(target_db, schemas)
        finally:
            await target_db.close()
        rebuilt, rebuilders = _engine_specific(schemas)
        conn = await asyncpg.connect(postgres_url)
        try:
            counts = await _copy(source, conn, progress, rebuilt)
        finally:
            await conn.close()
        target_db = await open_database(postgres_url, pool_size=1)
        try:
            async with target_db.transaction() as txn:
                for migration in rebuilders:
                    if migration.fill is not None:
                        await migration.fill(txn, target_db.dialect)
        finally:
            await target_db.close()
        return counts
    finally:
        source.close()


async def _copy(source: sqlite3.Connection, conn: asyncpg.Connection,
                progress: Callable[[int, int], None] | None, rebuilt: set[str]) -> list[TableCount]:
    source_tables = {name: columns for name, columns in _sqlite_tables(source).items()
                     if not _is_rebuilt(name, rebuilt)}
    target_tables = await _postgres_tables(conn)
    missing = sorted(set(source_tables) - set(target_tables) - _SCHEMA_TABLES)
    if missing:
        raise TransferError(f"tables missing in PostgreSQL: {', '.join(missing)}")
    tables = [name for name in source_tables if name not in _SCHEMA_TABLES]
    totals = {table: source.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}
    grand_total = sum(totals.values())
    async with conn.transaction():
        for table in tables:
            # The target was empty before its migrations: rows there now were seeded by them
            # (stream positions and the like), and the source's own rows replace them.
            await conn.execute(f'DELETE FROM "{table}"')
            columns = [column for column in source_tables[table] if column in target_tables[table]]
            quoted = ", ".join(f'"{column}"' for column in columns)
            cursor = source.execute(f'SELECT {quoted} FROM "{table}"')
            while batch := cursor.fetchmany(BATCH_ROWS):
                try:
                    await conn.copy_records_to_table(table, records=batch, columns=columns)
                except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise TransferError(f"table {table}: PostgreSQL refused a row ({exc}); nothing was kept") from None
                if progress is not None:
                    progress(len(batch), grand_total)
    counts = [TableCount(table, totals[table], await conn.fetchval(f'SELECT COUNT(*) FROM "{table}"'))
              for table in tables]
    wrong = [count for count in counts if count.source != count.target]
    if wrong:
        raise TransferError("row counts differ: " + ", ".join(f"{c.table} {c.source} -> {c.target}" for c in wrong))
    return counts
