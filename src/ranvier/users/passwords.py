"""argon2id password hashing, run off the event loop (it is deliberately slow).

Hashes run on a small pool of their own: each takes `memory_kib` of memory, so the
number running at once bounds the memory a burst of logins can take.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ranvier.config import PasswordHashingConfig

HASHES_AT_ONCE = 2


class Passwords:
    def __init__(self, config: PasswordHashingConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.time_cost, memory_cost=config.memory_kib, parallelism=config.parallelism
        )
        self._pool = ThreadPoolExecutor(max_workers=HASHES_AT_ONCE, thread_name_prefix="argon2")

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password or an account without one."""
        if not password_hash:
            return False

        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check)
