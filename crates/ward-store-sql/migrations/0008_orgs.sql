-- Organisations become manageable: a disabled organisation keeps its data but refuses every
-- login; names are unique so administrators can name an organisation instead of its id.
ALTER TABLE orgs ADD COLUMN disabled_ms BIGINT;

CREATE UNIQUE INDEX orgs_name ON orgs (name);
