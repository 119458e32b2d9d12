-- Recovering segments left without a live workflow (see timestep.durability.sweeper), and
-- telling a tool call's own start marker from an earlier execution's.

-- Each recovery of a run segment whose workflow ended without finishing it; after a few the
-- run is FAILED (recovery_failed) instead of being recovered again.
CREATE TABLE segment_recoveries (
    run_id       text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment      integer NOT NULL,
    attempts     integer NOT NULL,
    recover_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, segment)
);

-- Which execution wrote the marker: a write retried after its reply was lost finds its own
-- marker, not another execution's, and the tool still runs.
ALTER TABLE tool_invocations ADD COLUMN attempt text;
