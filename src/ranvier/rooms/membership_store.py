"""Reads of the memberships tables (who is in which room, and how it came to be), part of
the room store."""

from __future__ import annotations

from ranvier.rooms.statements import in_clause
from ranvier.storage.engine import Database, any_of


class MembershipQueries:
    db: Database

    async def rooms_of_user(self, user_id: str, memberships: tuple[str, ...]) -> list[tuple[str, str]]:
        """(room_id, membership) of a user's rooms in the given memberships, forgotten ones left out."""
        rows = await self.db.fetchall(
            f"SELECT room_id, membership FROM memberships WHERE user_id = ? AND forgotten = 0 "
            f"AND membership IN ({in_clause(len(memberships))})",
            user_id, *memberships,
        )
        return [(r[0], r[1]) for r in rows]

    async def deactivated_members(self, memberships: tuple[str, ...]) -> list[str]:
        """Deactivated accounts that still hold one of the given memberships somewhere."""
        rows = await self.db.fetchall(
            f"SELECT DISTINCT m.user_id FROM users u JOIN memberships m ON m.user_id = u.user_id "
            f"WHERE u.deactivated = 1 AND m.membership IN ({in_clause(len(memberships))})",
            *memberships,
        )
        return [r[0] for r in rows]

    async def membership_of(self, room_id: str, user_id: str) -> tuple[str, int, bool] | None:
        """(membership, stream_ordering, forgotten) of a user in a room, or None."""
        row = await self.db.fetchone(
            "SELECT membership, stream_ordering, forgotten FROM memberships WHERE room_id = ? AND user_id = ?",
            room_id, user_id,
        )
        return (row[0], row[1], bool(row[2])) if row else None

    async def memberships_of(self, room_ids: list[str], user_id: str) -> dict[str, str]:
        """room_id -> the user's membership, for those of the rooms they have one in."""
        if not room_ids:
            return {}
        condition, ids = any_of(self.db, room_ids)
        rows = await self.db.fetchall(
            f"SELECT room_id, membership FROM memberships WHERE user_id = ? AND room_id {condition}", user_id, ids)
        return dict(rows)

    async def membership_event_id(self, room_id: str, user_id: str) -> str | None:
        """The user's latest membership event in the room."""
        return await self.db.fetchval(
            "SELECT event_id FROM memberships WHERE room_id = ? AND user_id = ?", room_id, user_id
        )

    async def membership_history(self, room_id: str, user_id: str) -> list[tuple[int, str]]:
        rows = await self.db.fetchall(
            "SELECT stream_ordering, membership FROM membership_history WHERE room_id = ? AND user_id = ? "
            "ORDER BY stream_ordering",
            room_id, user_id,
        )
        return [(r[0], r[1]) for r in rows]

    async def members(self, room_id: str) -> list[tuple[str, str, str]]:
        """(user_id, membership, event_id) of everyone with a membership in the room."""
        rows = await self.db.fetchall(
            "SELECT user_id, membership, event_id FROM memberships WHERE room_id = ?", room_id
        )
        return [(r[0], r[1], r[2]) for r in rows]
