-- Ward schema, version 5: the hosted prompt (Duo Web SDK v4). Portable SQL: identical for
-- SQLite and PostgreSQL.

-- What the hosted prompt offers for a `web-sdk` integration (JSON; NULL: the defaults).
ALTER TABLE integrations ADD COLUMN prompt_policy TEXT;
-- The method a user last completed the hosted prompt with; it is offered first next time.
ALTER TABLE users ADD COLUMN last_prompt_method TEXT;
