"""Account moderation by server admins: shadow bans and rate limit overrides.

Both are few and read on hot paths, so all of them live in memory, loaded at start and
kept in step with every change. The room server holds `shadow_banned` (one set lookup
per send) and the user-action rate limiters hold `ratelimit_overrides` (one dict lookup
per check); both are these very objects, changed in place.
"""

from __future__ import annotations

import time

from ranvier.storage.engine import Database


class Moderation:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: Users whose sends succeed for them but reach nobody.
        self.shadow_banned: set[str] = set()
        #: user_id -> (per second, burst); per second 0 lifts the limit.
        self.ratelimit_overrides: dict[str, tuple[float, int]] = {}

    async def start(self) -> None:
        self.shadow_banned.update(row[0] for row in await self.db.fetchall("SELECT user_id FROM shadow_banned_users"))
        self.ratelimit_overrides.update(
            (row[0], (float(row[1]), int(row[2])))
            for row in await self.db.fetchall(
                "SELECT user_id, messages_per_second, burst_count FROM ratelimit_overrides")
        )

    async def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        """Ban or lift the ban; repeating either is harmless."""
        if banned:
            await self.db.execute(
                "INSERT INTO shadow_banned_users (user_id, banned_ts) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
                user_id, int(time.time() * 1000),
            )
            self.shadow_banned.add(user_id)
        else:
            await self.db.execute("DELETE FROM shadow_banned_users WHERE user_id = ?", user_id)
            self.shadow_banned.discard(user_id)

    def ratelimit_override(self, user_id: str) -> tuple[int, int] | None:
        override = self.ratelimit_overrides.get(user_id)
        return (int(override[0]), override[1]) if override is not None else None

    async def set_ratelimit_override(self, user_id: str, per_second: int, burst: int) -> None:
        await self.db.execute(
            "INSERT INTO ratelimit_overrides (user_id, messages_per_second, burst_count) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET messages_per_second = excluded.messages_per_second, "
            "burst_count = excluded.burst_count",
            user_id, per_second, burst,
        )
        self.ratelimit_overrides[user_id] = (float(per_second), burst)

    async def delete_ratelimit_override(self, user_id: str) -> None:
        await self.db.execute("DELETE FROM ratelimit_overrides WHERE user_id = ?", user_id)
        self.ratelimit_overrides.pop(user_id, None)
