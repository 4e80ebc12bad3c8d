"""The search's visibility SQL finds each row's room by comparing room IDs, so on every
engine the comparison must follow code points as Python sorts them, whatever the
database's collation (PostgreSQL's default is often a language's, where `!a` < `!B`)."""

from __future__ import annotations

import uuid

import asyncpg

from ranvier.search.access import access_sql, room_access
from ranvier.search.index import INDEXES
from ranvier.storage.engine import open_database

ROOMS = ["!AbC:x", "!abc:x", "!ZZZ:x", "!zed:x", "!Éa:x", "!ea:x", "!_q:x", "!9x:x", "!b-b:x", "!B_b:x",
         "!ß:x", "!Ω:x", "!ω:x", "!a:x", "!A:x", "!aa:x", "!Aa:x", "!m:y", "!M:y", "!~:x"]


async def test_rooms_are_found_whatever_the_collation(engine, tmp_path, request):
    if engine == "sqlite":
        url = f"sqlite:{tmp_path / 'order.db'}"
    else:
        base = request.getfixturevalue("postgres_server")
        name = "t_" + uuid.uuid4().hex[:16]
        conn = await asyncpg.connect(f"{base}/postgres")
        try:  # a language's collation (ICU's root locale) as the database's default
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
                               "ICU_LOCALE 'und' LOCALE 'C'")
        finally:
            await conn.close()
        url = f"{base}/{name}"
    db = await open_database(url)
    try:
        async with db.transaction() as txn:
            await txn.execute("CREATE TABLE search_events (room_id TEXT, stream_ordering BIGINT, visibility INTEGER)")
            await txn.executemany("INSERT INTO search_events VALUES (?, ?, 8)",
                                  [(room_id, position) for position, room_id in enumerate(ROOMS, 10)])
        searched = ROOMS[::2]
        condition, params = access_sql([room_access(room_id, [(1, "join")]) for room_id in searched],
                                       byte_order=INDEXES[db.dialect].byte_order)
        rows = await db.fetchall(f"SELECT s.room_id FROM search_events s WHERE {condition}", *params)
        assert sorted(row[0] for row in rows) == sorted(searched)
    finally:
        await db.close()
