"""Numbered schema migrations, one sequence per service.

Each service owns its tables, so each keeps its own list of migrations (`SCHEMA` in its
`schema.py`) and its own version row in `schema_versions`. A migration and the bump of
its version commit together, which makes applying them twice harmless.

Most migrations are one SQL script for both engines. One that needs an engine's own
features (a full-text index) gives a script per dialect, and one that fills a new table
from existing rows gives a `fill` step: Python run after its SQL, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from ranvier.storage.engine import Database, Statement, Transaction, split_statements


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    #: One script, or one per dialect (`{"sqlite": ..., "postgresql": ...}`).
    sql: str | Mapping[str, str]
    #: fill(txn, dialect): work after the script, in the migration's transaction.
    fill: Callable[[Transaction, str], Awaitable[None]] | None = None
    #: With a script per engine: its tables hold the same rows on both (only their layout
    #: differs, like SQLite's WITHOUT ROWID), so `migrate-database` copies them rather
    #: than rebuilding them with `fill`.
    same_rows: bool = False

    def script(self, dialect: str) -> str:
        return self.sql if isinstance(self.sql, str) else self.sql[dialect]


@dataclass(frozen=True)
class Schema:
    """The migrations of one service, numbered 1, 2, 3, ... without gaps."""

    component: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"migrations of {self.component} must be numbered 1..n, got {numbers}")

    @property
    def latest(self) -> int:
        return len(self.migrations)


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer ranvier; refusing to touch it."""


_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)
"""


#: Any fixed number: PostgreSQL's advisory lock that makes concurrent starts queue up.
_MIGRATION_LOCK_ID = 7_251_004


async def apply_migrations(db: Database, schemas: list[Schema]) -> dict[str, int]:
    """Bring every schema up to date in one transaction; returns migrations applied per component.

    Two processes starting at once take turns (SQLite's write lock, PostgreSQL's advisory
    lock), so the second finds the work done.
    """
    async with db.transaction() as txn:
        if db.dialect == "postgresql":
            await txn.execute("SELECT pg_advisory_xact_lock(?)", _MIGRATION_LOCK_ID)
        await txn.execute(_VERSIONS_TABLE)
        rows = await txn.fetchall("SELECT component, version FROM schema_versions")
        current = {component: version for component, version in rows}
        for schema in schemas:
            have = current.get(schema.component, 0)
            if have > schema.latest:
                raise SchemaTooNewError(
                    f"the database's {schema.component} schema is version {have}, but this ranvier only "
                    f"knows up to {schema.latest}: upgrade ranvier or use another database"
                )
        applied: dict[str, int] = {}
        writes: list[Statement] = []  # sent together: one round trip, not one per statement
        for schema in schemas:
            have = current.get(schema.component, 0)
            pending = schema.migrations[have:]
            for migration in pending:
                writes += [Statement(sql) for sql in split_statements(migration.script(db.dialect))]
                if migration.fill is not None:
                    await txn.execute_batch(writes)
                    writes = []
                    await migration.fill(txn, db.dialect)
            applied[schema.component] = len(pending)
            if pending and have:
                writes.append(Statement("UPDATE schema_versions SET version = ? WHERE component = ?",
                                        (schema.latest, schema.component)))
            elif pending:
                writes.append(Statement("INSERT INTO schema_versions (component, version) VALUES (?, ?)",
                                        (schema.component, schema.latest)))
        await txn.execute_batch(writes)
    return applied
