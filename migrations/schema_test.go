package migrations_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// column is how a column must look in pg_catalog.
type column struct {
	name      string
	typ       string // format_type
	notNull   bool
	def       string // default expression, or the generation expression when generated
	generated bool   // GENERATED ALWAYS AS (…) STORED
	identity  bool   // GENERATED ALWAYS AS IDENTITY
}

const (
	varchar255 = "character varying(255)"
	tstz       = "timestamp with time zone"
)

var wantColumns = map[string][]column{
	"service_sessions": {
		{name: "id", typ: "uuid", notNull: true},
		{name: "service_name", typ: varchar255, notNull: true},
		{name: "instance_id", typ: varchar255},
		{name: "session_start", typ: tstz, notNull: true, def: "now()"},
		{name: "session_end", typ: tstz},
		{name: "status", typ: "character varying(50)", notNull: true, def: "'active'::character varying"},
		{name: "metadata", typ: "jsonb", def: "'{}'::jsonb"},
		{name: "last_seen", typ: tstz, notNull: true, def: "now()"},
	},
	"hook_events": {
		{name: "id", typ: "uuid", notNull: true},
		{name: "source", typ: varchar255, notNull: true},
		{name: "action", typ: varchar255, notNull: true},
		{name: "resource", typ: varchar255, notNull: true},
		{name: "resource_id", typ: varchar255, notNull: true},
		{name: "payload", typ: "jsonb", notNull: true, def: "'{}'::jsonb"},
		{name: "metadata", typ: "jsonb", notNull: true, def: "'{}'::jsonb"},
		{name: "processed", typ: "boolean", notNull: true, def: "(status = 'processed'::text)", generated: true},
		{name: "processing_errors", typ: "text[]"},
		{name: "retry_count", typ: "integer", notNull: true, def: "0"},
		{name: "created_at", typ: tstz, notNull: true, def: "now()"},
		{name: "status", typ: "text", notNull: true, def: "'pending'::text"},
		{name: "next_attempt_at", typ: tstz, notNull: true, def: "now()"},
		{name: "claimed_at", typ: tstz},
		{name: "claim_id", typ: "uuid"},
		{name: "processed_at", typ: tstz},
		{name: "delivery_id", typ: varchar255},
	},
	"hook_event_deliveries": {
		{name: "source", typ: varchar255, notNull: true},
		{name: "delivery_id", typ: varchar255, notNull: true},
		{name: "event_id", typ: "uuid", notNull: true},
		{name: "created_at", typ: tstz, notNull: true, def: "now()"},
	},
	"event_metrics": {
		{name: "id", typ: "bigint", notNull: true, identity: true},
		{name: "event_id", typ: "uuid", notNull: true},
		{name: "processing_time_ms", typ: "double precision", notNull: true},
		{name: "kafka_publish_success", typ: "boolean", notNull: true},
		{name: "error_message", typ: "text"},
		{name: "created_at", typ: tstz, notNull: true, def: "now()"},
	},
	"security_audit_log": {
		{name: "id", typ: "bigint", notNull: true, identity: true},
		{name: "event_type", typ: "character varying(100)", notNull: true},
		{name: "client_info", typ: "jsonb"},
		{name: "success", typ: "boolean", notNull: true},
		{name: "error_details", typ: "text"},
		{name: "created_at", typ: tstz, notNull: true, def: "now()"},
	},
	"connection_metrics": {
		{name: "id", typ: "bigint", notNull: true, identity: true},
		{name: "service_name", typ: varchar255},
		{name: "instance_id", typ: varchar255},
		{name: "pool_size", typ: "integer", notNull: true},
		{name: "active_connections", typ: "integer", notNull: true},
		{name: "idle_connections", typ: "integer", notNull: true},
		{name: "waiting_connections", typ: "integer", notNull: true, def: "0"},
		{name: "total_queries", typ: "bigint", notNull: true, def: "0"},
		{name: "failed_queries", typ: "integer", notNull: true, def: "0"},
		{name: "avg_query_time_ms", typ: "double precision"},
		{name: "potential_leaks", typ: "integer", notNull: true, def: "0"},
		{name: "utilization_percent", typ: "double precision"},
		{name: "recorded_at", typ: tstz, notNull: true, def: "now()"},
	},
}

// wantIndexes are pg_get_indexdef of each table's indexes (on partitioned
// tables the definitions read ON ONLY; every partition carries a copy).
var wantIndexes = map[string][]string{
	"service_sessions": {
		"CREATE INDEX idx_service_sessions_service_status ON omnibridge.service_sessions USING btree (service_name, status) WHERE ((status)::text = 'active'::text)",
		"CREATE UNIQUE INDEX service_sessions_pkey ON omnibridge.service_sessions USING btree (id)",
	},
	"hook_events": {
		"CREATE INDEX idx_hook_events_claimable ON ONLY omnibridge.hook_events USING btree (next_attempt_at) WHERE (status = 'pending'::text)",
		"CREATE INDEX idx_hook_events_claimed ON ONLY omnibridge.hook_events USING btree (claimed_at) WHERE (status = 'processing'::text)",
		"CREATE INDEX idx_hook_events_created_at ON ONLY omnibridge.hook_events USING btree (created_at)",
		"CREATE INDEX idx_hook_events_processed ON ONLY omnibridge.hook_events USING btree (processed, created_at DESC) WHERE (NOT processed)",
		"CREATE INDEX idx_hook_events_processed_at ON ONLY omnibridge.hook_events USING btree (processed_at) WHERE (status = 'processed'::text)",
		"CREATE INDEX idx_hook_events_unfinished ON ONLY omnibridge.hook_events USING btree (status, created_at) WHERE (status <> 'processed'::text)",
		"CREATE UNIQUE INDEX hook_events_pkey ON ONLY omnibridge.hook_events USING btree (id, created_at)",
	},
	"hook_event_deliveries": {
		"CREATE INDEX idx_hook_event_deliveries_created_at ON omnibridge.hook_event_deliveries USING btree (created_at)",
		"CREATE UNIQUE INDEX hook_event_deliveries_pkey ON omnibridge.hook_event_deliveries USING btree (source, delivery_id)",
	},
	"event_metrics": {
		"CREATE INDEX idx_event_metrics_created_at ON ONLY omnibridge.event_metrics USING btree (created_at)",
		"CREATE INDEX idx_event_metrics_event_id ON ONLY omnibridge.event_metrics USING btree (event_id)",
		"CREATE INDEX idx_event_metrics_performance ON ONLY omnibridge.event_metrics USING btree (processing_time_ms, kafka_publish_success)",
		"CREATE UNIQUE INDEX event_metrics_pkey ON ONLY omnibridge.event_metrics USING btree (id, created_at)",
	},
	"security_audit_log": {
		"CREATE INDEX idx_security_audit_created ON ONLY omnibridge.security_audit_log USING btree (created_at DESC, id DESC)",
		"CREATE INDEX idx_security_audit_failed ON ONLY omnibridge.security_audit_log USING btree (created_at DESC) WHERE (NOT success)",
		"CREATE INDEX idx_security_audit_type ON ONLY omnibridge.security_audit_log USING btree (event_type, created_at DESC, id DESC)",
		"CREATE UNIQUE INDEX security_audit_log_pkey ON ONLY omnibridge.security_audit_log USING btree (id, created_at)",
	},
	"connection_metrics": {
		"CREATE INDEX idx_connection_metrics_instance ON ONLY omnibridge.connection_metrics USING btree (service_name, instance_id, recorded_at DESC)",
		"CREATE UNIQUE INDEX connection_metrics_pkey ON ONLY omnibridge.connection_metrics USING btree (id, recorded_at)",
	},
}

// wantPartitionKey is pg_get_partkeydef of each partitioned table.
var wantPartitionKey = map[string]string{
	"hook_events":        "RANGE (created_at)",
	"event_metrics":      "RANGE (created_at)",
	"security_audit_log": "RANGE (created_at)",
	"connection_metrics": "RANGE (recorded_at)",
}

func TestSchemaTables(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	got := queryStrings(t, conn, `
		SELECT c.relname::text FROM pg_class c
		WHERE c.relnamespace = 'omnibridge'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY 1`)
	want := []string{"goose_db_version"}
	for name := range wantColumns {
		want = append(want, name)
	}
	require.ElementsMatch(t, want, got)

	// information_schema agrees that they are base tables of schema omnibridge.
	require.Equal(t, int64(len(want)), queryInt(t, conn, `
		SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'omnibridge' AND table_type = 'BASE TABLE'
		  AND table_name IN (SELECT relname FROM pg_class WHERE NOT relispartition)`))
}

func TestSchemaColumns(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	for table, want := range wantColumns {
		rows, err := conn.Query(testCtx(t), `
			SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			       COALESCE(pg_get_expr(d.adbin, d.adrelid), ''), a.attgenerated = 's', a.attidentity = 'a'
			FROM pg_attribute a
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = ('omnibridge.' || $1)::regclass AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, table)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
			var c column
			err := r.Scan(&c.name, &c.typ, &c.notNull, &c.def, &c.generated, &c.identity)
			return c, err
		})
		require.NoError(t, err)
		require.Equal(t, want, got, "columns of %s", table)

		// Cross-check nullability, generation and identity with information_schema.
		for _, c := range want {
			var nullable, generated, identity string
			require.NoError(t, conn.QueryRow(testCtx(t), `
				SELECT is_nullable, is_generated, is_identity || '/' || COALESCE(identity_generation, '')
				FROM information_schema.columns
				WHERE table_schema = 'omnibridge' AND table_name = $1 AND column_name = $2`,
				table, c.name).Scan(&nullable, &generated, &identity))
			require.Equal(t, map[bool]string{true: "NO", false: "YES"}[c.notNull], nullable, "%s.%s", table, c.name)
			require.Equal(t, map[bool]string{true: "ALWAYS", false: "NEVER"}[c.generated], generated, "%s.%s", table, c.name)
			require.Equal(t, map[bool]string{true: "YES/ALWAYS", false: "NO/"}[c.identity], identity, "%s.%s", table, c.name)
		}
	}
}

func TestSchemaIndexes(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	for table, want := range wantIndexes {
		got := queryStrings(t, conn, `
			SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
			WHERE i.indrelid = ('omnibridge.' || $1)::regclass ORDER BY 1`, table)
		require.Equal(t, want, got, "indexes of %s", table)
	}

	// Every partition, DEFAULT included, carries every index of its table.
	missing := queryStrings(t, conn, `
		SELECT format('%s lacks a copy of %s', part.relname, pidx.relname)
		FROM pg_inherits pi
		JOIN pg_class part ON part.oid = pi.inhrelid
		JOIN pg_index x ON x.indrelid = pi.inhparent
		JOIN pg_class pidx ON pidx.oid = x.indexrelid
		WHERE pi.inhparent IN (SELECT partrelid FROM pg_partitioned_table
		                       WHERE partrelid::regclass::text LIKE 'omnibridge.%')
		  AND NOT EXISTS (
		      SELECT 1 FROM pg_inherits ii JOIN pg_index cx ON cx.indexrelid = ii.inhrelid
		      WHERE ii.inhparent = x.indexrelid AND cx.indrelid = part.oid AND cx.indisvalid)`)
	require.Empty(t, missing)
}

func TestSchemaPartitioning(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	for _, table := range []string{"service_sessions", "hook_event_deliveries"} {
		require.Equal(t, int64(0), queryInt(t, conn,
			`SELECT count(*) FROM pg_partitioned_table WHERE partrelid = ('omnibridge.' || $1)::regclass`, table),
			"%s is not partitioned", table)
	}
	for table, key := range wantPartitionKey {
		var gotKey, def string
		require.NoError(t, conn.QueryRow(testCtx(t), `
			SELECT pg_get_partkeydef(p.partrelid), COALESCE(p.partdefid::regclass::text, '')
			FROM pg_partitioned_table p WHERE p.partrelid = ('omnibridge.' || $1)::regclass`, table).Scan(&gotKey, &def))
		require.Equal(t, key, gotKey, table)
		require.Equal(t, fmt.Sprintf("omnibridge.%s_default", table), def, "DEFAULT partition of %s", table)
	}
}

// TestSchemaConstraints checks the rules the schema enforces by trying to
// break each of them.
func TestSchemaConstraints(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	const event = `INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id %s)
		VALUES (gen_random_uuid(), 'github', 'push', 'repo', '1' %s)`
	cases := []struct {
		name, sql, state string
	}{
		{"unknown event status", fmt.Sprintf(event, ", status", ", 'bogus'"), "23514"},
		{"processing without claim", fmt.Sprintf(event, ", status", ", 'processing'"), "23514"},
		{"processed without processed_at", fmt.Sprintf(event, ", status", ", 'processed'"), "23514"},
		{"negative retry_count", fmt.Sprintf(event, ", retry_count", ", -1"), "23514"},
		{"processed is generated", fmt.Sprintf(event, ", processed", ", true"), "428C9"},
		{"event without source", `INSERT INTO omnibridge.hook_events (id, action, resource, resource_id)
			VALUES (gen_random_uuid(), 'a', 'r', '1')`, "23502"},
		{"unknown session status", `INSERT INTO omnibridge.service_sessions (id, service_name, status)
			VALUES (gen_random_uuid(), 's', 'sleeping')`, "23514"},
		{"ended session without session_end", `INSERT INTO omnibridge.service_sessions (id, service_name, status)
			VALUES (gen_random_uuid(), 's', 'ended')`, "23514"},
		{"event_metrics id is generated", `INSERT INTO omnibridge.event_metrics
			(id, event_id, processing_time_ms, kafka_publish_success) VALUES (1, gen_random_uuid(), 1, true)`, "428C9"},
		{"duplicate delivery", `INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
			VALUES ('github', 'd1', gen_random_uuid()), ('github', 'd1', gen_random_uuid())`, "23505"},
	}
	for _, tc := range cases {
		_, err := conn.Exec(testCtx(t), tc.sql)
		require.Error(t, err, tc.name)
		require.Equal(t, tc.state, sqlState(err), "%s: %v", tc.name, err)
	}

	// processed follows status, both ways.
	var id string
	var processed bool
	require.NoError(t, conn.QueryRow(testCtx(t), fmt.Sprintf(event, "", "")+" RETURNING id::text, processed").Scan(&id, &processed))
	require.False(t, processed)
	require.NoError(t, conn.QueryRow(testCtx(t), `UPDATE omnibridge.hook_events
		SET status = 'processed', processed_at = now() WHERE id = $1 RETURNING processed`, id).Scan(&processed))
	require.True(t, processed)
	require.NoError(t, conn.QueryRow(testCtx(t), `UPDATE omnibridge.hook_events
		SET status = 'dead' WHERE id = $1 RETURNING processed`, id).Scan(&processed))
	require.False(t, processed)
	var pending, status string
	require.NoError(t, conn.QueryRow(testCtx(t), fmt.Sprintf(event, "", "")+
		" RETURNING status, to_char(next_attempt_at - created_at, 'SS')").Scan(&status, &pending))
	require.Equal(t, "pending", status, "new events are pending")
	require.Equal(t, "00", pending, "and claimable at once")
}
