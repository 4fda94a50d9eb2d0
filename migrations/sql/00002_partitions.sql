-- Partition maintenance: dated partitions are created ahead of time; rows that
-- arrived in a DEFAULT partition before their dated partition existed are moved
-- into it when it is created.
--
-- Partitions cover whole UTC days (hook_events, event_metrics,
-- connection_metrics) or UTC months (security_audit_log) and are named
-- <table>_pYYYYMMDD or <table>_pYYYYMM. All maintenance functions serialize on
-- one transaction-level advisory lock, so concurrent callers are safe.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION omnibridge.partition_layout(parent regclass, OUT key_column text, OUT step text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CASE parent
        WHEN 'omnibridge.hook_events'::regclass THEN
            key_column := 'created_at'; step := 'day';
        WHEN 'omnibridge.event_metrics'::regclass THEN
            key_column := 'created_at'; step := 'day';
        WHEN 'omnibridge.connection_metrics'::regclass THEN
            key_column := 'recorded_at'; step := 'day';
        WHEN 'omnibridge.security_audit_log'::regclass THEN
            key_column := 'created_at'; step := 'month';
        ELSE
            RAISE EXCEPTION '% is not a time-partitioned omnibridge table', parent
                USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END;
$$;
-- +goose StatementEnd

-- audit_default_remove deletes the rows of the audit log's DEFAULT partition in
-- [lo, hi). Only the partition functions below call it (as the owner); the
-- append-only triggers of that one partition are off for the statement only.
-- +goose StatementBegin
CREATE FUNCTION omnibridge.audit_default_remove(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    def regclass;
    removed bigint;
BEGIN
    SELECT NULLIF(partdefid, 0)::regclass INTO def
    FROM pg_partitioned_table
    WHERE partrelid = 'omnibridge.security_audit_log'::regclass;
    IF def IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER security_audit_log_append_only_row,'
                   ' DISABLE TRIGGER security_audit_log_append_only_stmt', def);
    EXECUTE format('DELETE FROM %s WHERE created_at >= $1 AND created_at < $2', def)
        USING lo, hi;
    GET DIAGNOSTICS removed = ROW_COUNT;
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER security_audit_log_append_only_row,'
                   ' ENABLE ALWAYS TRIGGER security_audit_log_append_only_stmt', def);
    RETURN removed;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION omnibridge.create_partition_for(parent regclass, at timestamptz) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    key_column  text;
    step        text;
    lo          timestamptz;
    hi          timestamptz;
    part_name   text;
    part        text;
    def         regclass;
    cols        text;
    has_rows    boolean := false;
BEGIN
    IF at IS NULL OR NOT isfinite(at) THEN
        RAISE EXCEPTION 'create_partition_for: % is not a finite timestamp', at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT l.key_column, l.step INTO key_column, step FROM omnibridge.partition_layout(parent) l;
    PERFORM pg_advisory_xact_lock(hashtextextended('omnibridge.partition_maintenance', 0));

    lo := date_trunc(step, at);
    hi := lo + ('1 ' || step)::interval;
    SELECT c.relname || '_p' || to_char(lo, CASE step WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END)
    INTO part_name
    FROM pg_class c WHERE c.oid = parent;
    part := format('omnibridge.%I', part_name);
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;

    -- Writers wait from here to commit, so no row reaches the DEFAULT partition
    -- between the check below and the creation.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', parent);
    SELECT NULLIF(partdefid, 0)::regclass INTO def FROM pg_partitioned_table WHERE partrelid = parent;
    IF def IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I >= $1 AND %I < $2)',
                       def, key_column, key_column)
            INTO has_rows USING lo, hi;
    END IF;

    IF NOT has_rows THEN
        EXECUTE format('CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       part, parent, lo, hi);
    ELSE
        -- The DEFAULT partition holds rows of the new range: a partition cannot be
        -- created over them, so build the table, move the rows, then attach it.
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
        FROM pg_attribute a
        WHERE a.attrelid = parent AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
        EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                       ' INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)', part, parent);
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %I >= $1 AND %I < $2',
                       part, cols, cols, def, key_column, key_column)
            USING lo, hi;
        IF parent = 'omnibridge.security_audit_log'::regclass THEN
            PERFORM omnibridge.audit_default_remove(lo, hi);
        ELSE
            EXECUTE format('DELETE FROM %s WHERE %I >= $1 AND %I < $2', def, key_column, key_column)
                USING lo, hi;
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                       parent, part, lo, hi);
    END IF;

    IF parent = 'omnibridge.security_audit_log'::regclass THEN
        PERFORM omnibridge.protect_audit_partition(part::regclass);
    END IF;
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION omnibridge.ensure_partitions(days_ahead integer DEFAULT 7) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    parent  regclass;
    step    text;
    at      timestamptz;
    created integer := 0;
BEGIN
    IF days_ahead IS NULL OR days_ahead < 0 OR days_ahead > 365 THEN
        RAISE EXCEPTION 'ensure_partitions: days_ahead must be between 0 and 365, got %', days_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('omnibridge.partition_maintenance', 0));
    FOREACH parent IN ARRAY ARRAY[
        'omnibridge.hook_events', 'omnibridge.event_metrics',
        'omnibridge.connection_metrics', 'omnibridge.security_audit_log']::regclass[]
    LOOP
        SELECT l.step INTO step FROM omnibridge.partition_layout(parent) l;
        FOR at IN
            SELECT generate_series(date_trunc(step, now() - interval '1 day'),
                                   now() + days_ahead * interval '1 day',
                                   ('1 ' || step)::interval)
        LOOP
            IF omnibridge.create_partition_for(parent, at) THEN
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION omnibridge.partition_layout(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.audit_default_remove(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.create_partition_for(regclass, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.ensure_partitions(integer) FROM PUBLIC;

SELECT omnibridge.ensure_partitions(7);

-- +goose Down

-- Dated partitions stay: they hold data and belong to their tables.
DROP FUNCTION omnibridge.ensure_partitions(integer);
DROP FUNCTION omnibridge.create_partition_for(regclass, timestamptz);
DROP FUNCTION omnibridge.audit_default_remove(timestamptz, timestamptz);
DROP FUNCTION omnibridge.partition_layout(regclass);
