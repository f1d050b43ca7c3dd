-- Hot swap across a fleet: the chain order every instance follows, and what each instance runs.
CREATE TABLE IF NOT EXISTS filter_chain (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    slots      TEXT NOT NULL,   -- JSON list of slot names, in chain order
    updated_at BIGINT NOT NULL, -- milliseconds since the epoch
    updated_by TEXT
);

CREATE TABLE IF NOT EXISTS filter_instances (
    instance_id {{KEY}} NOT NULL,
    slot        {{KEY}} NOT NULL,
    position    BIGINT NOT NULL,  -- place in that instance's chain
    sha256      TEXT NOT NULL,    -- what it runs
    version     BIGINT NOT NULL,  -- 0: the module from its config file
    error       TEXT,             -- why it could not load the active version, if it could not
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (instance_id, slot)
);
