"""Tables owned by the federation service."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "federation",
    (
        Migration(
            1,
            "other servers' signing keys, the PDUs and EDUs each destination is sent",
            """
CREATE TABLE federation_server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verify_key TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts BIGINT,
    fetched_ts BIGINT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
CREATE TABLE federation_pdu_destinations (
    destination TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (destination, stream_ordering)
);
CREATE TABLE federation_edus (
    position BIGINT PRIMARY KEY,
    destination TEXT NOT NULL,
    edu_type TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX federation_edus_by_destination ON federation_edus (destination, position);
""",
        ),
    ),
)
