-- Approvals that expire, and decisions that edit a tool call's arguments or name who decided.

-- How long each interruption of the run may wait for a decision (NULL: forever), whether the run
-- resumes by itself once expiry has decided its last one, and what the model is told (empty: the
-- service's default).
ALTER TABLE runs
    ADD COLUMN approval_timeout interval,
    ADD COLUMN auto_resume_on_expiry boolean NOT NULL DEFAULT false,
    ADD COLUMN approval_expiry_message text NOT NULL DEFAULT '';

-- The arguments an approver edited the call to run with ('' when it runs as proposed), who
-- decided, and when a pending interruption expires (NULL: never) and whether it did.
ALTER TABLE interruptions
    ADD COLUMN approved_arguments_json text NOT NULL DEFAULT '',
    ADD COLUMN decided_by text NOT NULL DEFAULT '',
    ADD COLUMN expire_time timestamptz,
    ADD COLUMN expired boolean NOT NULL DEFAULT false;
CREATE INDEX interruptions_expiring ON interruptions (expire_time)
    WHERE status = 'pending' AND expire_time IS NOT NULL;
