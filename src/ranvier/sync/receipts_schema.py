"""Tables of the receipts stream."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "receipts",
    (
        Migration(
            1,
            "the latest receipt per (room, type, user, thread)",
            """
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_stream_ordering BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_stream ON receipts (room_id, stream_id);
""",
        ),
    ),
)
