"""`storage.engine.any_of`, `rows_of` and `tuples_of`: a column tested against, or a table made
of, any number of strings (or rows of strings) through one parameter per column, on both
engines, with the same statement text whatever the count."""

from __future__ import annotations

import pytest

from ranvier.storage.engine import any_of, open_database, rows_of, tuples_of


@pytest.fixture
async def db(database_url):
    database = await open_database(database_url)
    await database.execute("CREATE TABLE people (name TEXT PRIMARY KEY)")
    async with database.transaction() as txn:
        await txn.executemany("INSERT INTO people (name) VALUES (?)", [(f"@u{i}:hs",) for i in range(1_200)])
    yield database
    await database.close()


@pytest.mark.parametrize("count", [0, 1, 499, 1_200])
async def test_every_listed_value_is_found_and_nothing_else(db, count):
    wanted = [f"@u{i}:hs" for i in range(count)] + ["@absent:hs", 'quote " and \\ backslash']
    condition, parameter = any_of(db, wanted)
    rows = await db.fetchall(f"SELECT name FROM people WHERE name {condition}", parameter)
    assert sorted(row[0] for row in rows) == sorted(wanted[:count])


def test_the_statement_text_does_not_depend_on_the_count():
    class Sqlite:
        dialect = "sqlite"

    texts = {any_of(Sqlite(), [f"@u{i}:hs" for i in range(count)])[0] for count in (1, 7, 500, 2_000)}
    assert len(texts) == 1


@pytest.mark.parametrize("count", [1, 2, 1_200])
async def test_a_table_of_the_values_joins_like_any_other(db, count):
    wanted = [f"@u{i}:hs" for i in range(count)] + ["@absent:hs"]
    query, parameter = rows_of(db, wanted)
    rows = await db.fetchall(
        f"WITH wanted(name) AS ({query}) SELECT p.name FROM wanted w JOIN people p ON p.name = w.name", parameter)
    assert sorted(row[0] for row in rows) == sorted(wanted[:count])


@pytest.mark.parametrize("count", [0, 1, 700])
async def test_rows_of_several_columns_match_whole_rows(db, count):
    await db.execute("CREATE TABLE pairs (a TEXT, b TEXT, PRIMARY KEY (a, b))")
    async with db.transaction() as txn:
        await txn.executemany("INSERT INTO pairs (a, b) VALUES (?, ?)", [(f"a{i}", f"b{i}") for i in range(800)])
    wanted = [(f"a{i}", f"b{i}") for i in range(count)] + [("a1", "b2"), ('q"', "\\")]
    query, parameters = tuples_of(db, wanted, 2)
    async with db.transaction() as txn:
        removed = await txn.fetchall(f"DELETE FROM pairs WHERE (a, b) IN ({query}) RETURNING a, b", *parameters)
    assert sorted(tuple(row) for row in removed) == sorted(wanted[:count]), "only whole rows match"
    assert await db.fetchval("SELECT COUNT(*) FROM pairs") == 800 - count
