-- Usage details: cached and reasoning tokens and the estimated cost (US dollars, from the
-- service's price table) on runs and per segment, and one row per model call, which
-- UsageService.GetUsage sums by agent and model over a time range.

ALTER TABLE runs
    ADD COLUMN usage_cached_tokens    bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_reasoning_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_cost_usd         double precision NOT NULL DEFAULT 0;

ALTER TABLE run_usage
    ADD COLUMN cached_tokens    bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cost_usd         double precision NOT NULL DEFAULT 0;

CREATE TABLE model_calls (
    run_id           text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    segment          integer NOT NULL,
    -- 1, 2, 3, … within the segment, in call order.
    ordinal          integer NOT NULL,
    agent            text NOT NULL,
    -- As routed, e.g. "gpt-4.1" or "ollama/llama3.2".
    model            text NOT NULL,
    requests         bigint NOT NULL,
    input_tokens     bigint NOT NULL,
    output_tokens    bigint NOT NULL,
    total_tokens     bigint NOT NULL,
    cached_tokens    bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    cost_usd         double precision NOT NULL,
    -- False when the price table had no price for the model (cost_usd is then 0).
    priced           boolean NOT NULL,
    call_time        timestamptz NOT NULL,
    PRIMARY KEY (run_id, segment, ordinal)
);
CREATE INDEX model_calls_by_time ON model_calls (call_time);
