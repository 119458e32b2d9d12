-- Appending a run's events in one round trip (it happens for every stored item of every segment).
--
-- Stores the events whose dedupe key is not stored yet (a replayed segment re-emits its events)
-- with the run's next sequences, bumps runs.last_sequence and NOTIFYs `notify_channel` with
-- `notify_prefix || last_sequence` (delivered at commit). Returns the stored rows.
--
-- With `segment_running` the function takes the run's row lock itself and stores nothing unless
-- the run is RUNNING in `segment_no` (a segment that lost its run to CancelRun must not add
-- events after the final status); an unknown run raises no_data_found. Without it, the caller
-- already holds the row lock or inserted the row in its transaction.
CREATE FUNCTION timestep_append_events(
    run text,
    segment_no integer,
    kinds text[],
    payloads jsonb[],
    dedupe_keys text[],
    notify_channel text,
    notify_prefix text,
    segment_running boolean
) RETURNS SETOF run_events
LANGUAGE plpgsql AS $$
DECLARE
    found_status text;
    found_segment integer;
    fresh integer;
    last bigint;
BEGIN
    IF segment_running THEN
        SELECT r.status, r.segment_count INTO found_status, found_segment
        FROM runs r WHERE r.id = run FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'run % not found', run USING ERRCODE = 'no_data_found';
        END IF;
        IF found_status <> 'running' OR found_segment <> segment_no THEN
            RETURN;
        END IF;
    END IF;

    -- Each statement reads a fresh snapshot, and the row lock keeps other appenders out.
    SELECT count(*) INTO fresh
    FROM unnest(dedupe_keys) AS k(key)
    WHERE k.key IS NULL
       OR NOT EXISTS (SELECT 1 FROM run_events x WHERE x.run_id = run AND x.dedupe_key = k.key);
    IF fresh = 0 THEN
        RETURN;
    END IF;

    UPDATE runs SET last_sequence = last_sequence + fresh, update_time = clock_timestamp()
    WHERE id = run
    RETURNING last_sequence INTO last;
    PERFORM pg_notify(notify_channel, notify_prefix || last);

    RETURN QUERY
    INSERT INTO run_events (run_id, sequence, segment, kind, payload, dedupe_key)
    SELECT run, last - fresh + row_number() OVER (ORDER BY e.ord), segment_no, e.kind, e.payload, e.key
    FROM unnest(kinds, payloads, dedupe_keys) WITH ORDINALITY AS e(kind, payload, key, ord)
    WHERE e.key IS NULL
       OR NOT EXISTS (SELECT 1 FROM run_events x WHERE x.run_id = run AND x.dedupe_key = e.key)
    RETURNING *;
END;
$$;
