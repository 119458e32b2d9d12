-- One namespace rule for every tenant: a user-chosen id is stored as "<tenant>/<id>", for the
-- anonymous tenant ('' without API keys) too, which used to keep its bare ids (so its session
-- "acme/s1" was tenant acme's "s1"). Ids can no longer contain '/'.

-- The anonymous tenant's sessions: items of a session an anonymous run named become "/<id>".
-- Sessions only in-process library programs used keep their ids. An anonymous session id that
-- contained '/' cannot be told apart from a keyed tenant's session and is left as it was.
UPDATE session_items SET session_id = '/' || session_id
WHERE position('/' in session_id) = 0
  AND session_id IN (SELECT session_id FROM runs WHERE tenant = '' AND session_id <> '');

-- The anonymous tenant's schedules: the DBOS schedule "<id>" becomes "/<id>" (keyed tenants'
-- were "<tenant>/<id>" already). DBOS creates its schema when it first starts, so a database
-- it never ran on has no schedules to rename.
DO $$
BEGIN
    IF to_regclass('dbos.workflow_schedules') IS NOT NULL THEN
        UPDATE dbos.workflow_schedules SET schedule_name = '/' || schedule_name
        WHERE workflow_name = 'timestep.fire_schedule' AND position('/' in schedule_name) = 0;
    END IF;
END $$;

-- Firings a schedule skipped because its tenant had --max-active-runs runs active: how many,
-- and the scheduled time of the last one. A replayed firing (recovery) is not counted twice:
-- it does not move last_missed_time forward.
CREATE TABLE schedule_misses (
    tenant           text NOT NULL,
    schedule_id      text NOT NULL,
    missed_fires     bigint NOT NULL,
    last_missed_time timestamptz NOT NULL,
    PRIMARY KEY (tenant, schedule_id)
);
