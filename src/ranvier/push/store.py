"""All SQL of the push service: notifications, read positions and pushers.

A notifying event is stored once for the whole room (`room_notifications`: what the
server-default rules give a member no per-member condition names), and once more per
member only where that member's outcome differs (`member_notifications`: a mention, a
display name, the member's own rules, an invitee). A member's notifications are the
room's rows of the time they were joined (read from the room server's
`membership_history`), less the ones they sent or have a row of their own for, plus
their own rows. Storing one row per member would cost a thousand index insertions per
message in a room of a thousand.

Rows are compact: the room (or member), the event's stream ordering, its thread, notify,
highlight and the number of its list of actions (`push_action_sets`, each distinct list
once); the event's ID, sender and time are read from the event's row when listed.
Counting needs no sender: a local sender's read position moves past their own event in
the event's transaction (and other servers' users have no counts here).
"""

from __future__ import annotations

from typing import Any, Sequence

from ranvier.storage.engine import Database, Transaction, any_of, rows_of

#: `thread_id` of a notification in the main timeline (the spec's thread ID for it).
MAIN = "main"
#: `thread_id` of an unthreaded read position, which covers the main timeline and every thread.
UNTHREADED = ""

MemberRow = tuple[str, str, int, str, int, int, int]
"""(user_id, room_id, stream_ordering, thread_id, notify, highlight, actions_id)"""

RoomRow = tuple[str, int, str, int, int, int]
"""(room_id, stream_ordering, thread_id, notify, highlight, actions_id)"""

ReadRow = tuple[str, str, str, int]
"""(user_id, room_id, thread_id, stream_ordering)"""

NotificationRow = tuple[int, str, str, str, int, int, str | None, int | None]
"""(stream_ordering, room_id, event_id, thread_id, notify, highlight, actions, ts)"""

_ADVANCE = (
    "INSERT INTO push_read_positions (user_id, room_id, thread_id, stream_ordering) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_ordering = excluded.stream_ordering "
    "WHERE push_read_positions.stream_ordering < excluded.stream_ordering"
)

#: The room's rows that count for the member `?`: no row of their own.
_NOT_OWN = ("NOT EXISTS (SELECT 1 FROM member_notifications x WHERE x.user_id = ? "
            "AND x.room_id = b.room_id AND x.stream_ordering = b.stream_ordering)")

_PUSHER_COLUMNS = ("p.pusher_id, p.user_id, p.device_id, p.kind, p.app_id, p.pushkey, p.pushkey_ts, "
                   "p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data")
#: A pusher lives as long as the device that set it up (logout, device deletion, a
#: password change that logs the other devices out, deactivation).
_LIVE_PUSHERS = f"SELECT {_PUSHER_COLUMNS} FROM pushers p JOIN devices d ON d.user_id = p.user_id AND d.device_id = p.device_id"


class PushStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- notifications, written in the event's transaction ----------------------------------

    @staticmethod
    async def insert(txn: Transaction, action_sets: Sequence[tuple[int, str]], room_rows: Sequence[RoomRow],
                     member_rows: Sequence[MemberRow]) -> None:
        """Store notifications, with the lists of actions they name (new or not).

        Writes to different rooms commit concurrently on PostgreSQL, and two may add the
        same new list (the same number and text) at once: a conflict on either unique
        column is then nothing to do. (Naming only the number as the conflict target let
        a race on the text's index fail the send.)"""
        await txn.executemany("INSERT INTO push_action_sets (actions_id, actions) VALUES (?, ?) "
                              "ON CONFLICT DO NOTHING", action_sets)
        await txn.executemany(
            "INSERT INTO room_notifications (room_id, stream_ordering, thread_id, notify, highlight, actions_id) "
            "VALUES (?, ?, ?, ?, ?, ?)", room_rows,
        )
        await txn.executemany(
            "INSERT INTO member_notifications (user_id, room_id, stream_ordering, thread_id, notify, highlight, "
            "actions_id) VALUES (?, ?, ?, ?, ?, ?, ?)", member_rows,
        )

    async def action_sets(self) -> list[tuple[int, str]]:
        """(actions_id, actions as JSON) of every list of actions stored."""
        return await self.db.fetchall("SELECT actions_id, actions FROM push_action_sets")

    @staticmethod
    async def advance_in(txn: Transaction, rows: Sequence[ReadRow]) -> None:
        """Move read positions forward (never back) inside a transaction."""
        await txn.executemany(_ADVANCE, rows)

    async def advance(self, row: ReadRow) -> None:
        await self.db.execute(_ADVANCE, *row)

    # -- purging (a rooms.admin.PurgeHook) --------------------------------------------------

    @staticmethod
    async def purge_room(txn: Transaction, room_id: str) -> None:
        for table in ("room_notifications", "member_notifications", "push_read_positions"):
            await txn.execute(f"DELETE FROM {table} WHERE room_id = ?", room_id)

    @staticmethod
    async def purge_events(txn: Transaction, room_id: str, event_ids: Sequence[str]) -> None:
        """Called before the events' own rows go (their stream orderings are read from them)."""
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start:start + 500]
            for table in ("room_notifications", "member_notifications"):
                await txn.execute(f"DELETE FROM {table} WHERE room_id = ? AND stream_ordering IN (SELECT "
                                  f"stream_ordering FROM events WHERE event_id IN ({', '.join('?' * len(chunk))}))",
                                  room_id, *chunk)

    # -- pruning (push/retention.py) -------------------------------------------------------

    async def stream_before(self, ts: int) -> int:
        """The last stream position of an event sent before `ts` (by the events' own times,
        which follow stream order closely enough for a retention), by a binary search on
        the events' primary key: a few lookups, no scan."""
        low, high = await self.db.fetchone("SELECT COALESCE(MIN(stream_ordering), 0), COALESCE(MAX(stream_ordering), 0) "
                                           "FROM events WHERE stream_ordering > 0")
        found = 0
        while low <= high:
            middle = (low + high) // 2
            row = await self.db.fetchone("SELECT stream_ordering, origin_server_ts FROM events "
                                         "WHERE stream_ordering >= ? ORDER BY stream_ordering LIMIT 1", middle)
            if row is None or row[1] >= ts:
                high = middle - 1
            else:
                found, low = row[0], row[0] + 1
        return found

    async def rooms_after(self, room_id: str, limit: int) -> list[str]:
        """The next rooms (of the room server's), in room ID order."""
        return [row[0] for row in await self.db.fetchall(
            "SELECT room_id FROM rooms WHERE room_id > ? ORDER BY room_id LIMIT ?", room_id, limit)]

    async def read_floors(self, room_ids: Sequence[str], local_pattern: str) -> list[tuple[str, str, int, int]]:
        """(room_id, user_id, main floor, thread floor) of each joined local member (user IDs
        LIKE `local_pattern`): nothing at or below the floor of the main timeline or a thread
        counts for them any more (the start of their stay, their unthreaded read position,
        and for the main timeline its own one; threads' own positions are left out, which
        only keeps more)."""
        if not room_ids:
            return []
        wanted, ids = rows_of(self.db, room_ids)
        rows = await self.db.fetchall(
            f"WITH wanted(room_id) AS ({wanted}), "
            "members AS (SELECT m.room_id, m.user_id, COALESCE((SELECT MAX(h.stream_ordering) FROM membership_history h "
            "WHERE h.room_id = m.room_id AND h.user_id = m.user_id AND h.membership <> 'join'), 0) AS left_at "
            "FROM memberships m JOIN wanted w ON w.room_id = m.room_id "
            "WHERE m.membership = 'join' AND m.user_id LIKE ? ESCAPE '\\') "
            "SELECT s.room_id, s.user_id, COALESCE((SELECT MIN(h.stream_ordering) FROM membership_history h "
            "WHERE h.room_id = s.room_id AND h.user_id = s.user_id AND h.membership = 'join' "
            "AND h.stream_ordering > s.left_at), 0), COALESCE(u.stream_ordering, 0), COALESCE(t.stream_ordering, 0) "
            "FROM members s "
            "LEFT JOIN push_read_positions u ON u.user_id = s.user_id AND u.room_id = s.room_id AND u.thread_id = '' "
            "LEFT JOIN push_read_positions t ON t.user_id = s.user_id AND t.room_id = s.room_id AND t.thread_id = 'main'",
            ids, local_pattern,
        )
        return [(room_id, user_id, max(joined, unthreaded, main), max(joined, unthreaded))
                for room_id, user_id, joined, unthreaded, main in rows]

    async def prune_rooms(self, room_limits: Sequence[tuple[str, int, int, int, int]],
                          member_limits: Sequence[tuple[str, str, int, int, int, int]]) -> None:
        """In one transaction: the room's rows up to the given positions, (room_id, main
        plain, main highlight, threads plain, threads highlight: highlights are kept longer),
        then the joined members' own rows, (user_id, room_id, and the same four), where the
        room's row of the event is gone (while it stays, their row says it is not theirs)."""
        plain_and_highlight = "stream_ordering <= ? AND (highlight = 0 OR stream_ordering <= ?)"
        no_room_row = ("NOT EXISTS (SELECT 1 FROM room_notifications b WHERE b.room_id = member_notifications.room_id "
                       "AND b.stream_ordering = member_notifications.stream_ordering)")
        async with self.db.transaction() as txn:
            await txn.executemany(
                f"DELETE FROM room_notifications WHERE room_id = ? AND thread_id = 'main' AND {plain_and_highlight}",
                [(room_id, plain, highlight) for room_id, plain, highlight, _, _ in room_limits])
            await txn.executemany(
                f"DELETE FROM room_notifications WHERE room_id = ? AND thread_id <> 'main' AND {plain_and_highlight}",
                [(room_id, plain, highlight) for room_id, _, _, plain, highlight in room_limits])
            await txn.executemany(
                f"DELETE FROM member_notifications WHERE user_id = ? AND room_id = ? AND thread_id = 'main' "
                f"AND {plain_and_highlight} AND {no_room_row}",
                [(user_id, room_id, plain, highlight) for user_id, room_id, plain, highlight, _, _ in member_limits])
            await txn.executemany(
                f"DELETE FROM member_notifications WHERE user_id = ? AND room_id = ? AND thread_id <> 'main' "
                f"AND {plain_and_highlight} AND {no_room_row}",
                [(user_id, room_id, plain, highlight) for user_id, room_id, _, _, plain, highlight in member_limits])

    async def users_after(self, user_id: str, limit: int) -> list[str]:
        """The next local users (of the users service's), in user ID order."""
        return [row[0] for row in await self.db.fetchall(
            "SELECT user_id FROM users WHERE user_id > ? ORDER BY user_id LIMIT ?", user_id, limit)]

    async def prune_former_members(self, user_ids: Sequence[str], plain: int, highlight: int) -> None:
        """The users' own rows up to the positions given (highlights to the second) in rooms
        they are not joined to (left, or only invited), where the room's row is gone."""
        async with self.db.transaction() as txn:
            await txn.executemany(
                "DELETE FROM member_notifications WHERE user_id = ? AND stream_ordering <= ? "
                "AND (highlight = 0 OR stream_ordering <= ?) AND NOT EXISTS (SELECT 1 FROM room_notifications b "
                "WHERE b.room_id = member_notifications.room_id AND b.stream_ordering = member_notifications.stream_ordering) "
                "AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = member_notifications.room_id "
                "AND m.user_id = member_notifications.user_id AND m.membership = 'join')",
                [(user_id, plain, highlight) for user_id in user_ids])

    # -- reading ---------------------------------------------------------------------------

    async def unread(self, user_id: str, room_ids: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """(room_id, thread_id, notifications, highlights) of what the user has not read, in one
        query (a room and thread may come twice; the caller adds them up).

        A notification is read when it is at or before the room's unthreaded read position
        or its thread's. The main timeline is scanned from the later of the two, and threads
        (through their own indexes) from the unthreaded one, so a user who only ever reads
        the main timeline (as clients with threads do) costs what is unread, not the room's
        whole history. The room's rows count from the start of the member's current stay.
        The literal 'main' lets the planners pick the partial indexes.
        """
        if not room_ids:
            return []
        wanted, ids = rows_of(self.db, room_ids)
        threads_unread = (
            "LEFT JOIN push_read_positions t ON t.user_id = ? AND t.room_id = {a}.room_id "
            "AND t.thread_id = {a}.thread_id WHERE (t.stream_ordering IS NULL OR {a}.stream_ordering > t.stream_ordering)"
        )
        rows = await self.db.fetchall(
            f"WITH wanted(room_id) AS ({wanted}), "
            "stays AS (SELECT wanted.room_id, COALESCE((SELECT MAX(h.stream_ordering) FROM membership_history h "
            "WHERE h.room_id = wanted.room_id AND h.user_id = ? AND h.membership <> 'join'), 0) AS left_at FROM wanted), "
            "starts AS (SELECT s.room_id, COALESCE(u.stream_ordering, 0) AS unthreaded, "
            "CASE WHEN COALESCE(m.stream_ordering, 0) > COALESCE(u.stream_ordering, 0) "
            "THEN m.stream_ordering ELSE COALESCE(u.stream_ordering, 0) END AS main_read, "
            "(SELECT MIN(h.stream_ordering) FROM membership_history h WHERE h.room_id = s.room_id AND h.user_id = ? "
            "AND h.membership = 'join' AND h.stream_ordering > s.left_at) AS joined FROM stays s "
            "LEFT JOIN push_read_positions u ON u.user_id = ? AND u.room_id = s.room_id AND u.thread_id = '' "
            "LEFT JOIN push_read_positions m ON m.user_id = ? AND m.room_id = s.room_id AND m.thread_id = 'main') "
            "SELECT a.room_id, a.thread_id, SUM(a.notify), SUM(a.highlight) FROM starts "
            "JOIN member_notifications a ON a.user_id = ? AND a.room_id = starts.room_id "
            "AND a.stream_ordering > starts.main_read WHERE a.thread_id = 'main' GROUP BY a.room_id, a.thread_id "
            "UNION ALL "
            "SELECT a.room_id, a.thread_id, SUM(a.notify), SUM(a.highlight) FROM starts "
            "JOIN member_notifications a ON a.user_id = ? AND a.room_id = starts.room_id "
            "AND a.stream_ordering > starts.unthreaded AND a.thread_id <> 'main' "
            + threads_unread.format(a="a") + " GROUP BY a.room_id, a.thread_id "
            "UNION ALL "
            "SELECT b.room_id, b.thread_id, SUM(b.notify), SUM(b.highlight) FROM starts "
            "JOIN room_notifications b ON b.room_id = starts.room_id AND b.stream_ordering > starts.main_read "
            f"AND b.stream_ordering > starts.joined WHERE b.thread_id = 'main' AND {_NOT_OWN} "
            "GROUP BY b.room_id, b.thread_id "
            "UNION ALL "
            "SELECT b.room_id, b.thread_id, SUM(b.notify), SUM(b.highlight) FROM starts "
            "JOIN room_notifications b ON b.room_id = starts.room_id AND b.stream_ordering > starts.unthreaded "
            "AND b.stream_ordering > starts.joined AND b.thread_id <> 'main' "
            + threads_unread.format(a="b") + f" AND {_NOT_OWN} GROUP BY b.room_id, b.thread_id",
            ids, *[user_id] * 10,
        )
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    async def notifications(self, user_id: str, *, after: int = 0, before: int | None = None, limit: int,
                            highlight_only: bool = False, newest_first: bool = True) -> list[NotificationRow]:
        """The events that notified the user (the `notify` action) with after < stream < before,
        newest or oldest first: their own rows, and the room's rows of the rooms they were
        joined to at the time, but for their own events."""
        before = before if before is not None else 2**62
        highlight = " AND {t}.highlight = 1" if highlight_only else ""
        return await self.db.fetchall(
            "SELECT n.stream_ordering, n.room_id, e.event_id, n.thread_id, n.notify, n.highlight, s.actions, "
            "e.origin_server_ts FROM ("
            "SELECT a.stream_ordering, a.room_id, a.thread_id, a.notify, a.highlight, a.actions_id "
            "FROM member_notifications a WHERE a.user_id = ? AND a.notify = 1 AND a.stream_ordering > ? "
            "AND a.stream_ordering < ?" + highlight.format(t="a") + " UNION ALL "
            "SELECT b.stream_ordering, b.room_id, b.thread_id, b.notify, b.highlight, b.actions_id "
            "FROM room_notifications b WHERE b.notify = 1 AND b.stream_ordering > ? AND b.stream_ordering < ?"
            + highlight.format(t="b") + " AND b.room_id IN (SELECT room_id FROM membership_history WHERE user_id = ?) "
            "AND (SELECT h.membership FROM membership_history h WHERE h.room_id = b.room_id AND h.user_id = ? "
            "AND h.stream_ordering < b.stream_ordering ORDER BY h.stream_ordering DESC LIMIT 1) = 'join' "
            f"AND {_NOT_OWN} AND NOT EXISTS (SELECT 1 FROM events o WHERE o.stream_ordering = b.stream_ordering "
            "AND o.sender = ?)) n JOIN events e ON e.stream_ordering = n.stream_ordering "
            "JOIN push_action_sets s ON s.actions_id = n.actions_id "
            f"ORDER BY n.stream_ordering {'DESC' if newest_first else 'ASC'} LIMIT ?",
            user_id, after, before, after, before, user_id, user_id, user_id, user_id, limit,
        )

    async def read_positions(self, user_id: str, room_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """(room_id, thread_id) -> read position, for the user's rooms given."""
        if not room_ids:
            return {}
        condition, ids = any_of(self.db, room_ids)
        rows = await self.db.fetchall(
            f"SELECT room_id, thread_id, stream_ordering FROM push_read_positions WHERE user_id = ? AND room_id {condition}",
            user_id, ids,
        )
        return {(room_id, thread_id): stream for room_id, thread_id, stream in rows}

    # -- pushers ---------------------------------------------------------------------------

    async def max_pusher_id(self) -> int:
        return await self.db.fetchval("SELECT COALESCE(MAX(pusher_id), 0) FROM pushers")

    async def live_pushers(self) -> list[tuple[int, str]]:
        """(pusher_id, user_id) of every pusher whose device still exists."""
        return await self.db.fetchall("SELECT p.pusher_id, p.user_id FROM pushers p JOIN devices d "
                                      "ON d.user_id = p.user_id AND d.device_id = p.device_id")

    async def pushers_of(self, user_id: str) -> list[tuple[Any, ...]]:
        return await self.db.fetchall(f"{_LIVE_PUSHERS} WHERE p.user_id = ? ORDER BY p.pusher_id", user_id)

    async def pusher(self, pusher_id: int) -> tuple[Any, ...] | None:
        return await self.db.fetchone(f"{_LIVE_PUSHERS} WHERE p.pusher_id = ?", pusher_id)

    async def set_pusher(self, new_id: int, row: tuple[Any, ...], *, replace_others: bool) -> tuple[int, list[int]]:
        """Create or update the pusher of (user, app_id, pushkey); without `append`, the same
        app and pushkey of other users is removed. Returns (its ID, IDs removed)."""
        (user_id, device_id, kind, app_id, pushkey, pushkey_ts, app_name, device_name, profile_tag, lang,
         data) = row
        async with self.db.transaction() as txn:
            existing = await txn.fetchone(
                "SELECT pusher_id, pushkey_ts FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                user_id, app_id, pushkey,
            )
            removed: list[int] = []
            if replace_others:
                removed = [r[0] for r in await txn.fetchall(
                    "SELECT pusher_id FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?",
                    app_id, pushkey, user_id)]
                await txn.execute("DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?",
                                  app_id, pushkey, user_id)
            if existing is not None:
                await txn.execute(
                    "UPDATE pushers SET device_id = ?, kind = ?, app_display_name = ?, device_display_name = ?, "
                    "profile_tag = ?, lang = ?, data = ? WHERE pusher_id = ?",
                    device_id, kind, app_name, device_name, profile_tag, lang, data, existing[0],
                )
                return existing[0], removed
            await txn.execute(
                "INSERT INTO pushers (pusher_id, user_id, device_id, kind, app_id, pushkey, pushkey_ts, "
                "app_display_name, device_display_name, profile_tag, lang, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                new_id, user_id, device_id, kind, app_id, pushkey, pushkey_ts, app_name, device_name, profile_tag,
                lang, data,
            )
            return new_id, removed

    async def delete_pushers(self, user_id: str, app_id: str, pushkey: str) -> list[int]:
        async with self.db.transaction() as txn:
            rows = await txn.fetchall("SELECT pusher_id FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                                      user_id, app_id, pushkey)
            await txn.execute("DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                              user_id, app_id, pushkey)
        return [r[0] for r in rows]

    async def delete_pusher(self, pusher_id: int) -> None:
        await self.db.execute("DELETE FROM pushers WHERE pusher_id = ?", pusher_id)
