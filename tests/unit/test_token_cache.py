"""The access-token cache keeps only what can still answer: validations younger than
CACHE_SECONDS, and last-seen marks younger than LAST_SEEN_INTERVAL_MS; anything older is
dropped as new tokens come, so a burst of users does not stay in memory."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from ranvier.users import tokens as tokens_module
from ranvier.users.tokens import CACHE_SECONDS, LAST_SEEN_INTERVAL_MS, Tokens


class Store:
    def __init__(self) -> None:
        self.lookups = 0
        self.touches = 0

    async def lookup_access_token(self, token_hash):
        self.lookups += 1
        return SimpleNamespace(user_id=f"@{token_hash[:6]}:hs", device_id="D", is_guest=False, locked=False,
                               suspended=False, expires_ts=None, deactivated=False)

    async def touch_device(self, *args):
        self.touches += 1


def test_old_validations_and_marks_are_dropped(monkeypatch):
    clock = {"s": 1000.0}
    monkeypatch.setattr(tokens_module.time, "monotonic", lambda: clock["s"])
    monkeypatch.setattr(tokens_module, "now_ms", lambda: int(clock["s"] * 1000))
    store = Store()
    tokens = Tokens(store)

    async def scenario():
        for n in range(100):
            await tokens.authenticate(f"token-{n}", "127.0.0.1")
        assert len(tokens._cache) == 100 and len(tokens._last_seen) == 100
        await tokens.authenticate("token-0", "127.0.0.1")
        assert store.lookups == 100, "a fresh validation is answered from memory"
        clock["s"] += CACHE_SECONDS + 1
        await tokens.authenticate("token-100", "127.0.0.1")
        assert list(tokens._cache) == [tokens_module.hash_token("token-100")], "stale validations went"
        assert len(tokens._last_seen) == 101, "marks last for their interval"
        clock["s"] += LAST_SEEN_INTERVAL_MS / 1000
        await tokens.authenticate("token-101", "127.0.0.1")
        assert len(tokens._last_seen) == 1
        touches = store.touches
        await tokens.authenticate("token-0", "127.0.0.1")
        assert store.touches == touches + 1, "a device whose mark went is written again"

    asyncio.run(scenario())
