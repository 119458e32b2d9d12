-- Webhooks: subscriptions of URLs to run events, and the durable record of every delivery and
-- attempt (see timestep.webhooks and timestep.durability.webhooks).

-- A tenant's subscription, or (run_id set) the webhook of one run (CreateRun.webhook_url).
-- The signing secret is kept here and nowhere else: not in deliveries, workflow inputs, events or
-- logs.
CREATE TABLE webhooks (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    url         text NOT NULL,
    event_types text[] NOT NULL,
    description text NOT NULL DEFAULT '',
    run_id      text REFERENCES runs (id) ON DELETE CASCADE,
    secret      text NOT NULL,
    secret_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    create_time timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant, create_time, id) WHERE run_id IS NULL;
CREATE INDEX webhooks_by_run ON webhooks (run_id) WHERE run_id IS NOT NULL;

-- One event for one webhook. The id is the `webhook-id` header of every attempt; a run event
-- gets at most one delivery per webhook (the unique key), so it never gets two ids.
CREATE TABLE webhook_deliveries (
    id          text PRIMARY KEY,
    webhook_id  text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type  text NOT NULL,
    run_id      text,
    sequence    bigint,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Whether a delivery workflow has been started for it (replicas start the others).
    dispatched  boolean NOT NULL DEFAULT false,
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    finish_time timestamptz,
    UNIQUE (webhook_id, run_id, sequence)
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, create_time DESC, id DESC);
CREATE INDEX webhook_deliveries_undispatched ON webhook_deliveries (create_time) WHERE NOT dispatched;

CREATE TABLE webhook_attempts (
    delivery_id     text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number          integer NOT NULL,
    attempt_time    timestamptz NOT NULL,
    response_code   integer NOT NULL DEFAULT 0,
    latency_ms      double precision NOT NULL,
    error           text NOT NULL DEFAULT '',
    response_prefix text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, number)
);

-- The run events webhooks are told about, as webhook event types.
CREATE FUNCTION timestep_webhook_event_type(kind text, payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN kind = 'interruption_expired' THEN 'interruption.expired'
        WHEN kind = 'status_changed' AND payload ->> 'status' IN ('interrupted', 'completed', 'failed', 'cancelled')
            THEN 'run.' || (payload ->> 'status')
    END
$$;

-- A delivery per matching webhook for each such event, in the event's own transaction: an
-- event committed is an event delivered (at least once), whatever happens to the process.
CREATE FUNCTION timestep_webhook_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event_type text := timestep_webhook_event_type(NEW.kind, NEW.payload);
BEGIN
    IF event_type IS NULL THEN
        RETURN NEW;
    END IF;
    INSERT INTO webhook_deliveries (id, webhook_id, event_type, run_id, sequence)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), w.id, event_type, NEW.run_id, NEW.sequence
    FROM webhooks w JOIN runs r ON r.id = NEW.run_id
    WHERE event_type = ANY (w.event_types)
      AND ((w.run_id IS NULL AND w.tenant = r.tenant) OR w.run_id = NEW.run_id)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END;
$$;

CREATE TRIGGER timestep_webhook_deliveries AFTER INSERT ON run_events
    FOR EACH ROW WHEN (NEW.kind IN ('status_changed', 'interruption_expired'))
    EXECUTE FUNCTION timestep_webhook_deliveries();
