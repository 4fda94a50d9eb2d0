-- Creating a partition no longer blocks writers while PostgreSQL scans the
-- DEFAULT partition.
--
-- Version 2's create_partition_for locked the parent against writes and ran
-- CREATE TABLE ... PARTITION OF, which holds ACCESS EXCLUSIVE on the parent
-- while PostgreSQL scans the whole DEFAULT partition to prove that none of its
-- rows belongs to the new range: with a large DEFAULT partition (old events
-- imported before their partitions existed), every insert waited for that
-- scan. A partition made ahead (the daily case) or for old data is now built
-- as a table and attached (SHARE UPDATE EXCLUSIVE on the parent); a range
-- within a day of now, which live rows may be arriving for, and a move of
-- rows out of DEFAULT still lock writers out, as before.

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.create_partition_for(parent regclass, at timestamptz) RETURNS boolean
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

    -- A range that live rows may be arriving for (within a day of now) is
    -- created with writers locked out, as before: an insert of that range
    -- waiting for DEFAULT's lock would otherwise fail once the partition is
    -- attached, its row routed to DEFAULT. A partition made ahead (the
    -- daily case) or for old data takes no such lock.
    IF lo < now() + interval '1 day' AND hi > now() - interval '1 day' THEN
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', parent);
    END IF;
    SELECT NULLIF(partdefid, 0)::regclass INTO def FROM pg_partitioned_table WHERE partrelid = parent;
    IF def IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I >= $1 AND %I < $2)',
                       def, key_column, key_column)
            INTO has_rows USING lo, hi;
    END IF;

    -- The new partition is built as a table of its own, then attached:
    -- ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the parent, which
    -- lets writers and readers go on, and ACCESS EXCLUSIVE on the DEFAULT
    -- partition while it proves that none of DEFAULT's rows belongs to the
    -- new range (a scan of DEFAULT). Readers that reach DEFAULT, and writers
    -- whose rows go to it, wait for that scan; writers whose rows go to the
    -- dated partitions do not. A row of a future range that reaches DEFAULT
    -- after the check above makes the ATTACH fail; the next call moves it.
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
    FROM pg_attribute a
    WHERE a.attrelid = parent AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
    EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)', part, parent);
    IF has_rows THEN
        -- The DEFAULT partition holds rows of the new range (maintenance did
        -- not run in time): move them. Writers wait from here to commit, so
        -- that no row reaches DEFAULT between the copy and the delete.
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', parent);
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s WHERE %I >= $1 AND %I < $2',
                       part, cols, cols, def, key_column, key_column)
            USING lo, hi;
        IF parent = 'omnibridge.security_audit_log'::regclass THEN
            PERFORM omnibridge.audit_default_remove(lo, hi);
        ELSE
            EXECUTE format('DELETE FROM %s WHERE %I >= $1 AND %I < $2', def, key_column, key_column)
                USING lo, hi;
        END IF;
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                   parent, part, lo, hi);

    IF parent = 'omnibridge.security_audit_log'::regclass THEN
        PERFORM omnibridge.protect_audit_partition(part::regclass);
    END IF;
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION omnibridge.create_partition_for(parent regclass, at timestamptz) RETURNS boolean
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
