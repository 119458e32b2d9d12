-- Runs, their durable events, interruptions with decisions, RunState snapshots, usage,
-- session items (PostgresSession) and RunStateStore's saved states.

CREATE TABLE runs (
    id                  text PRIMARY KEY,
    agent               text NOT NULL,
    current_agent       text NOT NULL,
    status              text NOT NULL CHECK (status IN
                            ('queued', 'running', 'interrupted', 'completed', 'failed', 'cancelled')),
    session_id          text NOT NULL DEFAULT '',
    model               text NOT NULL DEFAULT '',
    -- The original input: a JSON string (plain text) or a JSON array of input items.
    input               jsonb NOT NULL,
    final_output        text NOT NULL DEFAULT '',
    error_code          text,
    error_message       text,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id          text UNIQUE,
    request_fingerprint text,
    segment_count       integer NOT NULL DEFAULT 0,
    -- Last assigned event sequence; bumped in the same transaction that inserts events.
    last_sequence       bigint NOT NULL DEFAULT 0,
    usage_requests      bigint NOT NULL DEFAULT 0,
    usage_input_tokens  bigint NOT NULL DEFAULT 0,
    usage_output_tokens bigint NOT NULL DEFAULT 0,
    usage_total_tokens  bigint NOT NULL DEFAULT 0,
    create_time         timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX runs_by_time ON runs (create_time DESC, id DESC);
CREATE INDEX runs_by_agent ON runs (agent, create_time DESC, id DESC);
CREATE INDEX runs_by_session ON runs (session_id, create_time DESC, id DESC) WHERE session_id <> '';
CREATE INDEX runs_by_status ON runs (status, create_time DESC, id DESC);

CREATE TABLE run_events (
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sequence    bigint NOT NULL,
    segment     integer NOT NULL,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, sequence)
);

CREATE TABLE interruptions (
    id             text PRIMARY KEY,
    run_id         text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment        integer NOT NULL,
    agent          text NOT NULL,
    tool_name      text NOT NULL,
    call_id        text NOT NULL,
    arguments_json text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    always         boolean NOT NULL DEFAULT false,
    message        text NOT NULL DEFAULT '',
    create_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    decide_time    timestamptz,
    UNIQUE (run_id, segment, call_id)
);
CREATE INDEX interruptions_pending ON interruptions (create_time, id) WHERE status = 'pending';

-- The RunState JSON exactly as the SDK wrote it (text, not jsonb, so nothing is reordered).
CREATE TABLE run_state_snapshots (
    run_id         text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment        integer NOT NULL,
    writer         text NOT NULL CHECK (writer IN ('python', 'typescript')),
    schema_version text NOT NULL,
    state_json     text NOT NULL,
    create_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, segment)
);

CREATE TABLE run_usage (
    run_id        text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment       integer NOT NULL,
    requests      bigint NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    total_tokens  bigint NOT NULL,
    create_time   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, segment)
);

CREATE TABLE session_items (
    id          bigserial PRIMARY KEY,
    session_id  text NOT NULL,
    item        jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX session_items_by_session ON session_items (session_id, id);

CREATE TABLE saved_run_states (
    agent          text NOT NULL,
    session_id     text NOT NULL,
    writer         text NOT NULL,
    schema_version text NOT NULL,
    state_json     text NOT NULL,
    update_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (agent, session_id)
);
