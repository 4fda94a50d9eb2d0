-- The omnibridge tables (ADR-016 with the corrections of DESIGN.md "Data").
--
-- The schema itself is created by the migrator before goose runs, because goose
-- keeps its version table (omnibridge.goose_db_version) in it; so this version
-- creates and drops only the objects inside the schema.
--
-- Time-based tables are range-partitioned on their timestamp and each has a
-- DEFAULT partition, so an insert never fails for want of a partition. Dated
-- partitions are created by omnibridge.ensure_partitions (version 2).

-- +goose Up

CREATE TABLE omnibridge.service_sessions (
    id            UUID PRIMARY KEY,
    service_name  VARCHAR(255) NOT NULL,
    instance_id   VARCHAR(255),
    session_start TIMESTAMPTZ NOT NULL DEFAULT now(),
    session_end   TIMESTAMPTZ,
    status        VARCHAR(50) NOT NULL DEFAULT 'active',
    metadata      JSONB DEFAULT '{}',
    last_seen     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT service_sessions_status_check
        CHECK (status IN ('active', 'ended', 'terminated', 'failed')),
    CONSTRAINT service_sessions_end_check
        CHECK (status = 'active' OR session_end IS NOT NULL)
);

COMMENT ON TABLE omnibridge.service_sessions IS
    'One row per running or finished service instance; heartbeats move last_seen.';
COMMENT ON COLUMN omnibridge.service_sessions.session_end IS
    'Set when the session leaves status active; retention counts from it.';

CREATE INDEX idx_service_sessions_service_status
    ON omnibridge.service_sessions (service_name, status) WHERE status = 'active';

CREATE TABLE omnibridge.hook_events (
    id                UUID NOT NULL,
    source            VARCHAR(255) NOT NULL,
    action            VARCHAR(255) NOT NULL,
    resource          VARCHAR(255) NOT NULL,
    resource_id       VARCHAR(255) NOT NULL,
    payload           JSONB NOT NULL DEFAULT '{}',
    metadata          JSONB NOT NULL DEFAULT '{}',
    processed         BOOLEAN NOT NULL GENERATED ALWAYS AS (status = 'processed') STORED,
    processing_errors TEXT[],
    retry_count       INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    status            TEXT NOT NULL DEFAULT 'pending',
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_at        TIMESTAMPTZ,
    claim_id          UUID,
    processed_at      TIMESTAMPTZ,
    delivery_id       VARCHAR(255),
    PRIMARY KEY (id, created_at),
    CONSTRAINT hook_events_status_check
        CHECK (status IN ('pending', 'processing', 'processed', 'dead')),
    CONSTRAINT hook_events_retry_count_check
        CHECK (retry_count >= 0),
    CONSTRAINT hook_events_claim_check
        CHECK (status <> 'processing' OR (claimed_at IS NOT NULL AND claim_id IS NOT NULL)),
    CONSTRAINT hook_events_processed_at_check
        CHECK (status <> 'processed' OR processed_at IS NOT NULL)
) PARTITION BY RANGE (created_at);

COMMENT ON TABLE omnibridge.hook_events IS
    'Received webhooks and their processing state; partitioned by UTC day of created_at.';
COMMENT ON COLUMN omnibridge.hook_events.processed IS
    'Always status = ''processed'' (generated), kept so ADR-016 queries keep working.';
COMMENT ON COLUMN omnibridge.hook_events.next_attempt_at IS
    'A pending event is claimable once now() reaches this.';
COMMENT ON COLUMN omnibridge.hook_events.claimed_at IS
    'When the current claim was taken; a processing event with an old claim is reclaimed.';

CREATE TABLE omnibridge.hook_events_default
    PARTITION OF omnibridge.hook_events DEFAULT;

-- ADR-016: the unprocessed backlog, oldest first or newest first.
CREATE INDEX idx_hook_events_processed
    ON omnibridge.hook_events (processed, created_at DESC) WHERE NOT processed;
-- Claiming: pending events whose next attempt is due.
CREATE INDEX idx_hook_events_claimable
    ON omnibridge.hook_events (next_attempt_at) WHERE status = 'pending';
-- Lease reclaim: processing events whose claim is too old.
CREATE INDEX idx_hook_events_claimed
    ON omnibridge.hook_events (claimed_at) WHERE status = 'processing';

CREATE TABLE omnibridge.hook_event_deliveries (
    source      VARCHAR(255) NOT NULL,
    delivery_id VARCHAR(255) NOT NULL,
    event_id    UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, delivery_id)
);

COMMENT ON TABLE omnibridge.hook_event_deliveries IS
    'Deduplication of redeliveries: one row per (source, delivery_id), written with the event.';

CREATE INDEX idx_hook_event_deliveries_created_at
    ON omnibridge.hook_event_deliveries (created_at);

CREATE TABLE omnibridge.event_metrics (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY,
    event_id              UUID NOT NULL,
    processing_time_ms    DOUBLE PRECISION NOT NULL,
    kafka_publish_success BOOLEAN NOT NULL,
    error_message         TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

COMMENT ON TABLE omnibridge.event_metrics IS
    'One row per processing attempt; partitioned by UTC day of created_at.';

CREATE TABLE omnibridge.event_metrics_default
    PARTITION OF omnibridge.event_metrics DEFAULT;

CREATE INDEX idx_event_metrics_performance
    ON omnibridge.event_metrics (processing_time_ms, kafka_publish_success);
CREATE INDEX idx_event_metrics_created_at
    ON omnibridge.event_metrics (created_at);
CREATE INDEX idx_event_metrics_event_id
    ON omnibridge.event_metrics (event_id);

CREATE TABLE omnibridge.security_audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY,
    event_type    VARCHAR(100) NOT NULL,
    client_info   JSONB,
    success       BOOLEAN NOT NULL,
    error_details TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

COMMENT ON TABLE omnibridge.security_audit_log IS
    'Append-only security events; partitioned by UTC month of created_at. '
    'Rows leave only with whole expired partitions (omnibridge.drop_expired_audit_partitions).';

CREATE TABLE omnibridge.security_audit_log_default
    PARTITION OF omnibridge.security_audit_log DEFAULT;

CREATE INDEX idx_security_audit_failed
    ON omnibridge.security_audit_log (created_at DESC) WHERE NOT success;

CREATE TABLE omnibridge.connection_metrics (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY,
    service_name        VARCHAR(255),
    instance_id         VARCHAR(255),
    pool_size           INTEGER NOT NULL,
    active_connections  INTEGER NOT NULL,
    idle_connections    INTEGER NOT NULL,
    waiting_connections INTEGER NOT NULL DEFAULT 0,
    total_queries       BIGINT NOT NULL DEFAULT 0,
    failed_queries      INTEGER NOT NULL DEFAULT 0,
    avg_query_time_ms   DOUBLE PRECISION,
    potential_leaks     INTEGER NOT NULL DEFAULT 0,
    utilization_percent DOUBLE PRECISION,
    recorded_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);

COMMENT ON TABLE omnibridge.connection_metrics IS
    'Periodic pool snapshots of each service instance; partitioned by UTC day of recorded_at.';

CREATE TABLE omnibridge.connection_metrics_default
    PARTITION OF omnibridge.connection_metrics DEFAULT;

CREATE INDEX idx_connection_metrics_instance
    ON omnibridge.connection_metrics (service_name, instance_id, recorded_at DESC);

-- The audit log is append-only for every role, its owner included. A row
-- trigger on the parent is cloned to every partition; TRUNCATE triggers are
-- statement triggers, which are not cloned, so omnibridge.protect_audit_partition
-- adds them to each partition (the partition functions call it). All of them
-- fire ALWAYS, so session_replication_role = replica does not bypass them.

-- +goose StatementBegin
CREATE FUNCTION omnibridge.security_audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'security_audit_log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Expired rows leave only through omnibridge.drop_expired_audit_partitions().';
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION omnibridge.protect_audit_partition(rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format(
        'CREATE TRIGGER security_audit_log_append_only_stmt'
        ' BEFORE UPDATE OR DELETE OR TRUNCATE ON %s'
        ' FOR EACH STATEMENT EXECUTE FUNCTION omnibridge.security_audit_log_refuse_change()', rel);
    EXECUTE format(
        'ALTER TABLE %s ENABLE ALWAYS TRIGGER security_audit_log_append_only_stmt', rel);
    -- The cloned row trigger of a new partition may not carry the parent's ALWAYS.
    IF EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgrelid = rel AND tgname = 'security_audit_log_append_only_row') THEN
        EXECUTE format(
            'ALTER TABLE %s ENABLE ALWAYS TRIGGER security_audit_log_append_only_row', rel);
    END IF;
END;
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION omnibridge.security_audit_log_refuse_change() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnibridge.protect_audit_partition(regclass) FROM PUBLIC;

CREATE TRIGGER security_audit_log_append_only_row
    BEFORE UPDATE OR DELETE ON omnibridge.security_audit_log
    FOR EACH ROW EXECUTE FUNCTION omnibridge.security_audit_log_refuse_change();
ALTER TABLE omnibridge.security_audit_log
    ENABLE ALWAYS TRIGGER security_audit_log_append_only_row;

SELECT omnibridge.protect_audit_partition('omnibridge.security_audit_log');
SELECT omnibridge.protect_audit_partition('omnibridge.security_audit_log_default');

-- +goose Down

DROP TABLE omnibridge.connection_metrics;
DROP TABLE omnibridge.security_audit_log;
DROP FUNCTION omnibridge.protect_audit_partition(regclass);
DROP FUNCTION omnibridge.security_audit_log_refuse_change();
DROP TABLE omnibridge.event_metrics;
DROP TABLE omnibridge.hook_event_deliveries;
DROP TABLE omnibridge.hook_events;
DROP TABLE omnibridge.service_sessions;
