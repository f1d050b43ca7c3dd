-- Backends live in the store: the YAML seeds them once, then the admin API changes them and every
-- instance follows. `draining`: no new queries until it runs nothing; `stats`: where its running
-- and queued counts come from (NULL: health.stats).
ALTER TABLE backends ADD COLUMN draining BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE backends ADD COLUMN rewrite_next_uri BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE backends ADD COLUMN stats TEXT;
ALTER TABLE backends ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE backends ADD COLUMN updated_by TEXT;

-- One row per fact about the store itself; `backends_seeded`: the YAML backends were written once.
CREATE TABLE IF NOT EXISTS gateway_meta (
    name  {{KEY}} PRIMARY KEY,
    value TEXT NOT NULL
);
