package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnibridge/omnibridge/store"
)

// benchEvents returns n realistic events (about 500-byte payloads), each with
// a fresh delivery id.
func benchEvents(n int) []store.NewEvent {
	events := make([]store.NewEvent, n)
	for i := range events {
		events[i] = store.NewEvent{Source: "github", Action: "push", Resource: "repository",
			ResourceID: fmt.Sprintf("omnibridge/omnibridge#%d", i), DeliveryID: uuid.NewString(),
			Payload: realisticPayload(i)}
	}
	return events
}

// pipelinedInsertEvents is the alternative to InsertEvents' single statement:
// one deduplicating statement per event, pipelined in one batch (one implicit
// transaction, one round trip).
func pipelinedInsertEvents(ctx context.Context, pool *pgxpool.Pool, events []store.NewEvent) error {
	b := &pgx.Batch{}
	for _, e := range events {
		b.Queue(`
WITH d AS (
    INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
    VALUES ($2, $8, $1) ON CONFLICT DO NOTHING RETURNING event_id
)
INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, metadata, delivery_id)
SELECT $1, $2, $3, $4, $5, $6, '{}', $7 FROM d`,
			uuid.Must(uuid.NewV7()), e.Source, e.Action, e.Resource, e.ResourceID, []byte(e.Payload), e.DeliveryID, e.DeliveryID)
	}
	return pool.SendBatch(ctx, b).Close()
}

// BenchmarkInsertEvents measures InsertEvents (one INSERT … FROM unnest
// statement) against the pipelined per-event alternative, interleaved, at
// group-commit sizes:
//
//	go test -run '^$' -bench InsertEvents ./store/
func BenchmarkInsertEvents(b *testing.B) {
	eb := setupEvents(b)
	// The alternative runs on the bare pool; so does the store here, so that
	// only the SQL differs.
	s := store.New(eb.pool)
	for _, n := range []int{1, 10, 100, 500} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			ctx := context.Background()
			truncateEvents(b, eb.pool)
			var unnest, pipelined time.Duration
			inserted, iter := 0, 0
			for b.Loop() {
				if inserted > 200000 {
					truncateEvents(b, eb.pool)
					inserted = 0
				}
				a, c := benchEvents(n), benchEvents(n)
				run := func(first bool) {
					start := time.Now()
					if first {
						if _, err := s.InsertEvents(ctx, a); err != nil {
							b.Fatal(err)
						}
						unnest += time.Since(start)
						return
					}
					if err := pipelinedInsertEvents(ctx, eb.pool, c); err != nil {
						b.Fatal(err)
					}
					pipelined += time.Since(start)
				}
				run(iter%2 == 0)
				run(iter%2 != 0)
				inserted += 2 * n
				iter++
			}
			b.ReportMetric(float64(n)*float64(b.N)/unnest.Seconds(), "unnest_rows/s")
			b.ReportMetric(float64(n)*float64(b.N)/pipelined.Seconds(), "pipelined_rows/s")
			b.ReportMetric(float64(unnest)/float64(b.N)/1e3, "unnest_µs/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkInsertEvent measures one deduplicated insert at a time.
func BenchmarkInsertEvent(b *testing.B) {
	eb := setupEvents(b)
	ctx := context.Background()
	s := store.New(eb.pool)
	for b.Loop() {
		if _, _, err := s.InsertEvent(ctx, benchEvents(1)[0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
