"""Tables owned by the users service."""

from ranvier.storage.migrations import Migration, Schema

SCHEMA = Schema(
    "users",
    (
        Migration(
            1,
            "accounts, devices, tokens, registration tokens, user-interactive auth sessions",
            """
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    is_guest INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    created_ts BIGINT NOT NULL
);
CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    displayname TEXT,
    avatar_url TEXT
);
CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ip TEXT,
    last_seen_ts BIGINT,
    last_seen_user_agent TEXT,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT,
    refresh_token_hash TEXT
);
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (user_id, device_id);
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_ts BIGINT
);
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT,
    operation TEXT NOT NULL,
    completed TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
""",
        ),
        Migration(
            2,
            "account locks and suspensions, UIA sessions bound to their request, OpenID tokens",
            """
ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uia_sessions ADD COLUMN request_key TEXT NOT NULL DEFAULT '';
ALTER TABLE uia_sessions ADD COLUMN registered_user_id TEXT;
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
""",
        ),
    ),
)
