-- Decisions that edit a tool call's arguments, name who decided or expire, and interruptions that
-- expire: `timestep_apply_transition` (migration 0014) writes those columns too (migration 0021
-- added them), and an edited call is edited in its conversation's history as well. Otherwise
-- the function is 0014's.

CREATE OR REPLACE FUNCTION timestep_apply_transition(
    run text,
    expected_version bigint,
    segment_no integer,
    new_run jsonb,
    extras jsonb,
    active_limit integer,
    kinds text[],
    payloads jsonb[],
    notify_channel text,
    notify_prefix text
) RETURNS SETOF run_events
LANGUAGE plpgsql AS $$
DECLARE
    found_tenant text;
    active bigint;
    last bigint;
    decided text;
    -- The run's update time and its events' times are one moment.
    now timestamptz := clock_timestamp();
BEGIN
    UPDATE runs r SET
        status = n.status,
        segment_count = n.segment_count,
        queue_name = n.queue_name,
        segment_deadline = n.segment_deadline,
        current_agent = n.current_agent,
        final_output = n.final_output,
        error_code = n.error_code,
        error_message = n.error_message,
        usage_requests = n.usage_requests,
        usage_input_tokens = n.usage_input_tokens,
        usage_output_tokens = n.usage_output_tokens,
        usage_total_tokens = n.usage_total_tokens,
        usage_cached_tokens = n.usage_cached_tokens,
        usage_reasoning_tokens = n.usage_reasoning_tokens,
        usage_cost_usd = n.usage_cost_usd,
        version = r.version + 1,
        last_sequence = r.last_sequence + cardinality(kinds),
        update_time = now
    FROM jsonb_populate_record(NULL::runs, new_run) AS n
    WHERE r.id = run AND r.version = expected_version
    RETURNING r.tenant, r.last_sequence INTO found_tenant, last;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF active_limit > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('timestep.tenant:' || found_tenant, 0));
        SELECT count(*) INTO active FROM runs
        WHERE tenant = found_tenant AND status IN ('queued', 'running');
        IF active > active_limit THEN
            RAISE EXCEPTION 'too many active runs' USING ERRCODE = 'TS429';
        END IF;
    END IF;

    IF extras ? 'decision' THEN
        UPDATE interruptions i
        SET status = d.status, always = d.always, message = d.message, decide_time = d.decide_time,
            approved_arguments_json = coalesce(d.approved_arguments_json, ''),
            decided_by = coalesce(d.decided_by, ''), expired = coalesce(d.expired, false)
        FROM jsonb_populate_record(NULL::interruptions, extras->'decision') AS d
        WHERE i.id = d.id AND i.run_id = run AND i.status = 'pending'
        RETURNING i.id INTO decided;
        IF decided IS NULL THEN
            RAISE EXCEPTION 'interruption % of run % is not pending', extras->'decision'->>'id', run;
        END IF;
        -- An approval with edited arguments: the conversation's history shows the call as it ran.
        IF coalesce(extras->'decision'->>'approved_arguments_json', '') <> '' THEN
            UPDATE session_items s
            SET item = jsonb_set(s.item, '{arguments}', extras->'decision'->'approved_arguments_json')
            FROM runs r
            WHERE r.id = run AND r.session_id <> '' AND s.session_id = r.tenant || '/' || r.session_id
              AND s.item ->> 'type' = 'function_call'
              AND s.item ->> 'call_id' = extras->'decision'->>'call_id';
        END IF;
    END IF;
    INSERT INTO interruptions (id, run_id, segment, agent, tool_name, call_id, arguments_json,
                               status, always, message, create_time, decide_time, expire_time)
    SELECT id, run, segment, agent, tool_name, call_id, arguments_json,
           status, always, message, create_time, decide_time, expire_time
    FROM jsonb_populate_recordset(NULL::interruptions, coalesce(extras->'interruptions', '[]'));
    INSERT INTO run_state_snapshots (run_id, segment, writer, schema_version, state_json)
    SELECT run, segment_no, writer, schema_version, state_json
    FROM jsonb_populate_recordset(NULL::run_state_snapshots,
                                  jsonb_path_query_array(extras, '$.snapshot'));
    INSERT INTO run_usage (run_id, segment, requests, input_tokens, output_tokens, total_tokens,
                           cached_tokens, reasoning_tokens, cost_usd)
    SELECT run, segment_no, requests, input_tokens, output_tokens, total_tokens,
           cached_tokens, reasoning_tokens, cost_usd
    FROM jsonb_populate_recordset(NULL::run_usage, jsonb_path_query_array(extras, '$.usage'));
    INSERT INTO model_calls (run_id, segment, ordinal, agent, model, requests, input_tokens,
                             output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd,
                             priced, call_time)
    SELECT run, segment_no, ordinal, agent, model, requests, input_tokens,
           output_tokens, total_tokens, cached_tokens, reasoning_tokens, cost_usd, priced, call_time
    FROM jsonb_populate_recordset(NULL::model_calls, coalesce(extras->'model_calls', '[]'));

    PERFORM pg_notify(notify_channel, notify_prefix || last);
    RETURN QUERY
    INSERT INTO run_events (run_id, sequence, segment, kind, payload, dedupe_key, create_time)
    SELECT run, last - cardinality(kinds) + e.ord, segment_no, e.kind, e.payload, NULL, now
    FROM unnest(kinds, payloads) WITH ORDINALITY AS e(kind, payload, ord)
    RETURNING *;
END;
$$;
