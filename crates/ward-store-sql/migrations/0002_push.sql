-- Ward schema, version 2: push authenticators. Portable SQL: this file is identical for SQLite
-- and PostgreSQL. Timestamps are UTC milliseconds since the Unix epoch (BIGINT); ids are TEXT.

-- Set when the user reports a push as fraudulent: pushes are refused until then.
ALTER TABLE users ADD COLUMN push_muted_until_ms BIGINT;

-- One-time codes that bind a new device to a user; only the code's SHA-256 is stored.
CREATE TABLE device_activations (
    code_hash  TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms    BIGINT
);

CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    platform   TEXT NOT NULL,
    key_alg    TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE INDEX devices_user ON devices (org_id, user_id);

-- Single-use nonces a device signs to open its event stream (hashes only).
CREATE TABLE device_nonces (
    nonce_hash TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    expires_ms BIGINT NOT NULL
);

-- Serves the cascade from devices and the clean-up of a device's expired nonces.
CREATE INDEX device_nonces_device ON device_nonces (device_id, expires_ms);

-- Push login requests. No foreign keys: a request outlives its device as a record.
CREATE TABLE push_requests (
    txid         TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    ikey         TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    state        TEXT NOT NULL,
    number       TEXT,
    context      TEXT NOT NULL,
    context_hash TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    decided_ms   BIGINT
);

CREATE INDEX push_requests_device ON push_requests (device_id, state);
CREATE INDEX push_requests_user ON push_requests (org_id, user_id, created_ms);
