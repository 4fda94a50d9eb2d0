package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnibridge/omnibridge/store"
)

var benchEventColumns = []string{"id", "source", "action", "resource", "resource_id", "payload", "metadata", "delivery_id"}

var benchEventsTable = pgx.Identifier{"omnibridge", "hook_events"}

// benchEventRows returns n realistic hook_events rows (about 500 bytes of
// payload each), with fresh ids.
func benchEventRows(n int) [][]any {
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{uuid.Must(uuid.NewV7()), "github", "push", "repository", fmt.Sprintf("omnibridge/omnibridge#%d", i),
			realisticPayload(i), json.RawMessage(`{"remote_addr":"192.0.2.10","user_agent":"GitHub-Hookshot/1a2b3c"}`),
			uuid.NewString()}
	}
	return rows
}

// truncateEvents empties the event tables.
func truncateEvents(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(),
		`TRUNCATE omnibridge.hook_events, omnibridge.hook_event_deliveries, omnibridge.event_metrics`); err != nil {
		tb.Fatal(err)
	}
}

// bulkMethods are the ways of inserting rows that the crossover benchmark
// compares: ours, forced to one method, and bare pgx.
func bulkMethods(s *store.Store, pool *pgxpool.Pool) []struct {
	name string
	run  func(ctx context.Context, rows [][]any) error
} {
	return []struct {
		name string
		run  func(ctx context.Context, rows [][]any) error
	}{
		{"values", func(ctx context.Context, rows [][]any) error {
			_, err := s.BulkInsertWith(ctx, store.BulkOptions{CopyThreshold: math.MaxInt}, benchEventsTable, benchEventColumns, rows)
			return err
		}},
		{"copy", func(ctx context.Context, rows [][]any) error {
			_, err := s.BulkInsertWith(ctx, store.BulkOptions{CopyThreshold: 1}, benchEventsTable, benchEventColumns, rows)
			return err
		}},
		{"adaptive", func(ctx context.Context, rows [][]any) error {
			_, err := s.BulkInsert(ctx, benchEventsTable, benchEventColumns, rows)
			return err
		}},
		{"bare_batch", func(ctx context.Context, rows [][]any) error {
			return bareBatchInsert(ctx, pool, rows)
		}},
		{"bare_copy", func(ctx context.Context, rows [][]any) error {
			_, err := pool.CopyFrom(ctx, benchEventsTable, benchEventColumns, pgx.CopyFromRows(rows))
			return err
		}},
	}
}

// bareBatchInsert is the textbook pgx batch: one INSERT per row, pipelined.
func bareBatchInsert(ctx context.Context, pool *pgxpool.Pool, rows [][]any) error {
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue(`INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, metadata, delivery_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r...)
	}
	return pool.SendBatch(ctx, b).Close()
}

// BenchmarkBulkCrossover measures the insert methods at sizes around and far
// from the crossover, interleaved (each iteration runs every method once, in
// rotating order, on rows of the same shape), so that the noise of a shared
// machine hits them alike; DefaultCopyThreshold comes from its figures:
//
//	go test -run '^$' -bench BulkCrossover ./store/
func BenchmarkBulkCrossover(b *testing.B) {
	eb := setupEvents(b)
	methods := bulkMethods(eb.store, eb.pool)
	for _, n := range []int{1, 10, 20, 30, 50, 64, 100, 200, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			ctx := context.Background()
			truncateEvents(b, eb.pool)
			elapsed := make([]time.Duration, len(methods))
			inserted, iter := 0, 0
			for b.Loop() {
				for k := range methods {
					m := (k + iter) % len(methods)
					rows := benchEventRows(n)
					if inserted > 300000 {
						truncateEvents(b, eb.pool)
						inserted = 0
					}
					start := time.Now()
					if err := methods[m].run(ctx, rows); err != nil {
						b.Fatal(err)
					}
					elapsed[m] += time.Since(start)
					inserted += n
				}
				iter++
			}
			for m, d := range elapsed {
				b.ReportMetric(float64(n)*float64(b.N)/d.Seconds(), methods[m].name+"_rows/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
