"""Tables of content reports (rooms/reports.py): users' reports of events, rooms and users."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "reports",
    (
        Migration(
            1,
            "reports of events, rooms and users, kept for the server's admins",
            """
CREATE TABLE reports (
    report_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    user_id TEXT,
    reason TEXT,
    score INTEGER,
    received_ts BIGINT NOT NULL
);
CREATE INDEX reports_by_time ON reports (received_ts, report_id);
CREATE INDEX reports_by_room ON reports (room_id, received_ts);
CREATE INDEX reports_by_user ON reports (user_id, received_ts);
""",
        ),
    ),
)
