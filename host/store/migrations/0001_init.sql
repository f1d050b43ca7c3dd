-- Sluice state in L3 ({{DIALECT_NOTE}}).
CREATE TABLE IF NOT EXISTS backends (
    name          {{KEY}} PRIMARY KEY,
    proxy_url     TEXT NOT NULL,
    external_url  TEXT,
    routing_group TEXT NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE IF NOT EXISTS query_history (
    query_id      {{KEY}} PRIMARY KEY,
    query_text    TEXT NOT NULL,
    user_name     {{KEY}},
    source        {{KEY}},
    routing_group {{KEY}} NOT NULL,
    backend       {{KEY}} NOT NULL,
    external_url  TEXT,
    created_at    BIGINT NOT NULL -- milliseconds since the epoch
);
CREATE INDEX IF NOT EXISTS query_history_created_at ON query_history (created_at);

CREATE TABLE IF NOT EXISTS filter_modules (
    slot       {{KEY}} NOT NULL,
    version    BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    bytes      {{BYTES}} NOT NULL,
    config     TEXT NOT NULL DEFAULT 'null',
    created_at BIGINT NOT NULL,
    created_by TEXT,
    active     BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (slot, version)
);

CREATE TABLE IF NOT EXISTS cache_entries (
    key        {{LONG_KEY}} PRIMARY KEY,
    value      {{BYTES}} NOT NULL,
    expires_at BIGINT NOT NULL -- milliseconds since the epoch
);
CREATE INDEX IF NOT EXISTS cache_entries_expires_at ON cache_entries (expires_at);
