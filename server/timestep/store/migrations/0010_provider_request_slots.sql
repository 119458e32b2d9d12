-- Provider request limits (`serve --provider-limit P:requests=N,period=S`), held at the
-- provider's door: every model request first takes a slot here. The slots of the last period
-- are shared by all replicas on the database, so N requests per period hold across them.
CREATE TABLE provider_request_slots (
    provider text NOT NULL,
    taken_at timestamptz NOT NULL
);
CREATE INDEX provider_request_slots_by_time ON provider_request_slots (provider, taken_at DESC);

-- Take a request slot of `p_provider`, allowing `p_requests` per `p_period_s` seconds: returns 0
-- when a slot was taken, else the seconds until one frees up (the caller sleeps, then asks
-- again). One round trip. The per-provider advisory lock makes check-and-take atomic across
-- replicas, and the clock is read after it is granted, so slot times are in lock order.
CREATE FUNCTION timestep_take_request_slot(p_provider text, p_requests integer, p_period_s double precision)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    now_at timestamptz;
    window_start timestamptz;
    blocking timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('timestep-provider-requests:' || p_provider, 0));
    now_at := clock_timestamp();
    window_start := now_at - make_interval(secs => p_period_s);
    DELETE FROM provider_request_slots WHERE provider = p_provider AND taken_at <= window_start;
    -- The slot that must leave the window before another fits: the p_requests-th newest.
    SELECT taken_at INTO blocking FROM provider_request_slots
     WHERE provider = p_provider
     ORDER BY taken_at DESC OFFSET p_requests - 1 LIMIT 1;
    IF blocking IS NULL THEN
        INSERT INTO provider_request_slots (provider, taken_at) VALUES (p_provider, now_at);
        RETURN 0;
    END IF;
    RETURN greatest(extract(epoch FROM blocking - window_start)::double precision, 0.001);
END
$$;
