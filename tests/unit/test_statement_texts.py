"""Reads over lists of rooms, events or users keep one statement text whatever the list's
length: every connection keeps each text it prepared (a list of placeholders is a new
statement of 30 to 125 KiB for each length), so texts that vary with the count fill the
statement caches of the writer and every reader."""

from __future__ import annotations

import pytest

from ranvier.push.store import PushStore
from ranvier.rooms.graph_store import GraphQueries
from ranvier.rooms.relations_store import RelationQueries
from ranvier.rooms.store import RoomStore
from ranvier.rooms.sync_queries import SyncQueries
from ranvier.sync.receipts_store import ReceiptStore
from ranvier.users.personal_store import PresenceStore, ProfileStore
from ranvier.users.store import UserStore


class RecordingDatabase:
    """Answers every read with no rows and keeps the statement texts it was given."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.texts: list[str] = []

    async def fetchall(self, sql, *args):
        self.texts.append(sql)
        return []


def reads(dialect: str):
    db = RecordingDatabase(dialect)
    store = RoomStore(db)
    return db, {
        "events by ID": lambda ids: store.get_event_rows(ids),
        "memberships of a user": lambda ids: store.memberships_of(ids, "@u:hs"),
        "kinds of rooms": lambda ids: SyncQueries(store).room_kinds(ids),
        "aliases of rooms": lambda ids: store.aliases_of_rooms(ids),
        "membership changes of rooms": lambda ids: SyncQueries(store).room_membership_changes(ids, since=0, upto=9),
        "children of events": lambda ids: RelationQueries(store).relation_children(ids, ("m.annotation",)),
        "auth chains": lambda ids: GraphQueries(store).auth_chain_ids(ids),
        "unread counts": lambda ids: PushStore(db).unread("@u:hs", ids),
        "read floors": lambda ids: PushStore(db).read_floors(ids, "%:hs"),
        "read positions": lambda ids: PushStore(db).read_positions("@u:hs", ids),
        "members' profiles": lambda ids: ProfileStore(db).member_fields(ids),
        "presence of users": lambda ids: PresenceStore(db).visible_rows("@u:hs", ids),
        "users sharing a room": lambda ids: PresenceStore(db).sharing_a_room_with("@u:hs", ids),
        "rooms of users": lambda ids: PresenceStore(db).joined_rooms_of(ids),
        "guests among users": lambda ids: UserStore(db).guests_among(ids),
        "receipts of rooms": lambda ids: ReceiptStore(db).changed("@u:hs", ids, 0, 9),
        "receipts at events": lambda ids: ReceiptStore(db).public_receipts_at(ids, ids),
    }


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("name", list(reads("sqlite")[1]))
async def test_one_statement_text_for_any_count(dialect, name):
    db, by_name = reads(dialect)
    for count in (1, 2, 3, 700):
        await by_name[name]([f"!id{i}:hs" for i in range(count)])
    assert len(db.texts) == 4, "one statement for each read, even of 700"
    assert len(set(db.texts)) == 1, db.texts
