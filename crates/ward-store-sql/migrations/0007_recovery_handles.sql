-- Ward schema, version 7: recovery case handles that cannot be fixed on someone else, and a
-- cap on the notices anonymous recovery starts may cause. Portable SQL: identical for SQLite
-- and PostgreSQL.

-- Where a case was started from (the client address; NULL when a helpdesk agent opened it), and
-- for a case an agent opened and nobody has adopted yet, the hash of the continue link's token
-- (NULL once adopted, and always for self-service cases).
ALTER TABLE recovery_cases ADD COLUMN opened_from TEXT;
ALTER TABLE recovery_cases ADD COLUMN adopt_hash TEXT;
CREATE UNIQUE INDEX recovery_cases_adopt ON recovery_cases (adopt_hash);

-- Notices of one kind sent to an account in the current window (count-and-check in one
-- conditional statement, so nodes racing each other never exceed the cap).
CREATE TABLE notice_quota (
    org_id          TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    sent            BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id, kind)
);
