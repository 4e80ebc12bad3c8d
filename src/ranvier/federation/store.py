"""All SQL of the federation service: other servers' keys, the routing of this server's
PDUs to destinations, and the EDUs waiting for each destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ranvier.storage.engine import Database, Transaction


@dataclass(frozen=True)
class StoredKey:
    verify_key: str
    valid_until_ts: int
    #: When an old key stopped being used (it still verifies events sent before then).
    expired_ts: int | None
    fetched_ts: int
    key_json: str


class FederationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- keys ------------------------------------------------------------------------------

    async def keys_of(self, server_name: str) -> dict[str, StoredKey]:
        rows = await self.db.fetchall(
            "SELECT key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, key_json FROM federation_server_keys "
            "WHERE server_name = ?", server_name,
        )
        return {row[0]: StoredKey(row[1], row[2], row[3], row[4], row[5]) for row in rows}

    async def store_keys(self, server_name: str, keys: dict[str, StoredKey]) -> None:
        """Keep what was fetched; a key's row is replaced by a newer answer about it."""
        async with self.db.transaction() as txn:
            await txn.executemany(
                "INSERT INTO federation_server_keys (server_name, key_id, verify_key, valid_until_ts, expired_ts, "
                "fetched_ts, key_json) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server_name, key_id) DO UPDATE SET "
                "verify_key = excluded.verify_key, valid_until_ts = excluded.valid_until_ts, "
                "expired_ts = excluded.expired_ts, fetched_ts = excluded.fetched_ts, key_json = excluded.key_json",
                [(server_name, key_id, key.verify_key, key.valid_until_ts, key.expired_ts, key.fetched_ts,
                  key.key_json) for key_id, key in keys.items()],
            )

    # -- PDUs to send ----------------------------------------------------------------------

    @staticmethod
    async def route_pdus(txn: Transaction, routes: list[tuple[str, int]]) -> None:
        """(destination, stream position) of this server's events to send, in the events' transaction."""
        await txn.executemany(
            "INSERT INTO federation_pdu_destinations (destination, stream_ordering) VALUES (?, ?) "
            "ON CONFLICT (destination, stream_ordering) DO NOTHING", routes,
        )

    async def route_pdus_now(self, routes: list[tuple[str, int]]) -> None:
        async with self.db.transaction() as txn:
            await self.route_pdus(txn, routes)

    async def pending_pdus(self, destination: str, after: int, limit: int) -> list[tuple[int, str, str]]:
        """(position, PDU JSON, room version) of the events waiting for a destination."""
        rows = await self.db.fetchall(
            "SELECT d.stream_ordering, e.json, r.room_version FROM federation_pdu_destinations d "
            "JOIN events e ON e.stream_ordering = d.stream_ordering JOIN rooms r ON r.room_id = e.room_id "
            "WHERE d.destination = ? AND d.stream_ordering > ? ORDER BY d.stream_ordering LIMIT ?",
            destination, after, limit,
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def pdu_destinations(self) -> list[str]:
        rows = await self.db.fetchall("SELECT DISTINCT destination FROM federation_pdu_destinations")
        return [row[0] for row in rows]

    async def forget_sent_pdus(self, destination: str, upto: int) -> None:
        await self.db.execute("DELETE FROM federation_pdu_destinations WHERE destination = ? AND stream_ordering <= ?",
                              destination, upto)

    # -- EDUs to send ----------------------------------------------------------------------

    async def max_edu_position(self) -> int:
        return int(await self.db.fetchval("SELECT COALESCE(MAX(position), 0) FROM federation_edus"))

    async def add_edus(self, rows: list[tuple[int, str, str, dict[str, Any]]]) -> None:
        """(position, destination, EDU type, content) of EDUs to send."""
        async with self.db.transaction() as txn:
            await txn.executemany(
                "INSERT INTO federation_edus (position, destination, edu_type, content) VALUES (?, ?, ?, ?)",
                [(position, destination, edu_type, orjson.dumps(content).decode())
                 for position, destination, edu_type, content in rows],
            )

    async def pending_edus(self, destination: str, after: int, limit: int) -> list[tuple[int, str, str]]:
        rows = await self.db.fetchall(
            "SELECT position, edu_type, content FROM federation_edus WHERE destination = ? AND position > ? "
            "ORDER BY position LIMIT ?", destination, after, limit,
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def edu_destinations(self) -> list[str]:
        rows = await self.db.fetchall("SELECT DISTINCT destination FROM federation_edus")
        return [row[0] for row in rows]

    async def forget_sent_edus(self, destination: str, upto: int) -> None:
        await self.db.execute("DELETE FROM federation_edus WHERE destination = ? AND position <= ?", destination, upto)
