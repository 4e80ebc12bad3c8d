"""The compact notification rows migration: the room's and the members' rows of the
third schema move to the compact tables, their actions numbered once per distinct list
(rows from before actions were stored get what their notify and highlight said)."""

from __future__ import annotations

from ranvier.push.schema import SCHEMA as PUSH_SCHEMA
from ranvier.storage.engine import open_database
from ranvier.storage.migrations import Schema, apply_migrations

SOUND = '["notify",{"set_tweak":"sound","value":"default"}]'


async def test_rows_move_to_the_compact_tables(database_url):
    db = await open_database(database_url)
    try:
        await apply_migrations(db, [Schema("push", PUSH_SCHEMA.migrations[:3])])
        async with db.transaction() as txn:
            await txn.executemany(
                "INSERT INTO push_notifications (stream_ordering, room_id, event_id, sender, thread_id, notify, "
                "highlight, actions, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(5, "!r:hs", "$five", "@bob:hs", "main", 1, 0, SOUND, 1000),
                 (6, "!r:hs", "$six", "@bob:hs", "$root", 1, 0, SOUND, 1001)])
            await txn.executemany(
                "INSERT INTO event_push_actions (room_id, user_id, stream_ordering, event_id, notify, highlight, "
                "thread_id, actions, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [("!r:hs", "@alice:hs", 5, "$five", 1, 1, "main", None, None),
                 ("!r:hs", "@carol:hs", 6, "$six", 0, 0, "$root", "[]", 1001)])

        assert await apply_migrations(db, [PUSH_SCHEMA]) == {"push": 1}  # migrations applied

        sets = dict(await db.fetchall("SELECT actions_id, actions FROM push_action_sets"))
        assert sorted(sets.values()) == sorted([SOUND, "[]", '["notify",{"set_tweak":"highlight"}]'])
        rooms = await db.fetchall("SELECT room_id, stream_ordering, thread_id, notify, highlight, actions_id "
                                  "FROM room_notifications ORDER BY stream_ordering")
        assert [(r[:5], sets[r[5]]) for r in rooms] == [(("!r:hs", 5, "main", 1, 0), SOUND),
                                                        (("!r:hs", 6, "$root", 1, 0), SOUND)]
        members = await db.fetchall("SELECT user_id, room_id, stream_ordering, thread_id, notify, highlight, "
                                    "actions_id FROM member_notifications ORDER BY stream_ordering")
        assert [(m[:6], sets[m[6]]) for m in members] == [
            (("@alice:hs", "!r:hs", 5, "main", 1, 1), '["notify",{"set_tweak":"highlight"}]'),
            (("@carol:hs", "!r:hs", 6, "$root", 0, 0), "[]")]
        assert await db.fetchval("SELECT version FROM schema_versions WHERE component = 'push'") == 4
    finally:
        await db.close()
