-- Retention in bounded batches and partition drops under short locks (used by
-- store.RunRetention), and the indexes that the performance report, the audit
-- listing and retention need.
--
-- The functions run as the schema owner (SECURITY DEFINER), like
-- cleanup_old_data, so the service role that runs maintenance needs EXECUTE
-- only. Each call is meant to be its own short transaction; the caller sets
-- lock_timeout for it. Audit rows still leave only through
-- drop_expired_audit_partitions: these functions refuse the audit log, except
-- to count.
--
-- What may go (cutoffs are passed in, computed once per run by the caller):
--   hook_events            processed and created before cutoff, or dead with
--                          its last activity (greatest of created_at,
--                          claimed_at, next_attempt_at) before dead_cutoff;
--                          pending and processing events never
--   hook_event_deliveries  created before cutoff and its event is gone or
--                          may go (pass the events' cutoffs)
--   event_metrics          created before cutoff
--   connection_metrics     recorded before cutoff
--   service_sessions       not active and ended before cutoff
--
-- The new indexes are built without CONCURRENTLY (partitioned tables do not
-- support it): on a large existing installation, run this version in a quiet
-- period.

-- +goose Up

-- Events received in a window (performance report), keyset retention batches,
-- and event listings newest first.
CREATE INDEX idx_hook_events_created_at
    ON omnibridge.hook_events (created_at);
-- Events processed in a window, counted from the index alone. (A BRIN index
-- on processed_at was measured too: as cheap to write, but a count must then
-- visit every heap page of the window, 3x slower over a day of a million
-- events.)
CREATE INDEX idx_hook_events_processed_at
    ON omnibridge.hook_events (processed_at) WHERE status = 'processed';
-- Unfinished events by status: backlog and dead-letter counts, the oldest
-- pending event, and the rows that keep a partition from being dropped.
CREATE INDEX idx_hook_events_unfinished
    ON omnibridge.hook_events (status, created_at) WHERE status <> 'processed';

-- The audit listing, newest first, with a keyset cursor; and by event type.
CREATE INDEX idx_security_audit_created
    ON omnibridge.security_audit_log (created_at DESC, id DESC);
CREATE INDEX idx_security_audit_type
    ON omnibridge.security_audit_log (event_type, created_at DESC, id DESC);

-- retention_partitions lists the partitions of the time-partitioned tables with
-- their ranges [range_start, range_end); a DEFAULT partition has NULL bounds.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.retention_partitions()
RETURNS TABLE (parent regclass, part regclass, range_start timestamptz, range_end timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
    SELECT i.inhparent::regclass, c.oid::regclass,
           substring(b.bound FROM $re$FROM \('([^']+)'\)$re$)::timestamptz,
           substring(b.bound FROM $re$ TO \('([^']+)'\)$re$)::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent IN ('omnibridge.hook_events'::regclass, 'omnibridge.event_metrics'::regclass,
                          'omnibridge.connection_metrics'::regclass,
                          'omnibridge.security_audit_log'::regclass)
    ORDER BY 1, 3 NULLS LAST
$$;
-- +goose StatementEnd

-- retention_target says which table rel holds rows of (kind), the range end of
-- a dated partition (NULL for a DEFAULT partition or a plain table) and the
-- predicate over alias t that selects its expired rows ($1 cutoff, $2
-- dead_cutoff) with the time column that orders them. A partitioned parent is
-- refused: batches work on one partition at a time.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.retention_target(rel regclass,
    OUT kind text, OUT range_end timestamptz, OUT predicate text, OUT key_column text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent regclass;
BEGIN
    SELECT p.parent, p.range_end INTO parent, range_end
    FROM omnibridge.retention_partitions() p WHERE p.part = rel;
    CASE coalesce(parent, rel)
        WHEN 'omnibridge.hook_events'::regclass THEN
            kind := 'hook_events'; key_column := 'created_at';
            predicate := $p$((t.status = 'processed' AND t.created_at < $1)
                OR (t.status = 'dead' AND greatest(t.created_at, t.claimed_at, t.next_attempt_at) < $2))
                AND t.created_at < greatest($1, $2)$p$;
        WHEN 'omnibridge.event_metrics'::regclass THEN
            kind := 'event_metrics'; key_column := 'created_at';
            predicate := 't.created_at < $1';
        WHEN 'omnibridge.connection_metrics'::regclass THEN
            kind := 'connection_metrics'; key_column := 'recorded_at';
            predicate := 't.recorded_at < $1';
        WHEN 'omnibridge.security_audit_log'::regclass THEN
            kind := 'security_audit_log'; key_column := 'created_at';
            predicate := 't.created_at < $1';
        WHEN 'omnibridge.service_sessions'::regclass THEN
            kind := 'service_sessions'; key_column := 'session_end';
            predicate := $p$t.status <> 'active' AND t.session_end < $1$p$;
        WHEN 'omnibridge.hook_event_deliveries'::regclass THEN
            kind := 'hook_event_deliveries'; key_column := 'created_at';
            -- A delivery id guards its event: it stays while the event is
            -- kept, so a dry run (events still there) counts the same rows.
            predicate := $p$t.created_at < $1
                AND NOT EXISTS (SELECT 1 FROM omnibridge.hook_events e WHERE e.id = t.event_id
                    AND NOT ((e.status = 'processed' AND e.created_at < $1)
                        OR (e.status = 'dead' AND greatest(e.created_at, e.claimed_at, e.next_attempt_at) < $2)))$p$;
        ELSE
            kind := NULL;
    END CASE;
    IF kind IS NULL OR (parent IS NULL AND kind NOT IN ('service_sessions', 'hook_event_deliveries')) THEN
        RAISE EXCEPTION 'retention: % is not a partition or table that retention manages', rel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass a partition listed by omnibridge.retention_partitions(), '
                         'omnibridge.service_sessions or omnibridge.hook_event_deliveries.';
    END IF;
END;
$$;
-- +goose StatementEnd

-- retention_count counts the rows of rel that retention would remove. For the
-- audit log that is every row of a partition whose range ended before cutoff,
-- and the rows of the DEFAULT partition older than cutoff.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.retention_count(rel regclass, cutoff timestamptz, dead_cutoff timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind      text;
    range_end timestamptz;
    predicate text;
    n         bigint;
BEGIN
    SELECT r.kind, r.range_end, r.predicate INTO kind, range_end, predicate
    FROM omnibridge.retention_target(rel) r;
    IF kind = 'security_audit_log' AND (range_end IS NOT NULL AND range_end > cutoff) THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s t WHERE %s', rel, predicate)
        INTO n USING cutoff, coalesce(dead_cutoff, cutoff);
    RETURN n;
END;
$$;
-- +goose StatementEnd

-- retention_delete_batch deletes up to batch_size expired rows of rel whose
-- time column is at or after "after", oldest first, and returns how many it
-- deleted and the latest time among them: the next batch starts there, so a
-- run walks the time index once instead of rescanning what it deleted. The
-- outer DELETE repeats the predicate, so a row that a concurrent transaction
-- changed after the inner SELECT saw it (an event replayed to pending) is
-- checked again in its new version and kept.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.retention_delete_batch(rel regclass, cutoff timestamptz,
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

-- retention_partition_droppable says whether every row of the dated partition
-- part is expired and may go: its range ended at or before cutoff and, for
-- hook_events, it holds no pending or processing event and no dead event whose
-- last activity is at or after dead_cutoff. DEFAULT partitions and the audit
-- log's partitions are never droppable here.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.retention_partition_droppable(part regclass, cutoff timestamptz,
    dead_cutoff timestamptz)
RETURNS boolean
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind      text;
    range_end timestamptz;
    keep      boolean := false;
BEGIN
    SELECT r.kind, r.range_end INTO kind, range_end FROM omnibridge.retention_target(part) r;
    IF kind NOT IN ('hook_events', 'event_metrics', 'connection_metrics')
       OR range_end IS NULL OR cutoff IS NULL OR range_end > cutoff THEN
        RETURN false;
    END IF;
    IF kind = 'hook_events' THEN
        EXECUTE format($q$
            SELECT EXISTS (SELECT 1 FROM %1$s t WHERE t.status IN ('pending', 'processing'))
                OR EXISTS (SELECT 1 FROM %1$s t WHERE t.status = 'dead'
                           AND greatest(t.created_at, t.claimed_at, t.next_attempt_at) >= $1)$q$, part)
            INTO keep USING coalesce(dead_cutoff, cutoff);
    END IF;
    RETURN NOT keep;
END;
$$;
-- +goose StatementEnd

-- retention_drop_partition drops the dated partition part when
-- retention_partition_droppable says so, and returns the number of rows it
-- held (counted just before the locks are taken), or NULL when it kept the
-- partition or the partition is already gone. It takes the partition
-- maintenance lock, then ACCESS EXCLUSIVE on the parent (ONLY), its DEFAULT
-- partition and part, in that order (the order DROP needs, so no query that
-- came in through the parent can deadlock with it), and checks again under the
-- locks. The caller's lock_timeout bounds every wait.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.retention_drop_partition(part regclass, cutoff timestamptz,
    dead_cutoff timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent regclass;
    def    regclass;
    n      bigint;
BEGIN
    SELECT p.parent INTO parent FROM omnibridge.retention_partitions() p WHERE p.part = $1;
    IF parent IS NULL THEN
        RETURN NULL;
    END IF;
    IF NOT omnibridge.retention_partition_droppable(part, cutoff, dead_cutoff) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', part) INTO n;

    PERFORM pg_advisory_xact_lock(hashtextextended('omnibridge.partition_maintenance', 0));
    IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = part) THEN
        RETURN NULL; -- dropped meanwhile by another run
    END IF;
    EXECUTE format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE', parent);
    SELECT NULLIF(partdefid, 0)::regclass INTO def FROM pg_partitioned_table WHERE partrelid = parent;
    IF def IS NOT NULL THEN
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', def);
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', part);
    IF NOT omnibridge.retention_partition_droppable(part, cutoff, dead_cutoff) THEN
        RETURN NULL; -- a row to keep arrived meanwhile
    END IF;
    EXECUTE format('DROP TABLE %s', part);
    RETURN n;
END;
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION omnibridge.retention_partitions() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.retention_target(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.retention_count(regclass, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.retention_delete_batch(regclass, timestamptz, timestamptz, timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.retention_partition_droppable(regclass, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.retention_drop_partition(regclass, timestamptz, timestamptz) FROM PUBLIC;

-- apply_role_grants learns the new functions: the role that runs maintenance
-- (workflow_coordinator) may execute them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.apply_role_grants() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       text;
    granted integer := 0;
BEGIN
    -- What every service does: register its session and heartbeat, record pool
    -- snapshots, append audit rows, and check the schema version.
    FOREACH r IN ARRAY ARRAY['hook_receiver', 'workflow_coordinator', 'model_metrics'] LOOP
        CONTINUE WHEN to_regrole(r) IS NULL;
        EXECUTE format('GRANT USAGE ON SCHEMA omnibridge TO %I', r);
        EXECUTE format('GRANT SELECT, INSERT ON omnibridge.service_sessions TO %I', r);
        EXECUTE format('GRANT UPDATE (status, session_end, last_seen, metadata)'
                       ' ON omnibridge.service_sessions TO %I', r);
        EXECUTE format('GRANT INSERT ON omnibridge.connection_metrics TO %I', r);
        EXECUTE format('GRANT INSERT ON omnibridge.security_audit_log TO %I', r);
        IF to_regclass('omnibridge.goose_db_version') IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON omnibridge.goose_db_version TO %I', r);
        END IF;
        granted := granted + 1;
    END LOOP;

    IF to_regrole('hook_receiver') IS NOT NULL THEN
        GRANT SELECT, INSERT ON omnibridge.hook_events TO hook_receiver;
        GRANT SELECT, INSERT ON omnibridge.hook_event_deliveries TO hook_receiver;
    END IF;

    IF to_regrole('workflow_coordinator') IS NOT NULL THEN
        GRANT SELECT ON omnibridge.hook_events TO workflow_coordinator;
        GRANT UPDATE (status, next_attempt_at, claimed_at, claim_id, processed_at,
                      processing_errors, retry_count)
            ON omnibridge.hook_events TO workflow_coordinator;
        GRANT INSERT ON omnibridge.event_metrics TO workflow_coordinator;
        GRANT EXECUTE ON FUNCTION
            omnibridge.ensure_partitions(integer),
            omnibridge.create_partition_for(regclass, timestamptz),
            omnibridge.cleanup_old_data(interval, interval, interval, interval, interval),
            omnibridge.drop_expired_audit_partitions(interval),
            omnibridge.retention_partitions(),
            omnibridge.retention_count(regclass, timestamptz, timestamptz),
            omnibridge.retention_delete_batch(regclass, timestamptz, timestamptz, timestamptz, integer),
            omnibridge.retention_partition_droppable(regclass, timestamptz, timestamptz),
            omnibridge.retention_drop_partition(regclass, timestamptz, timestamptz)
            TO workflow_coordinator;
    END IF;

    IF to_regrole('model_metrics') IS NOT NULL THEN
        GRANT SELECT ON
            omnibridge.service_sessions, omnibridge.hook_events,
            omnibridge.hook_event_deliveries, omnibridge.event_metrics,
            omnibridge.security_audit_log, omnibridge.connection_metrics
            TO model_metrics;
    END IF;
    RETURN granted;
END;
$$;
-- +goose StatementEnd
SELECT omnibridge.apply_role_grants();

-- +goose Down

-- The previous apply_role_grants (version 4). Dropping the functions below
-- takes their grants with them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.apply_role_grants() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r       text;
    granted integer := 0;
BEGIN
    -- What every service does: register its session and heartbeat, record pool
    -- snapshots, append audit rows, and check the schema version.
    FOREACH r IN ARRAY ARRAY['hook_receiver', 'workflow_coordinator', 'model_metrics'] LOOP
        CONTINUE WHEN to_regrole(r) IS NULL;
        EXECUTE format('GRANT USAGE ON SCHEMA omnibridge TO %I', r);
        EXECUTE format('GRANT SELECT, INSERT ON omnibridge.service_sessions TO %I', r);
        EXECUTE format('GRANT UPDATE (status, session_end, last_seen, metadata)'
                       ' ON omnibridge.service_sessions TO %I', r);
        EXECUTE format('GRANT INSERT ON omnibridge.connection_metrics TO %I', r);
        EXECUTE format('GRANT INSERT ON omnibridge.security_audit_log TO %I', r);
        IF to_regclass('omnibridge.goose_db_version') IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON omnibridge.goose_db_version TO %I', r);
        END IF;
        granted := granted + 1;
    END LOOP;

    IF to_regrole('hook_receiver') IS NOT NULL THEN
        GRANT SELECT, INSERT ON omnibridge.hook_events TO hook_receiver;
        GRANT SELECT, INSERT ON omnibridge.hook_event_deliveries TO hook_receiver;
    END IF;

    IF to_regrole('workflow_coordinator') IS NOT NULL THEN
        GRANT SELECT ON omnibridge.hook_events TO workflow_coordinator;
        GRANT UPDATE (status, next_attempt_at, claimed_at, claim_id, processed_at,
                      processing_errors, retry_count)
            ON omnibridge.hook_events TO workflow_coordinator;
        GRANT INSERT ON omnibridge.event_metrics TO workflow_coordinator;
        GRANT EXECUTE ON FUNCTION
            omnibridge.ensure_partitions(integer),
            omnibridge.create_partition_for(regclass, timestamptz),
            omnibridge.cleanup_old_data(interval, interval, interval, interval, interval),
            omnibridge.drop_expired_audit_partitions(interval)
            TO workflow_coordinator;
    END IF;

    IF to_regrole('model_metrics') IS NOT NULL THEN
        GRANT SELECT ON
            omnibridge.service_sessions, omnibridge.hook_events,
            omnibridge.hook_event_deliveries, omnibridge.event_metrics,
            omnibridge.security_audit_log, omnibridge.connection_metrics
            TO model_metrics;
    END IF;
    RETURN granted;
END;
$$;
-- +goose StatementEnd

DROP FUNCTION omnibridge.retention_drop_partition(regclass, timestamptz, timestamptz);
DROP FUNCTION omnibridge.retention_partition_droppable(regclass, timestamptz, timestamptz);
DROP FUNCTION omnibridge.retention_delete_batch(regclass, timestamptz, timestamptz, timestamptz, integer);
DROP FUNCTION omnibridge.retention_count(regclass, timestamptz, timestamptz);
DROP FUNCTION omnibridge.retention_target(regclass);
DROP FUNCTION omnibridge.retention_partitions();

DROP INDEX omnibridge.idx_security_audit_type;
DROP INDEX omnibridge.idx_security_audit_created;
DROP INDEX omnibridge.idx_hook_events_unfinished;
DROP INDEX omnibridge.idx_hook_events_processed_at;
DROP INDEX omnibridge.idx_hook_events_created_at;
