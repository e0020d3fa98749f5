-- Ward schema, version 6: helpdesk-proof recovery. Portable SQL: identical for SQLite and
-- PostgreSQL.

-- Recovery controls on the account.
ALTER TABLE users ADD COLUMN recovery_blocked_until_ms BIGINT;  -- no new case before then
ALTER TABLE users ADD COLUMN probation_until_ms BIGINT;         -- after a recovery
ALTER TABLE users ADD COLUMN last_recovered_ms BIGINT;

-- Roles: admin, helpdesk, approver, security (the security approver pool).
CREATE TABLE user_roles (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    granted_ms BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE INDEX user_roles_role ON user_roles (org_id, role);

-- Who may approve a user's recovery (fixed before the need).
CREATE TABLE recovery_approvers (
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    approver_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    added_ms    BIGINT NOT NULL,
    PRIMARY KEY (user_id, approver_id)
);

CREATE INDEX recovery_approvers_approver ON recovery_approvers (org_id, approver_id);

-- Recovery cases. The case is the fold of its events (recovery_events); this row keeps what
-- queries need and a version for optimistic appends. A phantom case (unknown user) has no user.
CREATE TABLE recovery_cases (
    case_id     TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT,
    handle_hash TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    is_open     BIGINT NOT NULL,
    opened_by   TEXT NOT NULL,
    opened_ms   BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);

-- One open case per account.
CREATE UNIQUE INDEX recovery_cases_one_open ON recovery_cases (org_id, user_id) WHERE is_open = 1;
CREATE INDEX recovery_cases_opened ON recovery_cases (org_id, opened_ms);
CREATE INDEX recovery_cases_user ON recovery_cases (org_id, user_id, opened_ms);

CREATE TABLE recovery_events (
    case_id TEXT NOT NULL REFERENCES recovery_cases (case_id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    at_ms   BIGINT NOT NULL,
    event   TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
