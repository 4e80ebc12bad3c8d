"""Tables owned by the sync service."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "sync",
    (
        Migration(
            1,
            "stored filters",
            """
CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id TEXT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
""",
        ),
    ),
)
