"""Reporting content (spec: client-server API, "Reporting Content").

Users report an event, a room or a user; each report is stored for the server's admins
(`reports` table, see reports_schema.py). Reading them back is `list_reports` and
`get_report`, served by the admin API (admin_api/reports.py); the spec has no endpoint
for it.

Who may report: an event only by a user joined to its room who can see the event (404
M_NOT_FOUND otherwise, so reports reveal nothing); a room or a user by anyone, as the
spec requires, as long as the room or the (local) user exists.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from ranvier.errors import MatrixError
from ranvier.events import auth as auth_rules
from ranvier.events.identifiers import InvalidIdentifier, domain_of, parse_user_id
from ranvier.rooms.service import JOIN, RoomServer
from ranvier.rooms.visibility import is_visible
from ranvier.storage.engine import Database

#: Longest reason kept, in characters.
MAX_REASON = 10_000
EVENT, ROOM, USER = "event", "room", "user"


@dataclass(frozen=True)
class Report:
    report_id: str
    kind: str  # event, room or user
    reporter: str
    room_id: str | None
    event_id: str | None
    #: The reported user: the target of a user report, the sender of a reported event.
    user_id: str | None
    reason: str | None
    score: int | None
    received_ts: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = "report_id, kind, reporter, room_id, event_id, user_id, reason, score, received_ts"


def _check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > MAX_REASON:
        raise MatrixError("M_INVALID_PARAM", f"reason must be at most {MAX_REASON} characters")


class ReportService:
    def __init__(self, db: Database, rooms: RoomServer) -> None:
        self.db = db
        self.rooms = rooms
        self._last_ms = 0
        self._sequence = 0

    async def _store(self, kind: str, reporter: str, *, room_id: str | None = None, event_id: str | None = None,
                     user_id: str | None = None, reason: str | None = None, score: int | None = None) -> Report:
        now = int(time.time() * 1000)
        # IDs sort in the order reports arrive (a sequence number within the millisecond).
        self._sequence = self._sequence + 1 if now == self._last_ms else 0
        self._last_ms = now
        report = Report(f"{now:013d}{self._sequence:05d}{secrets.token_hex(4)}", kind, reporter, room_id, event_id,
                        user_id, reason, score, now)
        await self.db.execute(
            f"INSERT INTO reports ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            report.report_id, kind, reporter, room_id, event_id, user_id, reason, score, report.received_ts,
        )
        return report

    # -- reporting -----------------------------------------------------------------------

    async def report_event(self, reporter: str, room_id: str, event_id: str, *, reason: str | None = None,
                           score: int | None = None) -> Report:
        _check_reason(reason)
        if score is not None and not -100 <= score <= 0:
            raise MatrixError("M_INVALID_PARAM", "score must be an integer between -100 and 0")
        not_found = MatrixError("M_NOT_FOUND", "The event was not found or you are not joined to the room")
        if not await self.rooms.room_exists(room_id):
            raise not_found
        head = await self.rooms.head(room_id)
        if auth_rules.membership_of(head.state, reporter) != JOIN:
            raise not_found
        row = (await self.rooms.store.get_event_rows([event_id])).get(event_id)
        if row is None or row.event.room_id != room_id:
            raise not_found
        history = await self.rooms.store.membership_history(room_id, reporter)
        if not is_visible(row, reporter, history):
            raise not_found
        return await self._store(EVENT, reporter, room_id=room_id, event_id=event_id, user_id=row.event.sender,
                                 reason=reason, score=score)

    async def report_room(self, reporter: str, room_id: str, *, reason: str) -> Report:
        _check_reason(reason)
        if not await self.rooms.room_exists(room_id):
            raise MatrixError("M_NOT_FOUND", "The room was not found")
        return await self._store(ROOM, reporter, room_id=room_id, reason=reason)

    async def report_user(self, reporter: str, user_id: str, *, reason: str) -> Report:
        _check_reason(reason)
        try:
            parse_user_id(user_id)
        except InvalidIdentifier:
            raise MatrixError("M_INVALID_PARAM", "Not a valid user ID") from None
        if domain_of(user_id) == self.rooms.server_name and await self.rooms.users.get_account(user_id) is None:
            raise MatrixError("M_NOT_FOUND", "The user was not found")
        return await self._store(USER, reporter, user_id=user_id, reason=reason)

    # -- for admins ------------------------------------------------------------------------

    async def get_report(self, report_id: str) -> Report | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM reports WHERE report_id = ?", report_id)
        return Report(*row) if row else None

    async def delete_report(self, report_id: str) -> bool:
        return bool(await self.db.execute("DELETE FROM reports WHERE report_id = ?", report_id))

    async def page(self, kind: str, *, start: int, limit: int, backwards: bool, room_id: str | None = None,
                   reporter: str | None = None, user_id: str | None = None) -> tuple[list[Report], int]:
        """Offset paging for the admin API: a page of the reports of one kind (newest first
        when `backwards`, Synapse's default) and how many match."""
        conditions, params = ["kind = ?"], [kind]
        for column, value in (("room_id", room_id), ("reporter", reporter), ("user_id", user_id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = " AND ".join(conditions)
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM reports WHERE {where} ORDER BY received_ts {order}, report_id {order} "
            "LIMIT ? OFFSET ?", *params, limit, start,
        )
        total = await self.db.fetchval(f"SELECT COUNT(*) FROM reports WHERE {where}", *params)
        return [Report(*row) for row in rows], int(total)

    async def list_reports(self, *, limit: int = 100, from_token: str | None = None, kind: str | None = None,
                           room_id: str | None = None, user_id: str | None = None,
                           reporter: str | None = None) -> tuple[list[Report], str | None]:
        """Reports newest first, optionally of one kind, room, reported user or reporter;
        returns a page and the token of the next page (None at the end)."""
        conditions, params = [], []
        for column, value in (("kind", kind), ("room_id", room_id), ("user_id", user_id), ("reporter", reporter)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if from_token is not None:
            try:
                ts, report_id = orjson.loads(base64.urlsafe_b64decode(from_token + "=" * (-len(from_token) % 4)))
                if type(ts) is not int or not isinstance(report_id, str):
                    raise ValueError
            except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
                raise MatrixError("M_INVALID_PARAM", "from is not a token of this server") from None
            conditions.append("(received_ts < ? OR (received_ts = ? AND report_id < ?))")
            params += [ts, ts, report_id]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM reports {where} ORDER BY received_ts DESC, report_id DESC LIMIT ?",
            *params, limit + 1,
        )
        reports = [Report(*row) for row in rows[:limit]]
        next_token = None
        if len(rows) > limit and reports:
            last = reports[-1]
            next_token = base64.urlsafe_b64encode(orjson.dumps([last.received_ts, last.report_id])).decode().rstrip("=")
        return reports, next_token
