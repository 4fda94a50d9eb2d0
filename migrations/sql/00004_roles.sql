-- Per-service NOLOGIN roles with least-privilege grants. Services log in as
-- their own LOGIN user that is a member of the role, or SET ROLE to it.
--
-- Roles belong to the whole cluster, not to this database: they are created
-- only if missing and only when the migrating user may create roles (else a
-- NOTICE says so and a DBA creates them; then the schema owner runs
-- SELECT omnibridge.apply_role_grants()). Rolling back revokes this database's
-- grants but keeps the roles, which other databases may use.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION omnibridge.apply_role_grants() RETURNS integer
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

REVOKE ALL ON FUNCTION omnibridge.apply_role_grants() FROM PUBLIC;

-- +goose StatementBegin
DO $$
DECLARE
    r          text;
    may_create boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY ARRAY['hook_receiver', 'workflow_coordinator', 'model_metrics'] LOOP
        CONTINUE WHEN to_regrole(r) IS NOT NULL;
        IF NOT may_create THEN
            RAISE NOTICE 'omnibridge: role % does not exist and % may not create roles; skipped '
                         '(a DBA creates it, then the schema owner runs SELECT omnibridge.apply_role_grants())',
                         r, current_user;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created at the same moment by a migration of another database
        END;
    END LOOP;
    PERFORM omnibridge.apply_role_grants();
END;
$$;
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['hook_receiver', 'workflow_coordinator', 'model_metrics'] LOOP
        CONTINUE WHEN to_regrole(r) IS NULL;
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA omnibridge FROM %I', r);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA omnibridge FROM %I', r);
        EXECUTE format('REVOKE ALL ON SCHEMA omnibridge FROM %I', r);
    END LOOP;
END;
$$;
-- +goose StatementEnd

DROP FUNCTION omnibridge.apply_role_grants();
