"""Tables owned by the search service: the full-text index of searchable events.

The index is an engine's own feature, so its migration has one script per engine. It
then indexes whatever events the database already holds, logging its progress.
"""

from ranvier.search.index import fill_from_events
from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "search",
    (
        Migration(
            1,
            "the full-text index of messages, room names and topics; filled from the events already stored",
            {
                "sqlite": """
CREATE TABLE search_events (
    stream_ordering INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    visibility INTEGER NOT NULL,
    contains_url INTEGER NOT NULL,
    length INTEGER NOT NULL
);
CREATE VIRTUAL TABLE search_text USING fts5 (words, tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'");
""",
                "postgresql": """
CREATE TABLE search_events (
    stream_ordering BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    visibility INTEGER NOT NULL,
    contains_url INTEGER NOT NULL,
    vector TSVECTOR NOT NULL
);
CREATE INDEX search_events_by_words ON search_events USING GIN (vector);
""",
            },
            fill=fill_from_events,
        ),
    ),
)
