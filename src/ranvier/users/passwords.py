"""argon2id password hashing, run off the event loop (it is deliberately slow)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ranvier.config import PasswordHashingConfig


class Passwords:
    def __init__(self, config: PasswordHashingConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.time_cost, memory_cost=config.memory_kib, parallelism=config.parallelism
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password or an account without one."""
        if not password_hash:
            return False

        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)
