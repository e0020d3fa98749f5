-- Per-integration push policy for Duo Auth API clients (NULL: the server default).
ALTER TABLE integrations ADD COLUMN push_mode TEXT;
