"""The user directory: which users a searcher may find, by user ID or display name.

A searcher finds the users they share a joined room with, the users joined to a room
whose join rule is public, and themself (as Synapse does, so a client's "find people"
also shows one's own account). Deactivated users are never found. Which rooms are
public is kept in the directory's own table, written by a persist hook in the same
transaction as each m.room.join_rules event.
"""

from __future__ import annotations

from typing import Any

from ranvier.events.model import Event, JOIN_RULES
from ranvier.rooms.store import PersistedEvent
from ranvier.storage.engine import Transaction
from ranvier.users.personal_store import DirectoryStore

MAX_LIMIT = 100


class UserDirectory:
    def __init__(self, store: DirectoryStore) -> None:
        self.store = store

    async def search(self, searcher: str, term: str, limit: int) -> dict[str, Any]:
        """{results: [{user_id, display_name?, avatar_url?}], limited}; every word of the term must match."""
        words = term.split()
        if not words:
            return {"results": [], "limited": False}
        limit = max(1, min(limit, MAX_LIMIT))
        rows = await self.store.search(searcher, words, limit + 1)
        results = []
        for user_id, displayname, avatar_url in rows[:limit]:
            result = {"user_id": user_id}
            if displayname is not None:
                result["display_name"] = displayname
            if avatar_url is not None:
                result["avatar_url"] = avatar_url
            results.append(result)
        return {"results": results, "limited": len(rows) > limit}

    # -- the persist hook: public rooms ------------------------------------------------------

    def prepare(self, draft: Any, event: Event, item: PersistedEvent) -> bool | None:
        if event.type != JOIN_RULES or event.state_key != "":
            return None
        return event.content.get("join_rule") == "public"

    async def write(self, txn: Transaction, prepared: list[tuple[PersistedEvent, bool]]) -> None:
        await self.store.set_public_rooms(txn, [(item.event.room_id, public) for item, public in prepared])

    def committed(self, prepared: list[tuple[PersistedEvent, bool]]) -> None:
        """Nothing to do: searches read the table."""
