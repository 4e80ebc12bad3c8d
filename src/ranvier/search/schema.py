"""Tables owned by the search service: the full-text index of searchable events.

The index is an engine's own feature, so its migration has one script per engine. On
SQLite the FTS5 table indexes the `words` of `search_events` (external content: the text
is stored once), kept in step by triggers, so a row is written and deleted with one
statement; its rowid is the stream position, and the length in words feeds the rank. It then indexes whatever events the database already holds,
logging its progress.
"""

from ranvier.search.index import fill_from_events
from ranvier.storage.migrations import Migration, Schema

#: The columns of `search_events` on both engines, after the stream position.
_COLUMNS = """
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    visibility INTEGER NOT NULL,
    contains_url INTEGER NOT NULL,"""

SCHEMA = Schema(
    "search",
    (
        Migration(
            1,
            "the full-text index of messages, room names and topics; filled from the events already stored",
            {
                "sqlite": f"""
CREATE TABLE search_events (
    stream_ordering INTEGER PRIMARY KEY,{_COLUMNS}
    length INTEGER NOT NULL,
    words TEXT NOT NULL
);
CREATE VIRTUAL TABLE search_text USING fts5 (words, content = 'search_events', content_rowid = 'stream_ordering', tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'");
CREATE TRIGGER search_text_insert AFTER INSERT ON search_events BEGIN INSERT INTO search_text (rowid, words) VALUES (new.stream_ordering, new.words); END;
CREATE TRIGGER search_text_delete AFTER DELETE ON search_events BEGIN INSERT INTO search_text (search_text, rowid, words) VALUES ('delete', old.stream_ordering, old.words); END;
""",
                "postgresql": f"""
CREATE TABLE search_events (
    stream_ordering BIGINT PRIMARY KEY,{_COLUMNS}
    vector TSVECTOR NOT NULL
);
CREATE INDEX search_events_by_words ON search_events USING GIN (vector);
""",
            },
            fill=fill_from_events,
        ),
    ),
)
