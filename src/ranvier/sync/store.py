"""The SQL of the sync service: stored filters."""

from __future__ import annotations

from typing import Any

import orjson

from ranvier.errors import MatrixError
from ranvier.storage.engine import Database
from ranvier.sync.filters import SyncFilter


class FilterStore:
    """Filters uploaded with POST /user/{userId}/filter, referenced by ID in /sync."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, user_id: str, definition: dict[str, Any]) -> str:
        SyncFilter.parse(definition)
        text = orjson.dumps(definition, option=orjson.OPT_SORT_KEYS).decode()
        async with self.db.transaction() as txn:
            existing = await txn.fetchval(
                "SELECT filter_id FROM filters WHERE user_id = ? AND definition = ?", user_id, text
            )
            if existing is not None:
                return existing
            count = await txn.fetchval("SELECT COUNT(*) FROM filters WHERE user_id = ?", user_id)
            # A concurrent request of the same user may take the next number first (on
            # PostgreSQL, whose transactions run side by side): then try the one after.
            while not await txn.execute(
                "INSERT INTO filters (user_id, filter_id, definition) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, filter_id) DO NOTHING", user_id, str(count), text
            ):
                count += 1
        return str(count)

    async def get(self, user_id: str, filter_id: str) -> dict[str, Any]:
        text = await self.db.fetchval(
            "SELECT definition FROM filters WHERE user_id = ? AND filter_id = ?", user_id, filter_id
        )
        if text is None:
            raise MatrixError("M_NOT_FOUND", "Unknown filter")
        return orjson.loads(text)
