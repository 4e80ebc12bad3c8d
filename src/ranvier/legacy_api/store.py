"""All SQL of the draft API's own tables (`schema.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ranvier.storage.engine import Database, Transaction
from ranvier.sync.receipts_store import Receipt

_FEEDBACK_COLUMNS = "room_id, event_id, message_stream, user_id, feedback, sender_ts, hs_ts, stream_id"


@dataclass(frozen=True, slots=True)
class Feedback:
    """A delivery ("d") or read ("r") feedback on a message: given through the draft API
    (source "feedback"), or a read receipt of today's API shown as one (source "receipt")."""

    room_id: str
    #: The message the feedback is about, and its stream position.
    event_id: str
    message_stream: int
    user_id: str
    kind: str
    sender_ts: int | None
    hs_ts: int
    #: Its position in its own stream (legacy feedback or receipts).
    stream_id: int
    source: str = "feedback"

    @classmethod
    def of_receipt(cls, receipt: Receipt, message_stream: int) -> "Feedback":
        """Today's read receipt as the draft's read feedback (it has no sender_ts)."""
        return cls(receipt.room_id, receipt.event_id, message_stream, receipt.user_id, "r", None, receipt.ts,
                   receipt.stream_id, "receipt")

    @property
    def feedback_event_id(self) -> str:
        """Its own event ID in the draft's event stream."""
        return f"{self.source}-{self.stream_id}"


def _chunks(values: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _marks(values: list) -> str:
    return ", ".join("?" * len(values))


class LegacyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- message IDs ---------------------------------------------------------------------

    @staticmethod
    async def write_msg_ids(txn: Transaction, rows: list[tuple[str, str, str, str]]) -> None:
        """(event_id, room_id, sender, msg_id) rows, in the transaction of their events."""
        await txn.executemany(
            "INSERT INTO legacy_messages (event_id, room_id, sender, msg_id) VALUES (?, ?, ?, ?)", rows
        )

    async def msg_ids(self, event_ids: list[str]) -> dict[str, str]:
        """event_id -> msg_id of the messages sent through the draft API among these events."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(event_ids))):
            rows = await self.db.fetchall(
                f"SELECT event_id, msg_id FROM legacy_messages WHERE event_id IN ({_marks(chunk)})", *chunk
            )
            found.update((row[0], row[1]) for row in rows)
        return found

    async def event_of_msg_id(self, room_id: str, sender: str, msg_id: str) -> str | None:
        return await self.db.fetchval(
            "SELECT event_id FROM legacy_messages WHERE room_id = ? AND sender = ? AND msg_id = ?",
            room_id, sender, msg_id,
        )

    # -- feedback ------------------------------------------------------------------------

    async def max_feedback_stream(self) -> int:
        return await self.db.fetchval("SELECT COALESCE(MAX(stream_id), 0) FROM legacy_feedback")

    async def add_feedback(self, feedback: Feedback) -> bool:
        """Store a feedback unless the same user gave the same kind on the message before."""
        return bool(await self.db.execute(
            f"INSERT INTO legacy_feedback ({_FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (event_id, user_id, feedback) DO NOTHING",
            feedback.room_id, feedback.event_id, feedback.message_stream, feedback.user_id, feedback.kind,
            feedback.sender_ts, feedback.hs_ts, feedback.stream_id,
        ))

    async def feedback_on(self, event_ids: list[str]) -> list[Feedback]:
        """Every feedback on these messages, oldest first."""
        found: list[Feedback] = []
        for chunk in _chunks(list(dict.fromkeys(event_ids))):
            rows = await self.db.fetchall(
                f"SELECT {_FEEDBACK_COLUMNS} FROM legacy_feedback WHERE event_id IN ({_marks(chunk)})", *chunk
            )
            found += [Feedback(*row) for row in rows]
        found.sort(key=lambda feedback: feedback.stream_id)
        return found

    async def feedback_page(self, room_ids: list[str], *, after: int, upto: int, backwards: bool,
                            limit: int) -> list[Feedback]:
        """Up to `limit` feedbacks in these rooms with after < stream_id <= upto, in stream order
        (newest first when backwards)."""
        order = "DESC" if backwards else "ASC"
        found: list[Feedback] = []
        for chunk in _chunks(room_ids):
            rows = await self.db.fetchall(
                f"SELECT {_FEEDBACK_COLUMNS} FROM legacy_feedback WHERE room_id IN ({_marks(chunk)}) "
                f"AND stream_id > ? AND stream_id <= ? ORDER BY stream_id {order} LIMIT ?",
                *chunk, after, upto, limit,
            )
            found += [Feedback(*row) for row in rows]
        found.sort(key=lambda feedback: feedback.stream_id, reverse=backwards)
        return found[:limit]

    # -- presence ------------------------------------------------------------------------

    async def presence_states(self, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """user_id -> (draft state, the presence stream position it was set at)."""
        found: dict[str, tuple[int, int]] = {}
        for chunk in _chunks(list(dict.fromkeys(user_ids))):
            rows = await self.db.fetchall(
                f"SELECT user_id, state, presence_stream FROM legacy_presence_states "
                f"WHERE user_id IN ({_marks(chunk)})", *chunk
            )
            found.update((row[0], (row[1], row[2])) for row in rows)
        return found

    async def set_presence_state(self, user_id: str, state: int, presence_stream: int) -> None:
        await self.db.execute(
            "INSERT INTO legacy_presence_states (user_id, state, presence_stream) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, presence_stream = excluded.presence_stream",
            user_id, state, presence_stream,
        )

    async def presence_list(self, user_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT observed FROM legacy_presence_lists WHERE user_id = ? ORDER BY observed", user_id
        )
        return [row[0] for row in rows]

    async def change_presence_list(self, user_id: str, add: list[str], drop: list[str]) -> None:
        """Add and remove observed users in one transaction; adding twice is harmless."""
        async with self.db.transaction() as txn:
            await txn.executemany(
                "INSERT INTO legacy_presence_lists (user_id, observed) VALUES (?, ?) "
                "ON CONFLICT (user_id, observed) DO NOTHING",
                [(user_id, observed) for observed in add],
            )
            await txn.executemany(
                "DELETE FROM legacy_presence_lists WHERE user_id = ? AND observed = ?",
                [(user_id, observed) for observed in drop],
            )
