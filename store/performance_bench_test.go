package store_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// seedPerformanceSQL inserts $1 events created evenly over the last 24 hours
// with ~500-byte payloads: 96 % processed (in 0–2 s), 1 % dead, 2 % pending,
// 1 % processing. seedAttemptsSQL adds 1.1 × $1 processing attempts over the
// same day (one in 50 failed), as the coordinator records them.
const seedPerformanceSQL = `
INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, status,
    created_at, next_attempt_at, claimed_at, claim_id, processed_at, retry_count, delivery_id)
SELECT gen_random_uuid(), 'github', 'push', 'repository', 'r' || (i % 1000),
       jsonb_build_object('data', repeat('x', 440), 'n', i), st, ca, ca,
       CASE WHEN st = 'processing' THEN ca + interval '1 s' END,
       CASE WHEN st = 'processing' THEN gen_random_uuid() END,
       CASE WHEN st = 'processed' THEN ca + (i % 2000) * interval '1 ms' END,
       CASE WHEN st = 'dead' THEN 5 ELSE 0 END, 'd' || i
FROM (SELECT i, now() - (i::float8 / $1) * interval '24 hours' AS ca,
             CASE WHEN i % 100 < 96 THEN 'processed' WHEN i % 100 = 96 THEN 'dead'
                  WHEN i % 100 < 99 THEN 'pending' ELSE 'processing' END AS st
      FROM generate_series(1, $1) i) s`

const seedAttemptsSQL = `
INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, error_message, created_at)
SELECT gen_random_uuid(), (i % 1000) / 10.0, i % 50 <> 0, CASE WHEN i % 50 = 0 THEN 'broker unavailable' END,
       now() - (i::float8 / ($1 * 1.1)) * interval '24 hours'
FROM generate_series(1, ($1 * 1.1)::int) i`

// BenchmarkPerformanceReport measures PerformanceReport over a 1 h and a 24 h
// window on OMNIBRIDGE_BENCH_EVENTS events (default 1,000,000) received over
// the last day plus 1.1 attempts per event, then again without the indexes
// of migration 5 for comparison. Seeding takes about a minute.
//
//	go test -run '^$' -bench PerformanceReport -benchtime 20x ./store/
func BenchmarkPerformanceReport(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("OMNIBRIDGE_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testdb.New(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	begin := time.Now()
	steps := []struct {
		sql  string
		args []any
	}{
		{`SELECT omnibridge.create_partition_for(t, now() - d * interval '1 day')
		  FROM unnest(ARRAY['omnibridge.hook_events', 'omnibridge.event_metrics']::regclass[]) t,
		       generate_series(0, 1) d`, nil},
		{seedPerformanceSQL, []any{n}},
		{seedAttemptsSQL, []any{n}},
		{`VACUUM ANALYZE omnibridge.hook_events`, nil},
		{`VACUUM ANALYZE omnibridge.event_metrics`, nil},
	}
	for _, st := range steps {
		if _, err := pool.Exec(ctx, st.sql, st.args...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d events and %d attempts in %s", n, n*11/10, time.Since(begin).Round(time.Second))
	s := store.New(pool)

	run := func(prefix string) {
		for _, w := range []time.Duration{time.Hour, 24 * time.Hour} {
			b.Run(prefix+"window="+w.String(), func(b *testing.B) {
				var p store.Performance
				for b.Loop() {
					if p, err = s.PerformanceReport(ctx, w); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/report")
				b.ReportMetric(float64(p.Received), "events_in_window")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
	run("")
	for _, idx := range []string{"idx_hook_events_created_at", "idx_hook_events_processed_at", "idx_hook_events_unfinished"} {
		if _, err := pool.Exec(ctx, "DROP INDEX omnibridge."+idx); err != nil {
			b.Fatal(err)
		}
	}
	run("without_migration_5_indexes/")
}
