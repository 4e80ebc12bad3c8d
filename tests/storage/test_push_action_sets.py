"""A new list of push actions may be stored by many concurrent transactions at once (sends
to different rooms commit concurrently on PostgreSQL): none of them fails."""

from __future__ import annotations

import asyncio

from ranvier.push.schema import SCHEMA as PUSH_SCHEMA
from ranvier.push.store import PushStore
from ranvier.storage.engine import open_database
from ranvier.storage.migrations import apply_migrations


async def test_the_same_new_list_stored_by_concurrent_transactions(database_url):
    db = await open_database(database_url)
    try:
        await apply_migrations(db, [PUSH_SCHEMA])
        for round_number in range(1, 21):
            actions = f'["notify",{{"set_tweak":"sound","value":"s{round_number}"}}]'

            async def store(room_number: int) -> None:
                async with db.transaction() as txn:
                    await PushStore.insert(txn, [(round_number, actions)],
                                           [(f"!r{room_number}:hs", round_number, "main", 1, 0, round_number)], [])

            await asyncio.gather(*(store(room_number) for room_number in range(8)))
        sets = await db.fetchall("SELECT actions_id, actions FROM push_action_sets ORDER BY actions_id")
        assert [row[0] for row in sets] == list(range(1, 21))
        assert await db.fetchval("SELECT COUNT(*) FROM room_notifications") == 20 * 8
    finally:
        await db.close()
