-- Durable execution: queues on runs, idempotent event appends for replayed segments,
-- in-flight tool markers, and replica heartbeats.

-- The DBOS queue a QUEUED run waits on ('' when it is not queued through one).
ALTER TABLE runs ADD COLUMN queue_name text NOT NULL DEFAULT '';

-- A replayed segment re-emits the same events; their key (segment:ordinal) makes the
-- second append a no-op instead of a duplicate.
ALTER TABLE run_events ADD COLUMN dedupe_key text;
CREATE UNIQUE INDEX run_events_dedupe ON run_events (run_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Written just before a tool runs inside a durable segment; finding it on replay means the
-- tool was in flight when its process died.
CREATE TABLE tool_invocations (
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment     integer NOT NULL,
    call_id     text NOT NULL,
    tool_name   text NOT NULL,
    executor_id text NOT NULL,
    start_time  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, segment, call_id)
);

-- Each replica's heartbeat; a replica whose heartbeat is stale has its workflows recovered
-- by a live one.
CREATE TABLE replicas (
    executor_id    text PRIMARY KEY,
    start_time     timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    recovered_by   text
);

-- A replayed segment re-adds the same conversation items; their key makes that a no-op.
ALTER TABLE session_items ADD COLUMN dedupe_key text;
CREATE UNIQUE INDEX session_items_dedupe ON session_items (session_id, dedupe_key) WHERE dedupe_key IS NOT NULL;
