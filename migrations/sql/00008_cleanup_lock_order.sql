-- cleanup_old_data takes the partition-maintenance lock before its deletes.
--
-- Version 3's cleanup_old_data deleted from hook_events (a ROW EXCLUSIVE lock
-- on it until commit) and only then, dropping expired audit partitions, waited
-- for the advisory lock that create_partition_for holds while it waits to lock
-- hook_events against writes: PostgreSQL broke that cycle by failing one of the
-- two with a deadlock error. Taking the advisory lock first orders both the
-- same way; cleanup and partition creation now wait for each other instead.

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.cleanup_old_data(
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
    -- The partition-maintenance lock first, before any table lock: dropping
    -- expired audit partitions below takes it, and create_partition_for takes
    -- it before locking a partitioned table, so taking it only there could
    -- deadlock with a partition being created meanwhile.
    PERFORM pg_advisory_xact_lock(hashtextextended('omnibridge.partition_maintenance', 0));

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

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.cleanup_old_data(
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
