"""`storage.engine.any_of`: a column tested against any number of strings through one parameter,
on both engines, with the same statement text whatever the count."""

from __future__ import annotations

import pytest

from ranvier.storage.engine import any_of, open_database


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
