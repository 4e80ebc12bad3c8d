"""Send-to-device messaging: messages for one device, queued until it has them.

A send takes one position of the to-device stream for all its messages (one per device).
/sync hands a device its messages in order, at most 100 at a time; the next sync with a
later token confirms them and they are deleted. Delivered positions are deleted only
then, so a sync whose answer was lost is answered again with the same messages.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import orjson

from ranvier.events.identifiers import domain_of
from ranvier.storage.engine import Database, Transaction, UniqueViolation, any_of, tuples_of
from ranvier.notify.notifier import Notifier
from ranvier.notify.streams import StreamPositions

#: The most messages one /sync response carries (the spec's recommendation).
MAX_PER_SYNC = 100
#: How long a sender's transaction ID is remembered, so a retried send is not delivered twice.
TXN_MEMORY_MS = 24 * 60 * 60 * 1000


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def position(self) -> int:
        return await self.db.fetchval("SELECT stream_id FROM to_device_stream WHERE id = 1")

    async def devices_of(self, user_ids: list[str]) -> dict[str, list[str]]:
        devices: dict[str, list[str]] = {user_id: [] for user_id in user_ids}
        condition, ids = any_of(self.db, user_ids)
        for user_id, device_id in await self.db.fetchall(
                f"SELECT user_id, device_id FROM devices WHERE user_id {condition}", ids):
            devices[user_id].append(device_id)
        return devices

    async def add(self, sender: tuple[str, str, str], position: int, messages: list[tuple[str, str, str]],
                  now: int) -> bool:
        """Queue (user, device, event JSON) messages at `position` unless the sender's
        (user, device, txn ID) was seen before; False for such a repeat."""
        user_id, device_id, txn_id = sender
        try:
            async with self.db.transaction() as txn:
                await txn.execute(
                    "DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ? AND sent_ts < ?",
                    user_id, device_id, now - TXN_MEMORY_MS,
                )
                await txn.execute(
                    "INSERT INTO to_device_txns (user_id, device_id, txn_id, sent_ts) VALUES (?, ?, ?, ?)",
                    user_id, device_id, txn_id, now,
                )
                await self._insert_messages(txn, messages, position)
                await txn.execute("UPDATE to_device_stream SET stream_id = ? WHERE id = 1 AND stream_id < ?",
                                  position, position)
        except UniqueViolation:
            return False
        return True

    async def _insert_messages(self, txn: Transaction, messages: list[tuple[str, str, str]], position: int) -> None:
        """The messages' rows in one statement text whatever their number (a multi-row VALUES
        list was a statement of up to 125 KiB, for each count, kept prepared by SQLite's
        writer): one prepared insert run for each row on SQLite, in-process; the rows as
        arrays on PostgreSQL, where running a statement per row costs a round trip each."""
        if not messages:
            return
        if self.db.dialect == "postgresql":
            rows, columns = tuples_of(self.db, messages, 3)
            await txn.execute(
                "INSERT INTO to_device_messages (user_id, device_id, event_json, stream_id) "
                f"SELECT m.*, ?::bigint FROM ({rows}) AS m",
                position, *columns,
            )
        else:
            await txn.executemany(
                "INSERT INTO to_device_messages (user_id, device_id, stream_id, event_json) VALUES (?, ?, ?, ?)",
                [(user, device, position, event) for user, device, event in messages],
            )

    async def newest_per_device(self, user_id: str | None = None) -> dict[tuple[str, str], int]:
        """(user, device) -> newest stored position, of every device with messages (or of one user's)."""
        where, args = ("WHERE user_id = ? ", (user_id,)) if user_id is not None else ("", ())
        rows = await self.db.fetchall(
            f"SELECT user_id, device_id, MAX(stream_id) FROM to_device_messages {where}GROUP BY user_id, device_id", *args
        )
        return {(row[0], row[1]): row[2] for row in rows}

    async def pending(self, user_id: str, device_id: str, since: int, upto: int, limit: int) -> list[tuple[int, str]]:
        return await self.db.fetchall(
            "SELECT stream_id, event_json FROM to_device_messages WHERE user_id = ? AND device_id = ? "
            "AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?",
            user_id, device_id, since, upto, limit,
        )

    async def delete_delivered(self, user_id: str, device_id: str, upto: int) -> None:
        await self.db.execute(
            "DELETE FROM to_device_messages WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
            user_id, device_id, upto,
        )

    async def prune_deleted_devices(self, user_id: str) -> None:
        """Drop the pending messages and remembered transactions of devices that are gone."""
        gone = "device_id NOT IN (SELECT device_id FROM devices WHERE user_id = ?)"
        async with self.db.transaction() as txn:
            for table in ("to_device_messages", "to_device_txns"):
                await txn.execute(f"DELETE FROM {table} WHERE user_id = ? AND {gone}", user_id, user_id)


class ToDevice:
    def __init__(self, store: ToDeviceStore, notifier: Notifier, server_name: str) -> None:
        self.store = store
        self.notifier = notifier
        self.server_name = server_name
        self.positions = StreamPositions(0)
        #: (user, device) -> the newest position of the messages stored for it, for every
        #: device with messages stored: a sync of any other device asks the database nothing.
        self._stored: dict[tuple[str, str], int] = {}
        #: Set by the server when federation is on: messages to other servers' users,
        #: remote(sender, type, message ID, {user: {device or '*': content}}).
        self.remote: Callable[[str, str, str, dict[str, dict[str, Any]]], Awaitable[None]] | None = None

    async def start(self) -> None:
        self.positions = StreamPositions(await self.store.position())
        self._stored = await self.store.newest_per_device()

    @property
    def position(self) -> int:
        return self.positions.current

    async def send(self, sender: str, sender_device: str, txn_id: str, event_type: str,
                   messages: dict[str, dict[str, dict[str, Any]]]) -> None:
        """PUT /sendToDevice: `messages` is {user: {device ID or '*': content}}. Unknown
        devices are skipped; users of other servers get theirs through their server (with
        federation on). A repeated (sender, device, txn ID) sends nothing."""
        local = sorted(user_id for user_id in messages if domain_of(user_id) == self.server_name)
        remote = {user_id: devices for user_id, devices in messages.items() if domain_of(user_id) != self.server_name}
        if remote and self.remote is not None and domain_of(sender) == self.server_name:
            await self.remote(sender, event_type, f"{sender_device}:{txn_id}", remote)
        devices = await self.store.devices_of(local)
        queued: list[tuple[str, str, str]] = []
        for user_id in local:
            contents = messages[user_id]
            for device_id in devices[user_id]:
                content = contents.get(device_id, contents.get("*"))
                if content is not None:
                    event = {"sender": sender, "type": event_type, "content": content}
                    queued.append((user_id, device_id, orjson.dumps(event).decode()))
        if not queued:
            return
        position = self.positions.allocate()
        try:
            added = await self.store.add((sender, sender_device, txn_id), position, queued, int(time.time() * 1000))
        finally:
            self.positions.finish(position)
        if added:
            for user_id, device_id, _ in queued:
                self._stored[(user_id, device_id)] = position
            self.notifier.notify([f"user:{user_id}" for user_id in {user_id for user_id, _, _ in queued}])

    async def confirm(self, user_id: str, device_id: str, since: int) -> None:
        """A sync with this token: the device has every message up to its position, which
        are deleted."""
        newest = self._stored.get((user_id, device_id))
        if newest is None:
            return
        await self.store.delete_delivered(user_id, device_id, since)
        if since >= newest and self._stored.get((user_id, device_id)) == newest:
            del self._stored[(user_id, device_id)]

    async def messages_for(self, user_id: str, device_id: str, since: int | None,
                           upto: int, limit: int = MAX_PER_SYNC) -> tuple[list[dict[str, Any]], int]:
        """The device's messages after `since` (None: an initial sync, all stored), up to
        `limit` (at least 1, at most MAX_PER_SYNC), and the position to put in the next token: `upto`,
        or the last message's position when more are waiting."""
        after = since or 0
        if self._stored.get((user_id, device_id), 0) <= after:
            return [], upto
        limit = max(1, min(limit, MAX_PER_SYNC))
        rows = await self.store.pending(user_id, device_id, after, upto, limit + 1)
        if len(rows) > limit:
            rows = rows[:limit]
            upto = rows[-1][0]
        return [orjson.loads(event) for _, event in rows], upto

    async def devices_changed(self, user_id: str, removed: bool) -> None:
        """The users service's hook: a removed device's messages go with it."""
        if removed:
            await self.store.prune_deleted_devices(user_id)
            for device in [device for device in self._stored if device[0] == user_id]:
                del self._stored[device]
            self._stored.update(await self.store.newest_per_device(user_id))
