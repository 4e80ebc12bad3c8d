"""Erasure: a deactivated account whose owner asked for their content to be erased.

As the spec describes it, users who join a room after the erasure are served redacted
copies of the account's events, while those who could see them before keep seeing them
(the read model redacts an erased sender's event for readers who were not joined when it
was sent). No redaction events are sent. Its profile and account data are deleted.
Erased accounts are few, so all of them are kept in memory: readers ask per event.
"""

from __future__ import annotations

import time

from ranvier.storage.engine import Database
from ranvier.users.personal_store import AccountDataStore, ProfileStore


class Erasure:
    def __init__(self, db: Database, profiles: ProfileStore, account_data: AccountDataStore) -> None:
        self.db = db
        self.profiles = profiles
        self.account_data = account_data
        #: Every erased account.
        self.erased: set[str] = set()

    async def start(self) -> None:
        self.erased = {row[0] for row in await self.db.fetchall("SELECT user_id FROM erased_users")}

    async def erase(self, user_id: str) -> None:
        """Mark the account erased (first, so its events are redacted from now on), then
        clear its profile and account data. Repeating it is harmless."""
        await self.db.execute(
            "INSERT INTO erased_users (user_id, erased_ts) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
            user_id, int(time.time() * 1000),
        )
        self.erased.add(user_id)
        await self.profiles.clear(user_id)
        await self.account_data.delete_user(user_id)
