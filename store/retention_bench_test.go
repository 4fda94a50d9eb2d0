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

// seedExpiredDaySQL fills the partition of the day $2 days ago with $1
// processed ~500-byte events and their delivery ids; with $3, one pending
// event too, which keeps the partition and makes retention delete the rest
// row by row.
const seedExpiredDaySQL = `
WITH e AS (
    INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, status,
        created_at, next_attempt_at, processed_at, delivery_id)
    SELECT gen_random_uuid(), 'github', 'push', 'repository', 'r' || i,
           jsonb_build_object('data', repeat('x', 440), 'n', i),
           CASE WHEN $3 AND i = 1 THEN 'pending' ELSE 'processed' END,
           date_trunc('day', now() - $2 * interval '1 day') + (i::float8 / $1) * interval '23 hours',
           now(), CASE WHEN NOT $3 OR i > 1 THEN now() END, 'b' || $2 || '-' || i
    FROM generate_series(1, $1) i
    RETURNING id, delivery_id, created_at)
INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id, created_at)
SELECT 'github', delivery_id, id, created_at FROM e`

// BenchmarkRetention measures one retention run over two expired days of
// OMNIBRIDGE_BENCH_RETENTION_EVENTS events each (default 200,000): one day
// holds a pending event, so its processed events are deleted in batches; the
// other is dropped whole. It reports the batch-delete rate of hook_events and
// of their delivery ids, and the time of the whole run. Seeding is not timed.
//
//	go test -run '^$' -bench Retention -benchtime 1x ./store/
func BenchmarkRetention(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("OMNIBRIDGE_BENCH_RETENTION_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	var batchRows, deliveryRows int64
	var batchTime, deliveryTime, runTime time.Duration
	for b.Loop() {
		b.StopTimer()
		pool, err := pgxpool.New(ctx, testdb.New(b))
		if err != nil {
			b.Fatal(err)
		}
		for _, st := range []struct {
			sql  string
			args []any
		}{
			{`SELECT omnibridge.create_partition_for('omnibridge.hook_events', now() - d * interval '1 day')
			  FROM generate_series(40, 41) d`, nil},
			{seedExpiredDaySQL, []any{n, 40, true}},
			{seedExpiredDaySQL, []any{n, 41, false}},
			{`VACUUM ANALYZE omnibridge.hook_events, omnibridge.hook_event_deliveries`, nil},
		} {
			if _, err := pool.Exec(ctx, st.sql, st.args...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		rep, err := store.New(pool).RunRetention(ctx, store.RetentionPolicy{}, false)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		for _, tr := range rep.Tables {
			switch tr.Table {
			case "hook_events":
				if tr.PartitionsDropped != 1 || tr.RowsDeleted != int64(2*n-1) {
					b.Fatalf("hook_events: dropped %d partitions and %d rows, want 1 and %d", tr.PartitionsDropped, tr.RowsDeleted, 2*n-1)
				}
				batchRows += tr.RowsDeleted - int64(n)
				batchTime += tr.Duration
			case "hook_event_deliveries":
				deliveryRows += tr.RowsDeleted
				deliveryTime += tr.Duration
			}
		}
		runTime += rep.Duration
		pool.Close()
		b.StartTimer()
	}
	// hook_events' time includes the drop of one partition (its share is small).
	b.ReportMetric(float64(batchRows)/batchTime.Seconds(), "event_rows/s")
	b.ReportMetric(float64(deliveryRows)/deliveryTime.Seconds(), "delivery_rows/s")
	b.ReportMetric(runTime.Seconds()/float64(b.N), "s/run")
	b.ReportMetric(0, "ns/op")
}
