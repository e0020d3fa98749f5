-- Ward schema, version 1. Portable SQL: this file is identical for SQLite and PostgreSQL.
-- Timestamps are UTC milliseconds since the Unix epoch (BIGINT); ids are TEXT.
-- Every aggregate carries org_id and every query is scoped by it.

CREATE TABLE orgs (
    org_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

INSERT INTO orgs (org_id, name, created_ms) VALUES ('default', 'Default', 0);

CREATE TABLE integrations (
    ikey        TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    skey_sealed TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE INDEX integrations_org ON integrations (org_id, created_ms);

CREATE TABLE users (
    user_id         TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    username        TEXT NOT NULL,
    email           TEXT,
    status          TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until_ms BIGINT,
    last_login_ms   BIGINT,
    CONSTRAINT users_org_username_key UNIQUE (org_id, username)
);

CREATE TABLE totp_authenticators (
    totp_id     TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    seed_sealed TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    digits      BIGINT NOT NULL,
    step_secs   BIGINT NOT NULL,
    last_step   BIGINT,
    created_ms  BIGINT NOT NULL
);

CREATE INDEX totp_authenticators_user ON totp_authenticators (org_id, user_id);

CREATE TABLE auth_transactions (
    txid       TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    ikey       TEXT NOT NULL,
    user_id    TEXT,
    factor     TEXT NOT NULL,
    result     TEXT NOT NULL,
    status     TEXT NOT NULL,
    status_msg TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- One hash chain per node; head_* mirror the chain's last event (seq 0 = empty chain).
CREATE TABLE audit_chains (
    chain_id  TEXT PRIMARY KEY,
    head_seq  BIGINT NOT NULL,
    head_hash TEXT NOT NULL
);

CREATE TABLE audit_events (
    chain_id  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    org_id    TEXT NOT NULL,
    ts_ms     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    details   TEXT NOT NULL,
    PRIMARY KEY (chain_id, seq)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
