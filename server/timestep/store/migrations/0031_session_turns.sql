-- One run at a time per session: runs of a session take turns in the order they arrived.
--
-- `session_seq` is a run's place in its session's queue: assigned when the run is inserted,
-- under an advisory lock on the session held until the inserting transaction commits, so the
-- order of the numbers is the order in which the runs became visible (no run can later appear
-- ahead of one already visible). A run of a session may start (become RUNNING) only when no run
-- ahead of it is QUEUED, RUNNING or INTERRUPTED; runs from before this migration have none and
-- count as ahead of every run that has one.
CREATE SEQUENCE run_session_seq;
ALTER TABLE runs ADD COLUMN session_seq bigint;

CREATE FUNCTION timestep_session_turn() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('timestep.session:' || NEW.tenant || '/' || NEW.session_id, 0));
    NEW.session_seq := nextval('run_session_seq');
    RETURN NEW;
END;
$$;

CREATE TRIGGER runs_session_turn BEFORE INSERT ON runs
FOR EACH ROW WHEN (NEW.session_id <> '') EXECUTE FUNCTION timestep_session_turn();

-- At most one RUNNING run per session, whatever replica or code path starts it.
CREATE UNIQUE INDEX runs_one_running_per_session ON runs (tenant, session_id)
WHERE status = 'running' AND session_id <> '' AND session_seq IS NOT NULL;

-- A session's active runs in turn order.
CREATE INDEX runs_session_turns ON runs (tenant, session_id, session_seq)
WHERE session_id <> '' AND status IN ('queued', 'running', 'interrupted');
