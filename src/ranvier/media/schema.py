"""Tables owned by the media service."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "media",
    (
        Migration(
            1,
            "media IDs with their content hash, thumbnails by content hash",
            """
CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT,
    uploaded_ts BIGINT,
    content_hash TEXT,
    content_type TEXT,
    upload_name TEXT,
    size BIGINT
);
CREATE INDEX media_by_user ON media (user_id, uploaded_ts);
CREATE INDEX media_pending ON media (expires_ts) WHERE uploaded_ts IS NULL;
CREATE TABLE media_thumbnails (
    content_hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    animated INTEGER NOT NULL,
    thumbnail_hash TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (content_hash, width, height, method, animated)
);
""",
        ),
        Migration(
            2,
            "quarantine by a server admin, and media protected from it",
            """
ALTER TABLE media ADD COLUMN quarantined_by TEXT;
ALTER TABLE media ADD COLUMN safe_from_quarantine INTEGER NOT NULL DEFAULT 0;
CREATE INDEX media_by_created ON media (created_ts);
""",
        ),
        Migration(
            3,
            "other servers' media, fetched once and kept",
            """
CREATE TABLE remote_media (
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    content_type TEXT,
    upload_name TEXT,
    size BIGINT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    PRIMARY KEY (server_name, media_id)
);
""",
        ),
    ),
)
