-- Retention deletes a delivery id only once its event is gone.
--
-- Version 5's retention_delete_batch used retention_target's predicate for
-- hook_event_deliveries, which takes an event that may go for gone (so that a
-- dry run, which removes no event, counts what a run would remove). That holds
-- only once the events step removed every expired event; an event that became
-- processed after that step, or one in a partition whose drop timed out, lost
-- its delivery id a run before it went itself, and a redelivery in between
-- was stored as a second event. Deleting now requires the event row to be
-- gone; retention_count (the dry run) keeps the old predicate.

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.retention_delete_batch(rel regclass, cutoff timestamptz,
    dead_cutoff timestamptz, after timestamptz, batch_size integer,
    OUT deleted bigint, OUT last_key timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind       text;
    predicate  text;
    key_column text;
BEGIN
    IF cutoff IS NULL OR batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'retention_delete_batch: cutoff must be set and batch_size positive, got % and %',
            cutoff, batch_size USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.kind, r.predicate, r.key_column INTO kind, predicate, key_column
    FROM omnibridge.retention_target(rel) r;
    IF kind = 'hook_event_deliveries' THEN
        -- Deleting, a delivery id goes only once its event is gone: an event
        -- that expired but is still there (its partition could not be dropped
        -- in time, or it was processed after the events step of this run)
        -- keeps its delivery id, so a redelivery is still recognised.
        predicate := $p$t.created_at < $1
            AND NOT EXISTS (SELECT 1 FROM omnibridge.hook_events e WHERE e.id = t.event_id)$p$;
    END IF;
    IF kind = 'security_audit_log' THEN
        RAISE EXCEPTION 'retention_delete_batch: the audit log is append-only'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Expired audit rows leave only through omnibridge.drop_expired_audit_partitions().';
    END IF;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM %1$s t
            WHERE t.ctid = ANY (ARRAY(
                    SELECT t.ctid FROM %1$s t
                    WHERE %2$s AND t.%3$I >= $3
                    ORDER BY t.%3$I
                    LIMIT $4))
              AND %2$s
            RETURNING t.%3$I AS k)
        SELECT count(*), max(k) FROM gone$q$, rel, predicate, key_column)
        INTO deleted, last_key
        USING cutoff, coalesce(dead_cutoff, cutoff), coalesce(after, '-infinity'), batch_size;
END;
$$;
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.retention_delete_batch(rel regclass, cutoff timestamptz,
    dead_cutoff timestamptz, after timestamptz, batch_size integer,
    OUT deleted bigint, OUT last_key timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind       text;
    predicate  text;
    key_column text;
BEGIN
    IF cutoff IS NULL OR batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'retention_delete_batch: cutoff must be set and batch_size positive, got % and %',
            cutoff, batch_size USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.kind, r.predicate, r.key_column INTO kind, predicate, key_column
    FROM omnibridge.retention_target(rel) r;
    IF kind = 'security_audit_log' THEN
        RAISE EXCEPTION 'retention_delete_batch: the audit log is append-only'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Expired audit rows leave only through omnibridge.drop_expired_audit_partitions().';
    END IF;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM %1$s t
            WHERE t.ctid = ANY (ARRAY(
                    SELECT t.ctid FROM %1$s t
                    WHERE %2$s AND t.%3$I >= $3
                    ORDER BY t.%3$I
                    LIMIT $4))
              AND %2$s
            RETURNING t.%3$I AS k)
        SELECT count(*), max(k) FROM gone$q$, rel, predicate, key_column)
        INTO deleted, last_key
        USING cutoff, coalesce(dead_cutoff, cutoff), coalesce(after, '-infinity'), batch_size;
END;
$$;
-- +goose StatementEnd
