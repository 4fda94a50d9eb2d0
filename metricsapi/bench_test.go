package metricsapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// seedBenchSQL seeds $1 events received evenly over the last 7 days with
// ~500-byte payloads from three sources (github 90 %, stripe 9 %, rare 1 %):
// 96 % processed, 1 % dead, 2 % pending, 1 % processing; 1.1 processing
// attempts per event over the same days (one in 50 failed); $1 / 10 audit
// rows (one in 20 failed); 40 sessions (8 active); and a day of pool
// snapshots every 30 s from 8 instances.
var seedBenchSQL = []string{
	`SELECT omnibridge.create_partition_for(t, now() - d * interval '1 day')
	 FROM unnest(ARRAY['omnibridge.hook_events', 'omnibridge.event_metrics', 'omnibridge.connection_metrics',
	                   'omnibridge.security_audit_log']::regclass[]) t,
	      generate_series(0, 8) d`,
	`INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, status,
	     created_at, next_attempt_at, claimed_at, claim_id, processed_at, retry_count, processing_errors, delivery_id)
	 SELECT gen_random_uuid(), CASE WHEN i % 100 < 90 THEN 'github' WHEN i % 100 < 99 THEN 'stripe' ELSE 'rare' END,
	        'push', 'repository', 'r' || (i % 1000),
	        jsonb_build_object('data', repeat('x', 440), 'n', i), st, ca, ca,
	        CASE WHEN st = 'processing' THEN ca + interval '1 s' END,
	        CASE WHEN st = 'processing' THEN gen_random_uuid() END,
	        CASE WHEN st = 'processed' THEN ca + (i % 2000) * interval '1 ms' END,
	        CASE WHEN st = 'dead' THEN 10 ELSE 0 END,
	        CASE WHEN st = 'dead' THEN ARRAY['attempt 10: kafka: broker unavailable'] END, 'd' || i
	 FROM (SELECT i, now() - (i::float8 / $1) * interval '7 days' AS ca,
	              CASE WHEN i % 97 < 93 THEN 'processed' WHEN i % 97 = 93 THEN 'dead'
	                   WHEN i % 97 < 96 THEN 'pending' ELSE 'processing' END AS st
	       FROM generate_series(1, $1) i) s`,
	`INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, error_message, created_at)
	 SELECT gen_random_uuid(), (i % 1000) / 10.0, i % 50 <> 0, CASE WHEN i % 50 = 0 THEN 'broker unavailable' END,
	        now() - (i::float8 / ($1 * 1.1)) * interval '7 days'
	 FROM generate_series(1, ($1 * 1.1)::int) i`,
	`INSERT INTO omnibridge.security_audit_log (event_type, client_info, success, error_details, created_at)
	 SELECT CASE WHEN i % 20 = 0 THEN 'api.auth_failed' ELSE 'retention.run' END,
	        jsonb_build_object('remote_addr', '203.0.113.' || (i % 250)), i % 20 <> 0,
	        CASE WHEN i % 20 = 0 THEN 'invalid bearer token' END,
	        now() - (i::float8 / ($1 / 10)) * interval '7 days'
	 FROM generate_series(1, $1 / 10) i`,
	`INSERT INTO omnibridge.service_sessions (id, service_name, instance_id, status, session_start, session_end, last_seen)
	 SELECT gen_random_uuid(), (ARRAY['hook_receiver', 'workflow_coordinator', 'model_metrics'])[1 + i % 3], 'host-' || i,
	        CASE WHEN i <= 8 THEN 'active' ELSE 'ended' END, now() - i * interval '1 hour',
	        CASE WHEN i > 8 THEN now() - i * interval '30 minutes' END, now() - i * interval '30 minutes'
	 FROM generate_series(1, 40) i`,
	`INSERT INTO omnibridge.connection_metrics (service_name, instance_id, pool_size, active_connections,
	     idle_connections, waiting_connections, total_queries, failed_queries, avg_query_time_ms, potential_leaks,
	     utilization_percent, recorded_at)
	 SELECT 'svc-' || (i % 3), 'host-' || (i % 8), 20, i % 20, 20 - i % 20, 0, i * 100, i, 1.5, 0, (i % 20) * 5.0,
	        now() - (i / 8) * interval '30 s'
	 FROM generate_series(0, 8 * 2880 - 1) i`,
	`VACUUM ANALYZE omnibridge.hook_events`,
	`VACUUM ANALYZE omnibridge.event_metrics`,
	`VACUUM ANALYZE omnibridge.security_audit_log`,
	`VACUUM ANALYZE omnibridge.connection_metrics`,
	`VACUUM ANALYZE omnibridge.service_sessions`,
}

// BenchmarkEndpoints measures every endpoint end to end (HTTP, auth, JSON,
// pgclient, PostgreSQL) on OMNIBRIDGE_BENCH_EVENTS events (default
// 1,000,000) received over a week, with 1.1 attempts per event, audit rows,
// sessions and pool snapshots. Seeding takes a few minutes on 2 cores;
// OMNIBRIDGE_BENCH_DATABASE_URL names a database seeded before (with
// seedBenchSQL) to measure again without seeding.
//
//	go test -run '^$' -bench Endpoints -benchtime 20x ./metricsapi/
func BenchmarkEndpoints(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("OMNIBRIDGE_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	existing := os.Getenv("OMNIBRIDGE_BENCH_DATABASE_URL")
	bb := setup(b, func(o *setupOptions) {
		o.dbURL = existing
		o.cfg.CacheTTL = -1 // measure the queries, not the cache
		o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	ctx := context.Background()
	// Seeding runs on a connection of its own: its statements take longer
	// than the API's query timeout.
	conn, err := pgx.Connect(ctx, bb.dbURL)
	require.NoError(b, err)
	defer conn.Close(ctx)
	if existing == "" {
		begin := time.Now()
		for _, q := range seedBenchSQL {
			var args []any
			if strings.Contains(q, "$1") {
				args = []any{n}
			}
			_, err := conn.Exec(ctx, q, args...)
			require.NoError(b, err, q)
		}
		b.Logf("seeded %d events, %d attempts, %d audit rows in %s", n, n*11/10, n/10, time.Since(begin).Round(time.Second))
	} else if err := conn.QueryRow(ctx, `SELECT count(*) FROM omnibridge.hook_events`).Scan(&n); err != nil {
		b.Fatal(err)
	}

	// A cursor half way down the listing, and a real event id.
	var half store.Cursor
	err = conn.QueryRow(ctx, `SELECT created_at, id FROM omnibridge.hook_events
		ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1`, n/2).Scan(&half.CreatedAt, &half.ID)
	require.NoError(b, err)
	var someID uuid.UUID
	err = conn.QueryRow(ctx, `SELECT id FROM omnibridge.hook_events WHERE status = 'dead' LIMIT 1`).Scan(&someID)
	require.NoError(b, err)

	// The same API with its result cache (the default), as dashboards see
	// it: concurrent viewers of a window share one report per cache_ttl.
	cached := setup(b, func(o *setupOptions) { o.dbURL = bb.dbURL })

	for _, c := range []struct{ name, path string }{
		{"performance/window=1h", "/api/v1/performance?window=1h"},
		{"performance/window=24h", "/api/v1/performance?window=24h"},
		{"performance/window=7d", "/api/v1/performance?window=7d"},
		{"series/window=1h", "/api/v1/performance/series?window=1h"},
		{"series/window=24h", "/api/v1/performance/series?window=24h"},
		{"series/window=7d", "/api/v1/performance/series?window=7d"},
		{"pools", "/api/v1/pools"},
		{"sessions/active", "/api/v1/sessions?status=active"},
		{"sessions/all", "/api/v1/sessions"},
		{"events/first_page", "/api/v1/events?limit=100"},
		{"events/page_at_half", "/api/v1/events?limit=100&cursor=" + url.QueryEscape(half.String())},
		{"events/status=dead", "/api/v1/events?status=dead&limit=100"},
		{"events/status=pending", "/api/v1/events?status=pending&limit=100"},
		{"events/status=processed", "/api/v1/events?status=processed&limit=100"},
		{"events/source=rare", "/api/v1/events?source=rare&limit=100"},
		{"events/source=rare&status=dead", "/api/v1/events?source=rare&status=dead&limit=100"},
		{"events/since=1h", "/api/v1/events?since=1h&limit=100"},
		{"events/limit=1000", "/api/v1/events?limit=1000"},
		{"event_get", "/api/v1/events/" + someID.String()},
		{"audit/success=false", "/api/v1/audit?success=false&limit=100"},
		{"audit/type=api.*", "/api/v1/audit?type=api.*&limit=100"},
		{"audit/since=24h", "/api/v1/audit?since=24h&limit=100"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r := bb.get(b, c.path)
				if r.status != http.StatusOK {
					b.Fatalf("%s: %d %s", c.path, r.status, r.body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/request")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("series/window=7d/cached", func(b *testing.B) {
		for b.Loop() {
			if r := cached.get(b, "/api/v1/performance/series?window=7d"); r.status != http.StatusOK {
				b.Fatalf("%d %s", r.status, r.body)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/request")
		b.ReportMetric(0, "ns/op")
	})
}
