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
            filter_id = str(count)
            await txn.execute(
                "INSERT INTO filters (user_id, filter_id, definition) VALUES (?, ?, ?)", user_id, filter_id, text
            )
        return filter_id

    async def get(self, user_id: str, filter_id: str) -> dict[str, Any]:
        text = await self.db.fetchval(
            "SELECT definition FROM filters WHERE user_id = ? AND filter_id = ?", user_id, filter_id
        )
        if text is None:
            raise MatrixError("M_NOT_FOUND", "Unknown filter")
        return orjson.loads(text)
