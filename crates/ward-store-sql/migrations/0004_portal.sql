-- Ward schema, version 4: passkeys and security keys, the self-service portal, recovery codes.
-- Portable SQL: this file is identical for SQLite and PostgreSQL. Timestamps are UTC
-- milliseconds since the Unix epoch (BIGINT); ids are TEXT; flags are BIGINT 0/1.

-- Set when the user answers "this wasn't me" to a notification: factor changes are refused
-- until an administrator unfreezes the account.
ALTER TABLE users ADD COLUMN factors_frozen_ms BIGINT;
-- The policy group whose passkey rules apply (NULL: the default group).
ALTER TABLE users ADD COLUMN policy_group TEXT;

-- WebAuthn credentials: passkeys (discoverable, possibly synced) and security keys
-- (device-bound, attested). The credential (public key, counter, flags) is sealed.
CREATE TABLE webauthn_credentials (
    cred_id           TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    credential_sealed TEXT NOT NULL,
    aaguid            TEXT,
    backup_eligible   BIGINT NOT NULL,
    backed_up         BIGINT NOT NULL,
    sign_count        BIGINT NOT NULL,
    created_ms        BIGINT NOT NULL,
    last_used_ms      BIGINT
);

CREATE INDEX webauthn_credentials_user ON webauthn_credentials (org_id, user_id);

-- Server-side state of a ceremony in progress (WebAuthn registration or authentication, a TOTP
-- seed waiting for its first code). Keyed by the SHA-256 of the id handed to the browser and
-- consumed once, so that start and finish may reach different nodes.
CREATE TABLE ceremonies (
    ceremony_hash TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    user_id       TEXT,
    purpose       TEXT NOT NULL,
    state_sealed  TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL
);

CREATE INDEX ceremonies_expiry ON ceremonies (expires_ms);

-- Browser sessions of the portal (hash of the cookie value only).
CREATE TABLE portal_sessions (
    session_hash     TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    auth_method      TEXT NOT NULL,
    created_ms       BIGINT NOT NULL,
    last_seen_ms     BIGINT NOT NULL,
    expires_ms       BIGINT NOT NULL,
    step_up_until_ms BIGINT
);

CREATE INDEX portal_sessions_user ON portal_sessions (org_id, user_id);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_ms);

-- Single-use tokens sent to a user: enrolment links, "this wasn't me" links (hashes only).
CREATE TABLE user_tokens (
    token_hash TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms    BIGINT
);

CREATE INDEX user_tokens_user ON user_tokens (org_id, user_id, purpose);

-- Recovery codes: Argon2id hashes; a new set replaces the old one.
CREATE TABLE recovery_codes (
    code_id    TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    used_ms    BIGINT
);

CREATE INDEX recovery_codes_user ON recovery_codes (org_id, user_id);
