package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/bench"
	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestBulkSmokeRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testdb.New(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	client, err := pgclient.Open(ctx, pgclient.Config{URL: url, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer client.Close()

	var steps []string
	sizes := []int{10, store.DefaultCopyThreshold * 2}
	rep, err := bench.Bulk(ctx, pool, bench.BulkConfig{
		Sizes: sizes, MinRows: 50, MinReps: 2, Ours: client,
		InsertOne: 20, ClaimEvents: 250, ClaimBatch: 30, ClaimWorkers: 3,
		Progress: func(s string) { steps = append(steps, s) },
	})
	require.NoError(t, err)
	require.Len(t, rep.Sizes, len(sizes))
	for i, r := range rep.Sizes {
		require.Equal(t, sizes[i], r.Rows)
		require.Equal(t, store.BulkOptions{}.Method(r.Rows), r.Method)
		require.GreaterOrEqual(t, r.Reps, 2)
		for _, rate := range []float64{r.Rate, r.BatchRate, r.CopyRate, r.EventsRate} {
			require.Greater(t, rate, 0.0)
		}
		require.Equal(t, max(r.BatchRate, r.CopyRate), r.BaselineRate)
		require.Contains(t, []string{"pgx_batch", "pgx_copy"}, r.Baseline)
		require.Greater(t, r.Ratio, 0.0)
	}
	require.Equal(t, 20, rep.InsertOne.Count)
	require.Greater(t, rep.InsertOne.P99Ms, 0.0)
	require.GreaterOrEqual(t, rep.InsertOne.P99Ms, rep.InsertOne.P50Ms)
	require.Greater(t, rep.InsertOne.Ratio, 0.0)
	require.Equal(t, 250, rep.ClaimComplete.Events)
	require.Greater(t, rep.ClaimComplete.Rate, 0.0)
	require.Len(t, steps, len(sizes)+2)

	out, err := json.Marshal(rep)
	require.NoError(t, err)
	require.Contains(t, string(out), `"baseline_rate"`)
	require.Contains(t, string(out), `"ratio"`)

	// It cleans up after itself, and refuses a database with events.
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM omnibridge.hook_events`).Scan(&n))
	require.Zero(t, n)
	_, _, err = store.New(pool).InsertEvent(ctx, store.NewEvent{Source: "s", Action: "a", Resource: "r", ResourceID: "1", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	_, err = bench.Bulk(ctx, pool, bench.BulkConfig{Sizes: []int{10}})
	require.ErrorContains(t, err, "not empty")

	_, err = bench.Bulk(ctx, pool, bench.BulkConfig{Sizes: []int{0}, ClaimBatch: -1})
	require.ErrorContains(t, err, "size 0")
	require.ErrorContains(t, err, "ClaimBatch")
}

// BenchmarkBulk runs the whole bulk comparison once per iteration and reports
// the ratio and rates at each size:
//
//	go test -run '^$' -bench Bulk -benchtime 1x ./internal/bench/
func BenchmarkBulk(b *testing.B) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testdb.New(b))
	require.NoError(b, err)
	defer pool.Close()
	for b.Loop() {
		rep, err := bench.Bulk(ctx, pool, bench.BulkConfig{})
		require.NoError(b, err)
		for _, r := range rep.Sizes {
			b.ReportMetric(r.Ratio, fmt.Sprintf("ratio@%d", r.Rows))
			b.ReportMetric(r.Rate, fmt.Sprintf("rows/s@%d", r.Rows))
		}
		b.ReportMetric(rep.InsertOne.P50Ms, "insert_one_p50_ms")
		b.ReportMetric(rep.InsertOne.P99Ms, "insert_one_p99_ms")
		b.ReportMetric(rep.ClaimComplete.Rate, "claim_complete_events/s")
		out, err := json.Marshal(rep) // one line: benchmark logs are cut after ten
		require.NoError(b, err)
		b.Log(string(out))
	}
}
