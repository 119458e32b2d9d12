-- The step journal: every completed model and tool call of a run segment, in the order the
-- segment made them. A recovered segment replays these results instead of calling the model or
-- the tool again. One INSERT per call, on the service's own connection pool.
CREATE TABLE segment_steps (
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment     integer NOT NULL,
    -- The call's place in its segment, from 1.
    ordinal     integer NOT NULL,
    -- "model:<model name>" or "tool:<tool name>": a replay that asks for another call stops.
    name        text NOT NULL,
    -- The call's result, pickled (an OpenAI Responses `Response`, or a tool's return value).
    output      bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, segment, ordinal)
);
