"""The full-text index behind one interface: SQLite FTS5 or PostgreSQL full-text search.

Both keep one row per searchable event in `search_events` (its stream position, room,
sender, type, the history visibility it was sent under as one bit, whether it has a
`url`). On SQLite the row holds the words, which the FTS5 table `search_text` indexes
(its rowid is the stream position); on PostgreSQL a `tsvector` made by the `simple`
configuration, with a GIN index. The
words given to either are folded and split in Python first (`text.py`), so both engines
see the same words.

Ranking is a property of the event and the query alone, never of the rest of the index,
so a result keeps its rank while new messages arrive and pages neither repeat nor skip:
PostgreSQL's `ts_rank` (normalised by the log of the length), and on SQLite the number of
matched phrases, saturated and normalised by length as BM25 does, but with a fixed
average length and no document frequencies (FTS5's `bm25()` depends on the whole table).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from ranvier.search.access import RoomAccess, access_sql, visibility_bit
from ranvier.search.text import KEY_OF_TYPE, IndexedText, Term, searchable_text
from ranvier.storage.engine import Database, Statement, Transaction

log = logging.getLogger(__name__)

RANK, RECENT = "rank", "recent"
#: Events read per batch when an existing database is indexed.
_FILL_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class Document:
    """What one event gives the index, before it has a stream position."""

    text: IndexedText
    visibility: int
    contains_url: bool


def document_of(event_type: str, content: dict[str, Any], history_visibility: str) -> Document | None:
    """The index entry of an event, or None if it has no searchable text."""
    text = searchable_text(event_type, content)
    indexed = IndexedText.of(text) if text else None
    if indexed is None:
        return None
    return Document(indexed, visibility_bit(history_visibility), isinstance(content.get("url"), str))


@dataclass(frozen=True, slots=True)
class IndexRow:
    stream_ordering: int
    event_id: str
    room_id: str
    sender: str
    type: str
    document: Document


@dataclass(frozen=True)
class Criteria:
    """One search: terms that must all match, the rooms searched with what the searcher may
    read of each, the types (from the keys and the filter), the senders, and the stream
    position of the first page (later events are left out of later pages)."""

    terms: tuple[Term, ...]
    rooms: tuple[RoomAccess, ...]
    types: tuple[str, ...]
    senders: tuple[str, ...] | None
    not_senders: tuple[str, ...]
    contains_url: bool | None
    upto: int

    @property
    def finds_nothing(self) -> bool:
        """No term, no room, no type or no sender left: nothing to ask the database."""
        return not self.terms or not self.rooms or not self.types or self.senders == ()


@dataclass(frozen=True, slots=True)
class Hit:
    stream_ordering: int
    event_id: str
    room_id: str
    sender: str
    score: float


class SearchIndex(abc.ABC):
    dialect: str
    #: The column of the stream position in the engine's FROM clause.
    _position: str
    #: The relevance of a row (higher is closer), as an SQL expression.
    _score: str
    #: What keeps a subquery from being merged into its query (so its score is computed once).
    _kept_apart: str
    #: What makes a text comparison follow code points (see `access_sql`).
    byte_order: str = ""

    def __init__(self, db: Database) -> None:
        self.db = db

    #: The engine's own columns of a row, their SQL values, and their parameters from the text.
    _text_columns: str
    _text_values: str

    @staticmethod
    @abc.abstractmethod
    def _text_params(text: IndexedText) -> tuple[Any, ...]: ...

    @classmethod
    def insert_statements(cls, rows: list[IndexRow]) -> list[Statement]:
        return [Statement(
            "INSERT INTO search_events (stream_ordering, event_id, room_id, sender, type, visibility, contains_url, "
            f"{cls._text_columns}) VALUES (?, ?, ?, ?, ?, ?, ?, {cls._text_values})",
            [(r.stream_ordering, r.event_id, r.room_id, r.sender, r.type, r.document.visibility,
              int(r.document.contains_url), *cls._text_params(r.document.text)) for r in rows], many=True)]

    @staticmethod
    def delete_statements(targets: list[tuple[str, str]]) -> list[Statement]:
        """Take (room_id, event_id) pairs out of the index (redactions). The row is found by
        its stream position, read from the room server's events table by the unique event
        ID, so the index needs no index of its own on event IDs."""
        return [Statement("DELETE FROM search_events WHERE stream_ordering = "
                          "(SELECT stream_ordering FROM events WHERE event_id = ? AND room_id = ?)",
                          [(event_id, room_id) for room_id, event_id in targets], many=True)]

    @abc.abstractmethod
    def _matching(self, terms: tuple[Term, ...]) -> tuple[str, list[Any]]:
        """FROM and WHERE (up to the matching) of the rows matching every term."""

    def _where(self, criteria: Criteria) -> tuple[str, list[Any]]:
        matching, params = self._matching(criteria.terms)
        access, room_params = access_sql(list(criteria.rooms), byte_order=self.byte_order)
        conditions = [f"{self._position} <= ?", access, f"s.type IN ({_marks(criteria.types)})"]
        params += [criteria.upto, *room_params, *criteria.types]
        if criteria.senders is not None:
            conditions.append(f"s.sender IN ({_marks(criteria.senders)})")
            params += criteria.senders
        if criteria.not_senders:
            conditions.append(f"s.sender NOT IN ({_marks(criteria.not_senders)})")
            params += criteria.not_senders
        if criteria.contains_url is not None:
            conditions.append("s.contains_url = ?")
            params.append(int(criteria.contains_url))
        return f"{matching} AND {' AND '.join(conditions)}", params

    async def page(self, criteria: Criteria, order: str, after: tuple[float, int] | None, limit: int) -> list[Hit]:
        """The next `limit` results in `order` after (score, stream) of the previous page's last."""
        if criteria.finds_nothing:
            return []
        where, params = self._where(criteria)
        columns = f"s.stream_ordering AS stream, s.event_id, s.room_id, s.sender, {self._score} AS score"
        if order == RECENT:
            if after is not None:
                where += f" AND {self._position} < ?"
                params.append(after[1])
            sql = f"SELECT {columns} {where} ORDER BY {self._position} DESC LIMIT ?"
        elif after is None:
            sql = f"SELECT {columns} {where} ORDER BY score DESC, {self._position} DESC LIMIT ?"
        else:
            sql = (f"SELECT * FROM (SELECT {columns} {where}{self._kept_apart}) AS matches "
                   "WHERE score < ? OR (score = ? AND stream < ?) ORDER BY score DESC, stream DESC LIMIT ?")
            params += [after[0], after[0], after[1]]
        rows = await self.db.fetchall(sql, *params, limit)
        return [Hit(row[0], row[1], row[2], row[3], float(row[4])) for row in rows]

    async def count(self, criteria: Criteria) -> int:
        if criteria.finds_nothing:
            return 0
        where, params = self._where(criteria)
        return int(await self.db.fetchval(f"SELECT COUNT(*) {where}", *params))


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" * len(values))


class SqliteSearchIndex(SearchIndex):
    dialect = "sqlite"
    _position = "f.rowid"
    # Matched phrases: highlight() puts one character before each (and reads the row once).
    _hits = "(length(highlight(search_text, 0, char(1), '')) - length(s.words))"
    # BM25's saturation (k1 = 1.2, b = 0.75) over a fixed average length of 16 words,
    # 2.2 * hits / (hits + k), written so that the hits are counted once.
    _k = "(1.2 * (0.25 + 0.75 * s.length / 16.0))"
    _score = f"(2.2 - 2.2 * {_k} / ({_hits} + {_k}))"
    _kept_apart = " LIMIT -1"
    # A trigger adds the words to search_text.
    _text_columns, _text_values = "length, words", "?, ?"

    @staticmethod
    def _text_params(text: IndexedText) -> tuple[Any, ...]:
        return text.length, text.words

    def _matching(self, terms: tuple[Term, ...]) -> tuple[str, list[Any]]:
        # Every term is a quoted FTS5 string of plain words (no operator can hide in it);
        # a `*` after one makes its last word a prefix.
        expression = " AND ".join(f'"{" ".join(term.words)}"' + (" *" if term.prefix else "") for term in terms)
        # CROSS JOIN keeps FTS5 as the outer loop: the index finds the matches, each one
        # then reads its row by primary key.
        return ("FROM search_text f CROSS JOIN search_events s "
                "WHERE search_text MATCH ? AND s.stream_ordering = f.rowid"), [expression]


class PostgresSearchIndex(SearchIndex):
    dialect = "postgresql"
    _position = "s.stream_ordering"
    _score = "CAST(ts_rank(s.vector, q, 1) AS DOUBLE PRECISION)"
    _kept_apart = ""
    byte_order = ' COLLATE "C"'
    _text_columns, _text_values = "vector", "to_tsvector('simple', ?)"

    @staticmethod
    def _text_params(text: IndexedText) -> tuple[Any, ...]:
        return (text.words,)

    def _matching(self, terms: tuple[Term, ...]) -> tuple[str, list[Any]]:
        # Words hold letters, digits and marks only; quoted anyway, `<->` for phrases, `:*` for a prefix.
        def lexeme(word: str) -> str:
            return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

        query = " & ".join(
            "(" + " <-> ".join(lexeme(word) + (":*" if term.prefix and i == len(term.words) - 1 else "")
                               for i, word in enumerate(term.words)) + ")"
            for term in terms
        )
        return ("FROM search_events s CROSS JOIN to_tsquery('simple', ?) AS q WHERE s.vector @@ q"), [query]


INDEXES: dict[str, type[SearchIndex]] = {"sqlite": SqliteSearchIndex, "postgresql": PostgresSearchIndex}


def open_index(db: Database) -> SearchIndex:
    return INDEXES[db.dialect](db)


async def fill_from_events(txn: Transaction, dialect: str) -> None:
    """Index the events stored before the index existed (a migration step), in batches,
    logging how far it got; redacted events are left out."""
    types = tuple(KEY_OF_TYPE)
    kept = f"type IN ({_marks(types)}) AND redacted_by IS NULL"
    total = await txn.fetchval(f"SELECT COUNT(*) FROM events WHERE {kept}", *types)
    if not total:
        return
    log.info("search: indexing the %d searchable events already stored", total)
    insert_statements = INDEXES[dialect].insert_statements
    position, done = 0, 0
    while True:
        rows = await txn.fetchall(
            "SELECT stream_ordering, event_id, room_id, sender, type, history_visibility, json FROM events "
            f"WHERE {kept} AND stream_ordering > ? ORDER BY stream_ordering LIMIT ?",
            *types, position, _FILL_BATCH,
        )
        if not rows:
            break
        entries = []
        for stream, event_id, room_id, sender, event_type, history_visibility, json_text in rows:
            content = orjson.loads(json_text).get("content")
            document = document_of(event_type, content, history_visibility) if isinstance(content, dict) else None
            if document is not None:
                entries.append(IndexRow(stream, event_id, room_id, sender, event_type, document))
        if entries:
            await txn.execute_batch(insert_statements(entries))
        position, done = rows[-1][0], done + len(rows)
        log.info("search: %d of %d events indexed (%d%%)", done, total, done * 100 // total)
    if dialect == "postgresql":
        await txn.execute("ANALYZE search_events")  # the planner's statistics, before the first search
