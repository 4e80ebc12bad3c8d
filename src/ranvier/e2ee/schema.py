"""Tables of end-to-end encryption: device and cross-signing keys with their signatures,
the device-list stream, to-device messages and server-side key backups.

Each area is its own component so it can migrate on its own. Key and message bodies are
stored as the JSON text the client sent (signatures merged in on the way out).
"""

from ranvier.storage.migrations import Migration, Schema

KEYS_SCHEMA = Schema(
    "e2ee_keys",
    (
        Migration(
            1,
            "device keys, one-time and fallback keys, cross-signing keys, signatures, device-list positions",
            """
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    upload_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2e_one_time_keys_in_order ON e2e_one_time_keys (user_id, device_id, algorithm, upload_id);
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    usage TEXT NOT NULL,
    public_key TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);
CREATE TABLE e2e_signatures (
    target_user_id TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);
CREATE INDEX e2e_signatures_by_signer ON e2e_signatures (signer_user_id, signer_key_id);
CREATE TABLE e2e_device_list_positions (
    user_id TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL
);
CREATE INDEX e2e_device_list_positions_by_stream ON e2e_device_list_positions (stream_id);
""",
        ),
    ),
)

TO_DEVICE_SCHEMA = Schema(
    "to_device",
    (
        Migration(
            1,
            "pending to-device messages, the senders' transaction IDs, the stream's high-water mark",
            """
CREATE TABLE to_device_messages (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    event_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    sent_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);
CREATE TABLE to_device_stream (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL
);
INSERT INTO to_device_stream (id, stream_id) VALUES (1, 0);
""",
        ),
    ),
)

BACKUP_SCHEMA = Schema(
    "key_backup",
    (
        Migration(
            1,
            "server-side key backup versions and the room keys stored in them",
            """
CREATE TABLE backup_versions (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag BIGINT NOT NULL DEFAULT 0,
    key_count BIGINT NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);
CREATE TABLE backup_keys (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count BIGINT NOT NULL,
    is_verified INTEGER NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
""",
        ),
    ),
)
