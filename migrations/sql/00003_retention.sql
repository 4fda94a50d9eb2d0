-- Retention: cleanup_old_data() removes what DESIGN.md's retention policy lets go
-- and returns the number of rows it removed. Audit rows leave only with whole
-- expired partitions. Both run as the schema owner (SECURITY DEFINER), so the
-- service role that runs maintenance needs only EXECUTE.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION omnibridge.drop_expired_audit_partitions(older_than interval DEFAULT interval '180 days')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    cutoff   timestamptz;
    part     regclass;
    bound    text;
    part_end timestamptz;
    n        bigint;
    removed  bigint := 0;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'drop_expired_audit_partitions: older_than must be a non-negative interval, got %',
            older_than USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('omnibridge.partition_maintenance', 0));
    cutoff := now() - older_than;

    FOR part, bound IN
        SELECT c.oid::regclass, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'omnibridge.security_audit_log'::regclass
        ORDER BY c.relname
    LOOP
        -- Only a partition whose every possible row is older than the cutoff goes.
        part_end := substring(bound FROM $re$ TO \('([^']+)'\)$re$)::timestamptz;
        CONTINUE WHEN part_end IS NULL OR part_end > cutoff;
        EXECUTE format('SELECT count(*) FROM %s', part) INTO n;
        EXECUTE format('DROP TABLE %s', part);
        removed := removed + n;
    END LOOP;

    -- Rows that landed in the DEFAULT partition (timestamps outside every dated
    -- partition) expire too.
    removed := removed + omnibridge.audit_default_remove('-infinity', cutoff);
    RETURN removed;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION omnibridge.cleanup_old_data(
    processed_events_retention   interval DEFAULT interval '30 days',
    event_metrics_retention      interval DEFAULT interval '90 days',
    ended_sessions_retention     interval DEFAULT interval '7 days',
    audit_retention              interval DEFAULT interval '180 days',
    connection_metrics_retention interval DEFAULT interval '30 days'
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n       bigint;
    removed bigint := 0;
BEGIN
    IF processed_events_retention IS NULL OR processed_events_retention < interval '0'
       OR event_metrics_retention IS NULL OR event_metrics_retention < interval '0'
       OR ended_sessions_retention IS NULL OR ended_sessions_retention < interval '0'
       OR audit_retention IS NULL OR audit_retention < interval '0'
       OR connection_metrics_retention IS NULL OR connection_metrics_retention < interval '0' THEN
        RAISE EXCEPTION 'cleanup_old_data: every retention must be a non-negative interval, got % % % % %',
            processed_events_retention, event_metrics_retention, ended_sessions_retention,
            audit_retention, connection_metrics_retention
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Only processed events go: pending, processing and dead events stay at any age.
    DELETE FROM omnibridge.hook_events
    WHERE status = 'processed' AND created_at < now() - processed_events_retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;

    -- A delivery id stays reserved while its event exists, and at least as long
    -- as a processed event is kept.
    DELETE FROM omnibridge.hook_event_deliveries d
    WHERE d.created_at < now() - processed_events_retention
      AND NOT EXISTS (SELECT 1 FROM omnibridge.hook_events e WHERE e.id = d.event_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;

    DELETE FROM omnibridge.event_metrics
    WHERE created_at < now() - event_metrics_retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;

    DELETE FROM omnibridge.service_sessions
    WHERE status IN ('ended', 'terminated', 'failed')
      AND session_end < now() - ended_sessions_retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;

    removed := removed + omnibridge.drop_expired_audit_partitions(audit_retention);

    DELETE FROM omnibridge.connection_metrics
    WHERE recorded_at < now() - connection_metrics_retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;

    RETURN removed;
END;
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION omnibridge.drop_expired_audit_partitions(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.cleanup_old_data(interval, interval, interval, interval, interval) FROM PUBLIC;

-- +goose Down

DROP FUNCTION omnibridge.cleanup_old_data(interval, interval, interval, interval, interval);
DROP FUNCTION omnibridge.drop_expired_audit_partitions(interval);
