"""All SQL of device keys, one-time and fallback keys, cross-signing keys, signatures and
the device-list stream.

Key reads join the users service's `devices` table (read only), so the keys of a device
that no longer exists are never served even before they are pruned; "who shares a room
with whom" is one self-join on the room server's `memberships` table (read only).
"""

from __future__ import annotations

from typing import Sequence

from ranvier.errors import MatrixError
from ranvier.storage.engine import Database, Transaction, any_of, tuples_of

#: How many times a claim retries a device whose chosen key another claim took first.
_CLAIM_ROUNDS = 100

OneTimeKey = tuple[str, str, str]  # (algorithm, key ID, key JSON)


#: True when the user in the outer query (`d.user_id`) shares a joined room with `?`.
_SHARES_A_ROOM = (
    "EXISTS (SELECT 1 FROM memberships theirs JOIN memberships mine ON mine.room_id = theirs.room_id "
    "WHERE theirs.user_id = d.user_id AND theirs.membership = 'join' AND mine.user_id = ? AND mine.membership = 'join')"
)


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- uploads -----------------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, device_keys: str | None, one_time_keys: list[OneTimeKey],
                     fallback_keys: list[OneTimeKey], upload_id: int) -> bool:
        """Store what a device uploaded, all or nothing; True if its device keys changed.

        A one-time key ID the device still holds with a different key is refused (the
        same key again is a harmless repeat). A new fallback key replaces the previous
        one of its algorithm and is unused; the same one again keeps its state.
        """
        async with self.db.transaction() as txn:
            if one_time_keys:
                await self._check_one_time_key_ids(txn, user_id, device_id, one_time_keys)
                await txn.executemany(
                    "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, upload_id) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING",
                    [(user_id, device_id, algorithm, key_id, key, upload_id) for algorithm, key_id, key in one_time_keys],
                )
            for algorithm, key_id, key in fallback_keys:
                await txn.execute(
                    "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) "
                    "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET "
                    "key_id = excluded.key_id, key_json = excluded.key_json, used = 0 "
                    "WHERE e2e_fallback_keys.key_id <> excluded.key_id OR e2e_fallback_keys.key_json <> excluded.key_json",
                    user_id, device_id, algorithm, key_id, key,
                )
            if device_keys is None:
                return False
            stored = await txn.fetchval(
                "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?", user_id, device_id
            )
            if stored == device_keys:
                return False
            await txn.execute(
                "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
                user_id, device_id, device_keys,
            )
            if stored is not None:  # signatures of the old keys do not sign the new ones
                await txn.execute(
                    "DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_key_id = ?", user_id, device_id
                )
            return True

    async def _check_one_time_key_ids(self, txn: Transaction, user_id: str, device_id: str,
                                      keys: list[OneTimeKey]) -> None:
        uploaded = {(algorithm, key_id): key for algorithm, key_id, key in keys}
        condition, key_ids = any_of(self.db, sorted({key_id for _, key_id, _ in keys}))
        rows = await txn.fetchall(
            "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? "
            f"AND key_id {condition}",
            user_id, device_id, key_ids,
        )
        for algorithm, key_id, key in rows:
            if uploaded.get((algorithm, key_id), key) != key:
                raise MatrixError("M_INVALID_PARAM",
                                  f"One-time key {algorithm}:{key_id} already exists with a different key")

    async def key_counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        """({algorithm: unclaimed one-time keys}, [algorithms of unused fallback keys])."""
        rows = await self.db.fetchall(
            "SELECT algorithm, COUNT(*), 0 FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? "
            "GROUP BY algorithm "
            "UNION ALL SELECT algorithm, 0, 1 FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0",
            user_id, device_id, user_id, device_id,
        )
        counts = {algorithm: count for algorithm, count, fallback in rows if not fallback}
        return counts, sorted(algorithm for algorithm, _, fallback in rows if fallback)

    # -- claims ------------------------------------------------------------------------------

    async def claim(self, wanted: list[tuple[str, str, str]]) -> dict[tuple[str, str], tuple[str, str, str]]:
        """One key per (user, device, algorithm): the oldest one-time key, else the
        fallback key (marked used). Returns {(user, device): (algorithm, key ID, key JSON)}.

        Each one-time key is deleted by the statement that hands it out. On SQLite the
        writes are serialised, so that statement always finds its key; on PostgreSQL a
        concurrent claim may have taken it first, and then the statement deleted nothing
        and that device's next key is tried in a fresh transaction.
        """
        claimed: dict[tuple[str, str], tuple[str, str, str]] = {}
        pending = sorted(set(wanted))
        for _ in range(_CLAIM_ROUNDS):
            if not pending:
                break
            lost: list[tuple[str, str, str]] = []
            async with self.db.transaction() as txn:
                candidates = await self._oldest_one_time_keys(txn, pending)
                taken = await self._take(txn, candidates)
                without_keys = []
                for user_id, device_id, algorithm in pending:
                    key_id = candidates.get((user_id, device_id, algorithm))
                    key = taken.get((user_id, device_id, algorithm, key_id))
                    if key_id is None:
                        without_keys.append((user_id, device_id, algorithm))
                    elif key is not None:
                        claimed[(user_id, device_id)] = (algorithm, key_id, key)
                    else:
                        lost.append((user_id, device_id, algorithm))
                claimed.update(await self._use_fallback_keys(txn, without_keys))
            pending = lost
        return claimed

    async def _oldest_one_time_keys(self, txn: Transaction,
                                    wanted: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        devices, params = tuples_of(self.db, wanted, 3)
        rows = await txn.fetchall(
            "SELECT user_id, device_id, algorithm, key_id FROM ("
            "SELECT user_id, device_id, algorithm, key_id, ROW_NUMBER() OVER ("
            "PARTITION BY user_id, device_id, algorithm ORDER BY upload_id, key_id) AS n "
            f"FROM e2e_one_time_keys WHERE (user_id, device_id, algorithm) IN ({devices})"
            ") ranked WHERE n = 1",
            *params,
        )
        return {(u, d, a): key_id for u, d, a, key_id in rows}

    async def _take(self, txn: Transaction,
                    candidates: dict[tuple[str, str, str], str]) -> dict[tuple[str, str, str, str], str]:
        if not candidates:
            return {}
        keys, params = tuples_of(self.db, [(*triple, key_id) for triple, key_id in candidates.items()], 4)
        rows = await txn.fetchall(
            f"DELETE FROM e2e_one_time_keys WHERE (user_id, device_id, algorithm, key_id) IN ({keys}) "
            "RETURNING user_id, device_id, algorithm, key_id, key_json",
            *params,
        )
        return {(u, d, a, k): key for u, d, a, k, key in rows}

    async def _use_fallback_keys(self, txn: Transaction,
                                 wanted: list[tuple[str, str, str]]) -> dict[tuple[str, str], tuple[str, str, str]]:
        if not wanted:
            return {}
        devices, params = tuples_of(self.db, wanted, 3)
        rows = await txn.fetchall(
            f"UPDATE e2e_fallback_keys SET used = 1 WHERE (user_id, device_id, algorithm) IN ({devices}) "
            "RETURNING user_id, device_id, algorithm, key_id, key_json",
            *params,
        )
        return {(u, d): (a, k, key) for u, d, a, k, key in rows}

    # -- queries -----------------------------------------------------------------------------

    async def device_keys(self, user_ids: Sequence[str]) -> list[tuple[str, str, str, str | None]]:
        """(user, device, key JSON, device display name) of every existing device with keys."""
        condition, ids = any_of(self.db, user_ids)
        return await self.db.fetchall(
            "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM e2e_device_keys k "
            "JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id "
            f"WHERE k.user_id {condition}",
            ids,
        )

    async def cross_signing_keys(self, user_ids: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """(user, usage, public key, key JSON) of the users' cross-signing keys."""
        condition, ids = any_of(self.db, user_ids)
        return await self.db.fetchall(
            "SELECT user_id, usage, public_key, key_json FROM e2e_cross_signing_keys "
            f"WHERE user_id {condition}",
            ids,
        )

    async def signatures(self, user_ids: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
        """(target user, target key ID, signer, signer's key ID, signature) of the users' keys."""
        condition, ids = any_of(self.db, user_ids)
        return await self.db.fetchall(
            "SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature FROM e2e_signatures "
            f"WHERE target_user_id {condition}",
            ids,
        )

    # -- cross-signing -----------------------------------------------------------------------

    async def set_cross_signing_keys(self, user_id: str, keys: dict[str, tuple[str, str]]) -> None:
        """Store {usage: (public key, key JSON)}; signatures made by or on a replaced key go."""
        async with self.db.transaction() as txn:
            old = dict(await txn.fetchall(
                "SELECT usage, public_key FROM e2e_cross_signing_keys WHERE user_id = ?", user_id
            ))
            for usage, (public_key, key_json) in keys.items():
                await txn.execute(
                    "INSERT INTO e2e_cross_signing_keys (user_id, usage, public_key, key_json) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (user_id, usage) DO UPDATE SET public_key = excluded.public_key, "
                    "key_json = excluded.key_json",
                    user_id, usage, public_key, key_json,
                )
                replaced = old.get(usage)
                if replaced is not None and replaced != public_key:
                    await txn.execute(
                        "DELETE FROM e2e_signatures WHERE (target_user_id = ? AND target_key_id = ?) "
                        "OR (signer_user_id = ? AND signer_key_id = ?)",
                        user_id, replaced, user_id, f"ed25519:{replaced}",
                    )

    async def add_signatures(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        """(target user, target key ID, signer, signer's key ID, signature); a newer one replaces."""
        async with self.db.transaction() as txn:
            await txn.executemany(
                "INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id) "
                "DO UPDATE SET signature = excluded.signature",
                rows,
            )

    async def device_ids(self, user_id: str) -> set[str]:
        return {row[0] for row in await self.db.fetchall("SELECT device_id FROM devices WHERE user_id = ?", user_id)}

    # -- devices that went away ----------------------------------------------------------------

    async def prune_deleted_devices(self, user_id: str) -> None:
        """Drop the keys and signatures of the user's devices that no longer exist."""
        gone = "device_id NOT IN (SELECT device_id FROM devices WHERE user_id = ?)"
        async with self.db.transaction() as txn:
            for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys"):
                await txn.execute(f"DELETE FROM {table} WHERE user_id = ? AND {gone}", user_id, user_id)
            await txn.execute(
                "DELETE FROM e2e_signatures WHERE target_user_id = ? "
                "AND target_key_id NOT IN (SELECT device_id FROM devices WHERE user_id = ?) "
                "AND target_key_id NOT IN (SELECT public_key FROM e2e_cross_signing_keys WHERE user_id = ?)",
                user_id, user_id, user_id,
            )

    # -- the device-list stream ----------------------------------------------------------------

    async def max_device_list_position(self) -> int:
        return await self.db.fetchval("SELECT COALESCE(MAX(stream_id), 0) FROM e2e_device_list_positions")

    async def device_list_position(self, user_id: str) -> int:
        """Where the user's device list last changed in the stream (0: never)."""
        return int(await self.db.fetchval(
            "SELECT COALESCE(MAX(stream_id), 0) FROM e2e_device_list_positions WHERE user_id = ?", user_id))

    async def mark_device_list_changed(self, user_id: str, position: int) -> None:
        await self.db.execute(
            "INSERT INTO e2e_device_list_positions (user_id, stream_id) VALUES (?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id",
            user_id, position,
        )

    async def joined_rooms(self, user_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT room_id FROM memberships WHERE user_id = ? AND membership = 'join'", user_id
        )
        return [row[0] for row in rows]

    async def device_lists_changed(self, user_id: str, since: int, upto: int) -> set[str]:
        """Users whose device list moved in (since, upto] and who share a room with
        `user_id` now, `user_id` included."""
        rows = await self.db.fetchall(
            "SELECT d.user_id FROM e2e_device_list_positions d WHERE d.stream_id > ? AND d.stream_id <= ? "
            f"AND (d.user_id = ? OR {_SHARES_A_ROOM})",
            since, upto, user_id, user_id,
        )
        return {row[0] for row in rows}

    async def sharing_a_room(self, user_id: str, candidates: Sequence[str]) -> set[str]:
        """Those of `candidates` who share a joined room with `user_id` now."""
        condition, ids = any_of(self.db, candidates)
        rows = await self.db.fetchall(
            "SELECT DISTINCT theirs.user_id FROM memberships mine "
            "JOIN memberships theirs ON theirs.room_id = mine.room_id "
            "WHERE mine.user_id = ? AND mine.membership = 'join' AND theirs.membership = 'join' "
            f"AND theirs.user_id {condition}",
            user_id, ids,
        )
        return {row[0] for row in rows}
