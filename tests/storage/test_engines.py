"""The two engines behave the same: transactions, isolation, concurrency, migrations."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from ranvier.storage.engine import DatabaseURLError, open_database, split_statements
from ranvier.storage.migrations import Migration, Schema, SchemaTooNewError, apply_migrations
from ranvier.storage.postgres import to_postgres


@pytest.fixture
async def db(database_url):
    database = await open_database(database_url)
    await database.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
    yield database
    await database.close()


async def test_commit_is_visible_to_readers(db):
    async with db.transaction() as txn:
        await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "a", 1)
        assert await txn.fetchval("SELECT v FROM kv WHERE k = ?", "a") == 1
    assert await db.fetchval("SELECT v FROM kv WHERE k = ?", "a") == 1
    assert await db.fetchall("SELECT k, v FROM kv") == [("a", 1)] or [tuple(r) for r in await db.fetchall("SELECT k, v FROM kv")] == [("a", 1)]


async def test_error_rolls_back_everything(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "a", 1)
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT COUNT(*) FROM kv") == 0


async def test_uncommitted_writes_are_invisible_to_readers(db):
    async with db.transaction() as txn:
        await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "a", 1)
        assert await db.fetchval("SELECT COUNT(*) FROM kv") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM kv") == 1


async def test_concurrent_read_modify_write_transactions_lose_nothing(db):
    await db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "counter", 0)

    async def increment():
        async with db.transaction() as txn:
            if db.dialect == "postgresql":
                value = await txn.fetchval("SELECT v FROM kv WHERE k = ? FOR UPDATE", "counter")
            else:
                value = await txn.fetchval("SELECT v FROM kv WHERE k = ?", "counter")
            await asyncio.sleep(0)
            await txn.execute("UPDATE kv SET v = ? WHERE k = ?", value + 1, "counter")

    await asyncio.gather(*(increment() for _ in range(50)))
    assert await db.fetchval("SELECT v FROM kv WHERE k = ?", "counter") == 50


async def test_executemany_and_rowcount(db):
    async with db.transaction() as txn:
        await txn.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [(f"k{i}", i) for i in range(100)])
        changed = await txn.execute("UPDATE kv SET v = v + 1 WHERE v >= ?", 50)
    assert changed == 50
    assert await db.fetchval("SELECT SUM(v) FROM kv") == sum(range(100)) + 50


async def test_fetchone_of_nothing_is_none(db):
    assert await db.fetchone("SELECT k FROM kv WHERE k = ?", "missing") is None
    assert await db.fetchval("SELECT k FROM kv WHERE k = ?", "missing") is None


async def test_unknown_database_url_is_refused():
    with pytest.raises(DatabaseURLError):
        await open_database("mysql://somewhere")


SCHEMA_V1 = Schema("widgets", (Migration(1, "widgets", "CREATE TABLE widgets (id TEXT PRIMARY KEY);"),))
SCHEMA_V2 = Schema(
    "widgets",
    SCHEMA_V1.migrations + (Migration(2, "colour", "ALTER TABLE widgets ADD COLUMN colour TEXT;\nCREATE INDEX widgets_colour ON widgets (colour);"),),
)


async def test_migrations_apply_once_and_record_the_version(database_url):
    db = await open_database(database_url)
    try:
        assert await apply_migrations(db, [SCHEMA_V1]) == {"widgets": 1}
        assert await apply_migrations(db, [SCHEMA_V1]) == {"widgets": 0}
        assert await apply_migrations(db, [SCHEMA_V2]) == {"widgets": 1}
        await db.execute("INSERT INTO widgets (id, colour) VALUES (?, ?)", "w", "blue")
        assert await db.fetchval("SELECT version FROM schema_versions WHERE component = ?", "widgets") == 2
    finally:
        await db.close()


async def test_concurrent_migration_runs_are_harmless(database_url):
    dbs = [await open_database(database_url) for _ in range(2)]
    try:
        await asyncio.gather(*(apply_migrations(db, [SCHEMA_V2]) for db in dbs))
        assert await dbs[0].fetchval("SELECT version FROM schema_versions WHERE component = ?", "widgets") == 2
    finally:
        for db in dbs:
            await db.close()


async def test_a_database_newer_than_the_code_is_refused(database_url):
    db = await open_database(database_url)
    try:
        await apply_migrations(db, [SCHEMA_V2])
        with pytest.raises(SchemaTooNewError, match="version 2"):
            await apply_migrations(db, [SCHEMA_V1])
    finally:
        await db.close()


async def test_a_failing_migration_leaves_nothing_behind(database_url):
    broken = Schema("widgets", SCHEMA_V1.migrations + (
        Migration(2, "half good", "CREATE TABLE gadgets (id TEXT);\nCREATE TABLE widgets (id TEXT);"),))
    db = await open_database(database_url)
    try:
        with pytest.raises(Exception, match="widgets"):
            await apply_migrations(db, [broken])
        assert await apply_migrations(db, [SCHEMA_V2]) == {"widgets": 2}  # version 1 was not recorded either
        await db.execute("CREATE TABLE gadgets (id TEXT)")
    finally:
        await db.close()


CANCELLED_READS_THEN_CLOSE = """
import asyncio, sys
from ranvier.storage.engine import open_database

async def main():
    for _ in range(20):
        db = await open_database(sys.argv[1])

        async def reader():
            while True:
                await db.fetchall("SELECT 1 UNION ALL SELECT 2")

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        await asyncio.sleep(0.01)
        for task in readers:
            task.cancel()
        await db.close()

asyncio.run(main())
"""


def test_closing_waits_for_reads_whose_callers_were_cancelled(database_url):
    """Background tasks cancelled at shutdown leave their queries running; closing the
    connections under them crashed the process (in a child here, so a crash fails one test)."""
    child = subprocess.run([sys.executable, "-c", CANCELLED_READS_THEN_CLOSE, database_url],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]


def test_migrations_must_be_numbered_without_gaps():
    with pytest.raises(ValueError):
        Schema("bad", (Migration(2, "two", "SELECT 1;"),))


def test_placeholders_become_numbered_for_postgres():
    assert to_postgres("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"


def test_scripts_split_on_statement_ends():
    assert split_statements("CREATE TABLE a (x TEXT);\nCREATE INDEX i\n ON a (x);\n") == [
        "CREATE TABLE a (x TEXT);",
        "CREATE INDEX i\n ON a (x);",
    ]


async def test_a_failing_transaction_among_concurrent_ones_loses_only_itself(db):
    async def write(i):
        async with db.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", f"k{i}", i)
            await asyncio.sleep(0)
            if i == 5:
                raise ValueError("this one fails")

    results = await asyncio.gather(*(write(i) for i in range(10)), return_exceptions=True)
    assert [type(r) for r in results].count(ValueError) == 1
    rows = await db.fetchall("SELECT k FROM kv ORDER BY v")
    assert [row[0] for row in rows] == [f"k{i}" for i in range(10) if i != 5]


async def test_a_transaction_cancelled_after_its_writes_ran_leaves_nothing_of_them(db):
    """Its savepoint is still there to roll back to: a transaction's savepoint is released
    only when the next one begins."""
    async with db.transaction() as txn:
        await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "before", 1)
    written = asyncio.Event()

    async def cancelled():
        async with db.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "gone", 2)
            written.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(cancelled())
    await written.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.transaction() as txn:
        await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "after", 3)
    rows = await db.fetchall("SELECT k FROM kv ORDER BY v")
    assert [row[0] for row in rows] == ["before", "after"]


async def test_a_failed_transaction_alone_leaves_the_database_writable_by_others(db, database_url):
    with pytest.raises(ValueError):
        async with db.transaction() as txn:
            await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "lost", 1)
            raise ValueError("fail")
    await asyncio.sleep(0.05)
    other = await open_database(database_url)
    try:
        await asyncio.wait_for(other.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "other", 2), timeout=5)
        assert await other.fetchval("SELECT COUNT(*) FROM kv") == 1
    finally:
        await other.close()


async def test_a_transaction_that_fails_before_writing_anything_leaves_no_trace(db):
    with pytest.raises(RuntimeError):
        async with db.transaction():
            raise RuntimeError("before any statement")
    async with db.transaction() as txn:
        await txn.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [("after", 1)])
    assert await db.fetchval("SELECT v FROM kv WHERE k = ?", "after") == 1


async def test_unique_violation_is_the_same_on_both_engines(db):
    from ranvier.storage.engine import UniqueViolation

    await db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "dup", 1)
    for write in ("execute", "executemany"):
        with pytest.raises(UniqueViolation):
            async with db.transaction() as txn:
                if write == "execute":
                    await txn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "dup", 2)
                else:
                    await txn.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [("new", 3), ("dup", 2)])
    assert await db.fetchall("SELECT k, v FROM kv ORDER BY k") in ([("dup", 1)], [tuple(r) for r in []]) or \
        [tuple(r) for r in await db.fetchall("SELECT k, v FROM kv ORDER BY k")] == [("dup", 1)]


AWKWARD_TEXTS = ["it's", "back\\slash", "\\x41", "$1 ? $$ ;", "line\nbreak", "émoji 🦀", "'; DROP TABLE kv; --", ""]


async def test_every_kind_of_value_survives_a_batch(db):
    """On PostgreSQL batches travel as one script of literals: quoting must be exact."""
    from ranvier.storage.engine import Statement

    await db.execute("CREATE TABLE awkward (i BIGINT, t TEXT, b BLOB_OR_BYTEA, n TEXT)".replace(
        "BLOB_OR_BYTEA", "BYTEA" if db.dialect == "postgresql" else "BLOB"))
    rows = [(i, text, text.encode() + b"\x00\xff", None) for i, text in enumerate(AWKWARD_TEXTS)]
    rows.append((-(2**53) + 1, "big", b"", None))
    async with db.transaction() as txn:
        await txn.execute_batch([Statement("INSERT INTO awkward (i, t, b, n) VALUES (?, ?, ?, ?)", rows, many=True)])
        assert await txn.fetchval("SELECT COUNT(*) FROM awkward") == len(rows), "reads see the batch"
    stored = [(row[0], row[1], bytes(row[2]), row[3]) for row in await db.fetchall("SELECT i, t, b, n FROM awkward")]
    assert sorted(stored) == sorted(rows)
    assert await db.fetchval("SELECT COUNT(*) FROM kv") == 0


async def test_a_late_unique_violation_undoes_the_whole_batch(db):
    from ranvier.storage.engine import Statement, UniqueViolation

    await db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", "dup", 1)
    with pytest.raises(UniqueViolation):
        async with db.transaction() as txn:
            await txn.execute_batch([
                Statement("INSERT INTO kv (k, v) VALUES (?, ?)", ("first", 1)),
                Statement("UPDATE kv SET v = ? WHERE k = ?", (7, "dup")),
                Statement("INSERT INTO kv (k, v) VALUES (?, ?)", [("second", 2), ("dup", 3)], many=True),
            ])
    assert [tuple(r) for r in await db.fetchall("SELECT k, v FROM kv")] == [("dup", 1)]
    async with db.transaction() as txn:  # the connection went back to the pool clean
        await txn.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [("after", 2)])
    assert await db.fetchval("SELECT COUNT(*) FROM kv") == 2


def test_postgres_literals_refuse_what_text_cannot_hold():
    from ranvier.storage.postgres import to_literal, with_literals

    assert with_literals("VALUES (?, ?, ?, ?)", ("it's", None, True, b"\x01")) == \
        "VALUES ('it''s', NULL, TRUE, '\\x01'::bytea)"
    with pytest.raises(ValueError):
        to_literal("nul\x00")
    with pytest.raises(TypeError):
        to_literal(object())
