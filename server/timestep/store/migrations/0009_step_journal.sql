-- The step journal as JSON: every completed model and tool call of a run segment, as an entry a
-- recovered segment replays instead of calling the model or the tool again. Entries are JSON
-- documents with a format version (see timestep/durability/journal.py): reading one runs no
-- code and needs no particular library version. `segment_steps` (0007) held pickles; this build
-- neither reads nor writes it, so a segment recorded there by an older build is replayed as if
-- nothing was recorded (its calls are made again).
CREATE TABLE step_journal (
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment     integer NOT NULL,
    -- The call's place in its segment: "1", "2", ... in the order the segment makes them; a call
    -- made inside another (the run of an agent used as a tool) is numbered within it: "4.1".
    step        text NOT NULL,
    -- "model:<model name>" or "tool:<tool name>": a replay that asks for another call stops.
    name        text NOT NULL,
    entry       jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, segment, step)
);
