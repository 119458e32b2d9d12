-- The tenant-wide feed of run changes (WatchRuns): status changes, new interruptions and
-- decisions, each with the id of the transaction that stored it. A reader takes the entries of
-- transactions below its snapshot's xmin (all finished, so no entry can appear there later) in
-- (transaction, run, sequence) order: a cursor in that order never skips an entry that commits
-- after it was read. A trigger fills it, so every writer of run_events (older replicas
-- included) feeds it, and run_events' row type stays as it was.
CREATE TABLE run_feed (
    tenant   text NOT NULL,
    txid     xid8 NOT NULL DEFAULT pg_current_xact_id(),
    run_id   text NOT NULL,
    sequence bigint NOT NULL,
    FOREIGN KEY (run_id, sequence) REFERENCES run_events (run_id, sequence) ON DELETE CASCADE
);
CREATE INDEX run_feed_order ON run_feed (tenant, txid, run_id, sequence);

CREATE FUNCTION timestep_feed_run_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_feed (tenant, run_id, sequence)
    SELECT r.tenant, NEW.run_id, NEW.sequence FROM runs r WHERE r.id = NEW.run_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER run_events_feed AFTER INSERT ON run_events
    FOR EACH ROW WHEN (NEW.kind IN ('status_changed', 'interruption', 'interruption_decided'))
    EXECUTE FUNCTION timestep_feed_run_event();
