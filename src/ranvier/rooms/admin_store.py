"""The room server's SQL for server admins: every room with its counts and summary state
(two queries whatever the number of rooms), blocked rooms, and purging a room's history
or the whole room from the room server's tables."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ranvier.storage.engine import Database, Transaction

#: The state a room list shows, read for every room in one query.
SUMMARY_STATE = ("m.room.create", "m.room.name", "m.room.canonical_alias", "m.room.join_rules",
                 "m.room.guest_access", "m.room.history_visibility", "m.room.encryption", "m.room.avatar",
                 "m.room.topic")

#: The room server's tables keyed by room; `events` last, the others name events in it.
_ROOM_TABLES = ("current_state", "current_state_deltas", "memberships", "membership_history", "room_aliases",
                "appservice_room_list", "state_groups", "event_edges", "event_auth", "backward_extremities", "events",
                "rooms")


class RoomAdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rooms_with_counts(self, server_name: str) -> list[tuple[Any, ...]]:
        """(room_id, version, creator, is_public, joined, joined_local, state_events) of every room."""
        return await self.db.fetchall(
            "SELECT r.room_id, r.room_version, r.creator, r.is_public, "
            "(SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join'), "
            "(SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join' "
            " AND m.user_id LIKE ?), "
            "(SELECT COUNT(*) FROM current_state c WHERE c.room_id = r.room_id) "
            "FROM rooms r",
            f"%:{server_name}",
        )

    async def summary_state(self, room_ids: list[str] | None) -> dict[str, dict[str, dict[str, Any]]]:
        """room_id -> event type -> content of the summary state (of all rooms when None)."""
        types = ", ".join("?" * len(SUMMARY_STATE))
        if room_ids is None:
            chunks: list[list[str] | None] = [None]
        else:
            chunks = [room_ids[start:start + 500] for start in range(0, len(room_ids), 500)]
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for chunk in chunks:
            rooms = "" if chunk is None else f"AND c.room_id IN ({', '.join('?' * len(chunk))})"
            rows = await self.db.fetchall(
                f"SELECT c.room_id, c.type, e.json FROM current_state c JOIN events e ON e.event_id = c.event_id "
                f"WHERE c.state_key = '' AND c.type IN ({types}) {rooms}",
                *SUMMARY_STATE, *(chunk or ()),
            )
            for room_id, event_type, json_text in rows:
                content = orjson.loads(json_text).get("content")
                result.setdefault(room_id, {})[event_type] = content if isinstance(content, dict) else {}
        return result

    async def count_rooms(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM rooms"))

    async def count_events(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM events"))

    async def joined_local_devices(self, room_id: str, server_name: str) -> int:
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM memberships m JOIN devices d ON d.user_id = m.user_id "
            "WHERE m.room_id = ? AND m.membership = 'join' AND m.user_id LIKE ?",
            room_id, f"%:{server_name}",
        ))

    # -- blocking ----------------------------------------------------------------------

    async def blocked_rooms(self) -> dict[str, str]:
        """room_id -> the admin who blocked it."""
        return {row[0]: row[1] for row in await self.db.fetchall("SELECT room_id, user_id FROM blocked_rooms")}

    async def set_blocked(self, room_id: str, user_id: str, blocked: bool) -> None:
        if blocked:
            await self.db.execute(
                "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES (?, ?, ?) "
                "ON CONFLICT (room_id) DO NOTHING",
                room_id, user_id, int(time.time() * 1000),
            )
        else:
            await self.db.execute("DELETE FROM blocked_rooms WHERE room_id = ?", room_id)

    # -- purging -----------------------------------------------------------------------

    async def purge_room(self, txn: Transaction, room_id: str) -> None:
        """Delete everything the room server keeps of a room."""
        await txn.execute(
            "DELETE FROM state_group_entries WHERE state_group IN (SELECT state_group FROM state_groups "
            "WHERE room_id = ?)", room_id,
        )
        for table in _ROOM_TABLES:
            await txn.execute(f"DELETE FROM {table} WHERE room_id = ?", room_id)

    async def purgeable_events(self, room_id: str, *, before_stream: int, local_server: str | None,
                               keep_event_ids: list[str]) -> list[tuple[str, int]]:
        """(event_id, stream) of the room's events before `before_stream` that a history
        purge removes: not state (the room's state stays whole), not redactions (their
        targets would be served unredacted), not the room's forward extremities (new events
        point at them), and only remote senders' unless `local_server` is None."""
        conditions = ["room_id = ?", "stream_ordering < ?", "state_key IS NULL", "type <> 'm.room.redaction'",
                      f"event_id NOT IN ({', '.join('?' * len(keep_event_ids)) or 'NULL'})"]
        params: list[Any] = [room_id, before_stream, *keep_event_ids]
        if local_server is not None:
            conditions.append("sender NOT LIKE ?")
            params.append(f"%:{local_server}")
        rows = await self.db.fetchall(
            f"SELECT event_id, stream_ordering FROM events WHERE {' AND '.join(conditions)}", *params
        )
        return [(row[0], row[1]) for row in rows]

    async def delete_events(self, txn: Transaction, event_ids: list[str]) -> None:
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start:start + 500]
            await txn.execute(f"DELETE FROM event_edges WHERE event_id IN ({', '.join('?' * len(chunk))})", *chunk)
            await txn.execute(f"DELETE FROM events WHERE event_id IN ({', '.join('?' * len(chunk))})", *chunk)
