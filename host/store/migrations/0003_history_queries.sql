-- Query history API: newest first, filtered by user, source, backend or group, keyset-paginated
-- on (created_at, query_id).
CREATE INDEX IF NOT EXISTS query_history_newest ON query_history (created_at, query_id);
CREATE INDEX IF NOT EXISTS query_history_user ON query_history (user_name, created_at, query_id);
CREATE INDEX IF NOT EXISTS query_history_source ON query_history (source, created_at, query_id);
CREATE INDEX IF NOT EXISTS query_history_backend ON query_history (backend, created_at, query_id);
CREATE INDEX IF NOT EXISTS query_history_group ON query_history (routing_group, created_at, query_id);
