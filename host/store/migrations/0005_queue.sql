-- The gateway's queue: queries waiting for room on a backend with max_queries, and the slots
-- (queries admitted and not yet seen to end) that count against those limits. Every instance of
-- a fleet reads and writes the same rows; admission runs in one transaction that first updates
-- queue_turn's single row, so admissions take turns across the fleet.
ALTER TABLE backends ADD COLUMN max_queries BIGINT;

CREATE TABLE IF NOT EXISTS queue_turn (
    id   BIGINT PRIMARY KEY,
    turn BIGINT NOT NULL
);
INSERT INTO queue_turn (id, turn) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- One row per query that waited: the statement and the client's headers without credentials
-- (the instance that admits it submits it with the credentials of the poll it answers).
CREATE TABLE IF NOT EXISTS queue_entries (
    id            {{KEY}} PRIMARY KEY,
    slug          TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    priority      BIGINT NOT NULL,
    routing_group {{KEY}} NOT NULL,
    user_name     {{KEY}} NOT NULL,
    source        TEXT,
    query_text    TEXT NOT NULL,
    statement     {{BYTES}} NOT NULL,
    headers       TEXT NOT NULL,
    state         {{KEY}} NOT NULL,
    enqueued_ms   BIGINT NOT NULL,
    deadline_ms   BIGINT NOT NULL,
    last_poll_ms  BIGINT NOT NULL,
    admitted_ms   BIGINT,
    admitted_turn BIGINT,
    backend       TEXT,
    query_id      {{KEY}},
    next_uri      TEXT,
    message       TEXT
);
CREATE INDEX IF NOT EXISTS queue_entries_waiting ON queue_entries (state, routing_group, priority, seq);
CREATE INDEX IF NOT EXISTS queue_entries_query ON queue_entries (query_id);

CREATE TABLE IF NOT EXISTS queue_slots (
    slot_id       {{KEY}} PRIMARY KEY,
    backend       {{KEY}} NOT NULL,
    routing_group {{KEY}} NOT NULL,
    user_name     {{KEY}} NOT NULL,
    query_id      {{KEY}},
    taken_ms      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_slots_backend ON queue_slots (backend, taken_ms);
CREATE INDEX IF NOT EXISTS queue_slots_query ON queue_slots (query_id);
