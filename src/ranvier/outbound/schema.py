"""Tables owned by the outbound delivery queues."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "outbound",
    (
        Migration(
            1,
            "one row per destination of each queue: what was delivered, and its retry state",
            """
CREATE TABLE outbound_destinations (
    queue TEXT NOT NULL,
    destination TEXT NOT NULL,
    position BIGINT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    PRIMARY KEY (queue, destination)
);
""",
        ),
    ),
)
