package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
type bulkMethod struct {
	name string
	run  func(ctx context.Context, rows [][]any) error
}

func bulkMethods(s *store.Store, pool *pgxpool.Pool) []bulkMethod {
	return []bulkMethod{
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

// BenchmarkBulkInsert measures BulkInsert, each of its methods forced, and
// bare pgx at the bench sizes, interleaved (each iteration runs every method
// once, in a random order, on rows of the same shape) so that the noise of a
// shared machine hits them alike:
//
//	go test -run '^$' -bench BulkInsert ./store/
func BenchmarkBulkInsert(b *testing.B) {
	eb := setupEvents(b)
	s := store.New(eb.pool) // the same pool as the bare methods
	methods := bulkMethods(s, eb.pool)
	for _, n := range []int{10, 100, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			elapsed := runInterleaved(b, eb.pool, methods, func(int) int { return n })
			for m, d := range elapsed {
				b.ReportMetric(float64(n)*float64(b.N)/d.Seconds(), methods[m].name+"_rows/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// runInterleaved runs every method once per iteration, in a random order, on
// size(iteration) fresh rows, and returns each method's total time.
func runInterleaved(b *testing.B, pool *pgxpool.Pool, methods []bulkMethod, size func(int) int) []time.Duration {
	ctx := context.Background()
	truncateEvents(b, pool)
	elapsed := make([]time.Duration, len(methods))
	inserted, iter := 0, 0
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, len(methods))
	for i := range order {
		order[i] = i
	}
	for b.Loop() {
		n := size(iter)
		// A new order each time, so that no method always follows the same one.
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, m := range order {
			rows := benchEventRows(n)
			if inserted > 300000 {
				truncateEvents(b, pool)
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
	return elapsed
}

// BenchmarkBulkCrossover finds where COPY starts to beat a multi-row INSERT:
// it times both (interleaved) at sizes from 1 to 320 rows, fits time = fixed +
// per-row·rows to the median time of each method at each size (weighing the
// relative error, so that small sizes count), and reports both fits and the
// size where the lines cross. A fit over many sizes is far less sensitive to a
// noisy machine than comparing rates at one size. DefaultCopyThreshold comes
// from it:
//
//	go test -run '^$' -bench BulkCrossover -benchtime 800x ./store/
func BenchmarkBulkCrossover(b *testing.B) {
	eb := setupEvents(b)
	s := store.New(eb.pool)
	all := bulkMethods(s, eb.pool)
	benchCrossover(b, eb.pool, []int{1, 5, 10, 20, 40, 80, 160, 320}, []crossoverMethod{
		{all[0].name, func(ctx context.Context, n int) error { return all[0].run(ctx, benchEventRows(n)) }},
		{all[1].name, func(ctx context.Context, n int) error { return all[1].run(ctx, benchEventRows(n)) }},
	})
}

// BenchmarkBulkEventsCrossover is BenchmarkBulkCrossover for
// BulkInsertEvents, whose COPY path costs a transaction and the reservation
// of the deliveries on top of the COPY. DefaultEventsCopyThreshold comes from
// it:
//
//	go test -run '^$' -bench BulkEventsCrossover -benchtime 600x ./store/
func BenchmarkBulkEventsCrossover(b *testing.B) {
	eb := setupEvents(b)
	s := store.New(eb.pool)
	run := func(threshold int) func(ctx context.Context, n int) error {
		return func(ctx context.Context, n int) error {
			_, err := s.BulkInsertEventsWith(ctx, store.BulkOptions{EventsCopyThreshold: threshold}, benchEvents(n))
			return err
		}
	}
	benchCrossover(b, eb.pool, []int{10, 25, 50, 100, 200, 400, 800, 1600}, []crossoverMethod{
		{"unnest", run(math.MaxInt)}, {"copy", run(1)},
	})
}

// crossoverMethod inserts n fresh rows; the first of a pair is the one that
// wins at small sizes.
type crossoverMethod struct {
	name string
	run  func(ctx context.Context, n int) error
}

func benchCrossover(b *testing.B, pool *pgxpool.Pool, sizes []int, methods []crossoverMethod) {
	samples := make([][][]time.Duration, len(methods))
	for m := range samples {
		samples[m] = make([][]time.Duration, len(sizes))
	}
	ctx := context.Background()
	truncateEvents(b, pool)
	inserted, iter := 0, 0
	for b.Loop() {
		si := (iter * 3) % len(sizes) // 3 is coprime with 8: every size in turn
		n := sizes[si]
		for k := range methods {
			m := (k + iter/len(sizes)) % len(methods)
			if inserted > 300000 {
				truncateEvents(b, pool)
				inserted = 0
			}
			start := time.Now()
			if err := methods[m].run(ctx, n); err != nil {
				b.Fatal(err)
			}
			samples[m][si] = append(samples[m][si], time.Since(start))
			inserted += n
		}
		iter++
	}
	if iter < 2*len(sizes) {
		b.Skip("too few iterations for a fit; run with -benchtime 800x")
	}
	var fixed, perRow [2]float64
	for m := range methods {
		xs := make([]float64, len(sizes))
		ys := make([]float64, len(sizes))
		for si, n := range sizes {
			xs[si] = float64(n)
			ys[si] = float64(medianDuration(samples[m][si]).Microseconds())
		}
		fixed[m], perRow[m] = fitLine(xs, ys)
		for si, n := range sizes {
			b.Logf("%s rows=%d median=%.0fµs fit=%.0fµs", methods[m].name, n, ys[si], fixed[m]+perRow[m]*float64(n))
		}
		b.ReportMetric(fixed[m], methods[m].name+"_fixed_µs")
		b.ReportMetric(perRow[m], methods[m].name+"_per_row_µs")
	}
	if perRow[0] > perRow[1] {
		b.ReportMetric((fixed[1]-fixed[0])/(perRow[0]-perRow[1]), "crossover_rows")
	}
	b.ReportMetric(0, "ns/op")
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// fitLine returns a, b of y = a + b·x that minimise the squared relative
// errors (weights 1/y²), so that small sizes count as much as large ones.
func fitLine(xs, ys []float64) (a, b float64) {
	var sw, sx, sy, sxx, sxy float64
	for i := range xs {
		w := 1 / (ys[i] * ys[i])
		sw += w
		sx += w * xs[i]
		sy += w * ys[i]
		sxx += w * xs[i] * xs[i]
		sxy += w * xs[i] * ys[i]
	}
	b = (sw*sxy - sx*sy) / (sw*sxx - sx*sx)
	return (sy - b*sx) / sw, b
}

// tempTableInsertEvents is the textbook alternative for deduplicated bulk
// loads: COPY into a temporary table, then INSERT … SELECT … ON CONFLICT.
func tempTableInsertEvents(ctx context.Context, pool *pgxpool.Pool, events []store.NewEvent) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE bulk_events (
			id uuid, source text, action text, resource text, resource_id text,
			payload jsonb, metadata jsonb, delivery_id text) ON COMMIT DROP`); err != nil {
			return err
		}
		rows := make([][]any, len(events))
		for i, e := range events {
			rows[i] = []any{uuid.Must(uuid.NewV7()), e.Source, e.Action, e.Resource, e.ResourceID,
				e.Payload, json.RawMessage(`{}`), e.DeliveryID}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bulk_events"}, benchEventColumns, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
WITH delivery AS (
    INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
    SELECT source, delivery_id, id FROM bulk_events WHERE delivery_id IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, metadata, delivery_id)
SELECT id, source, action, resource, resource_id, payload, metadata, delivery_id FROM bulk_events
WHERE delivery_id IS NULL OR id IN (SELECT event_id FROM delivery)`)
		return err
	})
}

// BenchmarkBulkInsertEvents compares ways of bulk-loading events with
// deduplication, interleaved: ours (reserve the deliveries with one INSERT,
// then COPY straight into hook_events), one INSERT … FROM unnest statement,
// and COPY into a temporary table followed by INSERT … SELECT:
//
//	go test -run '^$' -bench BulkInsertEvents ./store/
func BenchmarkBulkInsertEvents(b *testing.B) {
	eb := setupEvents(b)
	s := store.New(eb.pool)
	ctx := context.Background()
	methods := []struct {
		name string
		run  func([]store.NewEvent) error
	}{
		{"ours", func(ev []store.NewEvent) error { _, err := s.BulkInsertEvents(ctx, ev); return err }},
		{"unnest", func(ev []store.NewEvent) error {
			_, err := s.BulkInsertEventsWith(ctx, store.BulkOptions{CopyThreshold: math.MaxInt}, ev)
			return err
		}},
		{"temp_copy", func(ev []store.NewEvent) error { return tempTableInsertEvents(ctx, eb.pool, ev) }},
	}
	for _, n := range []int{100, 200, 400, 1000, 3000, 10000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			truncateEvents(b, eb.pool)
			elapsed := make([]time.Duration, len(methods))
			inserted := 0
			rng := rand.New(rand.NewPCG(1, 2))
			order := []int{0, 1, 2}
			for b.Loop() {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				for _, m := range order {
					events := benchEvents(n)
					if inserted > 300000 {
						truncateEvents(b, eb.pool)
						inserted = 0
					}
					start := time.Now()
					if err := methods[m].run(events); err != nil {
						b.Fatal(err)
					}
					elapsed[m] += time.Since(start)
					inserted += n
				}
			}
			for m, d := range elapsed {
				b.ReportMetric(float64(n)*float64(b.N)/d.Seconds(), methods[m].name+"_rows/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
