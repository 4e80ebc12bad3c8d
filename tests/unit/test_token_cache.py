"""The access-token cache keeps only what can still answer: validations younger than
CACHE_SECONDS, and last-seen marks younger than LAST_SEEN_INTERVAL_MS; anything older is
dropped as new tokens come, so a burst of users does not stay in memory."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from ranvier.users import tokens as tokens_module
import pytest

from ranvier.errors import MatrixError
from ranvier.users.tokens import CACHE_SECONDS, LAST_SEEN_INTERVAL_MS, RECHECK_AFTER_SECONDS, Tokens, hash_token


class Store:
    def __init__(self) -> None:
        self.lookups = 0
        self.touches = 0
        #: Each batch of hashes checked together.
        self.batches: list[list[str]] = []
        self.revoked: set[str] = set()
        self.locked: set[str] = set()
        #: Awaited while a batch is being read (to change something meanwhile).
        self.during_batch = None

    async def lookup_access_token(self, token_hash):
        self.lookups += 1
        return None if token_hash in self.revoked else _info(token_hash, token_hash in self.locked)

    async def lookup_access_tokens(self, token_hashes):
        self.batches.append(sorted(token_hashes))
        found = {token_hash: _info(token_hash, token_hash in self.locked) for token_hash in token_hashes
                 if token_hash not in self.revoked}
        if self.during_batch is not None:  # after the read, before the answer
            await self.during_batch()
        return found

    async def touch_device(self, *args):
        self.touches += 1


def _info(token_hash, locked=False):
    return SimpleNamespace(user_id=f"@{token_hash[:6]}:hs", device_id="D", is_guest=False, locked=locked,
                           suspended=False, expires_ts=None, deactivated=False)


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


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves; the gathering of tokens due waits no time."""
    now = {"s": 1000.0}
    monkeypatch.setattr(tokens_module.time, "monotonic", lambda: now["s"])
    monkeypatch.setattr(tokens_module, "now_ms", lambda: int(now["s"] * 1000))
    monkeypatch.setattr(tokens_module, "_RECHECK_GATHER_SECONDS", 0)
    return now


async def _settle(tokens: Tokens) -> None:
    while tokens._rechecking is not None:
        await asyncio.sleep(0)


def test_tokens_in_use_are_checked_again_together_before_they_expire(clock):
    store = Store()
    tokens = Tokens(store)
    names = [f"token-{n}" for n in range(50)]

    async def scenario():
        for name in names:
            await tokens.authenticate(name)
        clock["s"] += RECHECK_AFTER_SECONDS + 0.1
        for name in names:  # past half their time: answered from memory, and due
            await tokens.authenticate(name)
        await _settle(tokens)
        assert store.batches == [sorted(hash_token(name) for name in names)], "one query for all"
        clock["s"] += CACHE_SECONDS - 0.5  # past the first validation's time, within the second's
        for name in names:
            await tokens.authenticate(name)
        assert store.lookups == 50, "no token was looked up alone again"

    asyncio.run(scenario())


def test_a_token_revoked_elsewhere_is_dropped_by_the_check(clock):
    store = Store()
    tokens = Tokens(store)

    async def scenario():
        await tokens.authenticate("kept")
        await tokens.authenticate("revoked")
        clock["s"] += RECHECK_AFTER_SECONDS + 0.1
        store.revoked.add(hash_token("revoked"))  # by another process: this one was not told
        await tokens.authenticate("kept")
        await tokens.authenticate("revoked")  # still within its time
        await _settle(tokens)
        assert hash_token("revoked") not in tokens._cache
        with pytest.raises(MatrixError) as refused:
            await tokens.authenticate("revoked")
        assert refused.value.errcode == "M_UNKNOWN_TOKEN"
        await tokens.authenticate("kept")

    asyncio.run(scenario())


def test_a_check_that_raced_with_a_change_of_the_account_is_not_kept(clock):
    store = Store()
    tokens = Tokens(store)
    token = hash_token("token")

    async def lock_meanwhile():  # locked after the batch read, and the token used (and looked up) again
        store.during_batch = None
        store.locked.add(token)
        tokens.forget_user(tokens._cache[token][0].user_id)
        assert (await tokens.authenticate("token")).locked

    async def scenario():
        await tokens.authenticate("token")
        clock["s"] += RECHECK_AFTER_SECONDS + 0.1
        store.during_batch = lock_meanwhile
        await tokens.authenticate("token")
        await _settle(tokens)
        assert store.batches, "the token was checked"
        assert (await tokens.authenticate("token")).locked, "the check read before the lock was dropped"

    asyncio.run(scenario())
