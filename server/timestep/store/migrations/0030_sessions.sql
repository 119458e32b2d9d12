-- Sessions as a resource: which run added each session item (to list a conversation with its
-- runs, and to delete a run's items with it), runs kept out of retention, and finding the
-- finished runs retention expires.

-- The run whose segment stored the item (NULL for items of in-process library programs). Items
-- stored by earlier builds are attributed through their replay key "<run id>/<segment>:…".
ALTER TABLE session_items ADD COLUMN run_id text;
UPDATE session_items SET run_id = split_part(dedupe_key, '/', 1)
WHERE dedupe_key IS NOT NULL AND split_part(dedupe_key, '/', 1) IN (SELECT id FROM runs);
CREATE INDEX session_items_by_run ON session_items (run_id) WHERE run_id IS NOT NULL;

-- A kept run is never deleted by retention (DeleteRun still deletes it).
ALTER TABLE runs ADD COLUMN keep boolean NOT NULL DEFAULT false;

-- Retention deletes finished runs by the time of their last change, oldest first.
CREATE INDEX runs_expiring ON runs (update_time, id)
WHERE status IN ('completed', 'failed', 'cancelled') AND NOT keep;

-- Sessions are listed per tenant, newest activity first.
CREATE INDEX runs_by_tenant_session ON runs (tenant, session_id) WHERE session_id <> '';

-- What retention deleted so far, by every replica's sweeps (the metrics report it).
CREATE TABLE retention_totals (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    runs            bigint NOT NULL DEFAULT 0,
    session_items   bigint NOT NULL DEFAULT 0,
    last_sweep_time timestamptz
);
INSERT INTO retention_totals DEFAULT VALUES;
