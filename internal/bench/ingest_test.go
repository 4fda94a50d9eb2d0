package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/bench"
	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgembed"
)

func TestIngestSmokeRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testdb.New(t)
	var steps []string
	res, err := bench.Ingest(ctx, url, bench.IngestOptions{
		Concurrency: 8, Count: 1500, BodySize: 300,
		Progress: func(s string) { steps = append(steps, s) },
	})
	require.NoError(t, err)
	require.Len(t, steps, 4)
	for _, run := range []bench.IngestRun{res.Ours, res.Baseline} {
		require.Equal(t, int64(1500), run.Acknowledged, run.Name)
		require.Zero(t, run.Refused, run.Name)
		require.Equal(t, int64(1650), run.Sent, "%s: 1500 measured (in two turns) + 150 warm-up", run.Name)
		require.Equal(t, run.Sent, run.Stored, run.Name)
		require.Zero(t, run.Lost, run.Name)
		require.Greater(t, run.Rate, 0.0, run.Name)
		require.Greater(t, run.P50Ms, 0.0, run.Name)
		require.GreaterOrEqual(t, run.P99Ms, run.P50Ms, run.Name)
		require.GreaterOrEqual(t, run.MaxMs, run.P99Ms, run.Name)
		require.NotZero(t, run.PeakRSSBytes, run.Name)
		require.Greater(t, run.ProcessCPUPerEventUs, 0.0, run.Name)
		if run.PostgresCPUPerEventUs != -1 { // -1: the database is not on this machine
			require.Greater(t, run.PostgresCPUPerEventUs, 0.0, run.Name)
		}
	}
	require.Equal(t, "hook_receiver", res.Ours.Name)
	require.GreaterOrEqual(t, res.Ours.AvgBatch, 1.0)
	require.InDelta(t, res.Ours.Rate/res.Baseline.Rate, res.Ratio, 1e-9)
	require.Equal(t, res.Ours.Rate, res.Rate)
	require.Equal(t, res.Baseline.Rate, res.BaselineRate)

	out, err := json.Marshal(res)
	require.NoError(t, err)
	for _, key := range []string{`"rate"`, `"baseline_rate"`, `"ratio"`, `"p99_ms"`, `"peak_rss_bytes"`, `"lost"`, `"postgres_cpu_us_per_event"`} {
		require.Contains(t, string(out), key)
	}

	// It leaves the tables empty, and refuses a database that holds events.
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM omnibridge.hook_events`).Scan(&n))
	require.Zero(t, n)
	_, err = pool.Exec(ctx, `INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload)
		VALUES (gen_random_uuid(), 's', 'a', 'r', '1', '{}')`)
	require.NoError(t, err)
	_, err = bench.Ingest(ctx, url, bench.IngestOptions{Count: 10})
	require.ErrorContains(t, err, "not empty")

	_, err = bench.Ingest(ctx, url, bench.IngestOptions{Concurrency: -1, BodySize: 10})
	require.ErrorContains(t, err, "Concurrency")
	require.ErrorContains(t, err, "BodySize")
}

// BenchmarkIngest runs the whole ingest comparison once per iteration (10 s
// per server, in turns) and reports both rates, the ratio, the latencies and
// the CPU per event: on the package's test cluster (fsync off) and on a
// cluster with PostgreSQL's durable defaults (fsync on), as production runs:
//
//	go test -run '^$' -bench Ingest -benchtime 1x ./internal/bench/
func BenchmarkIngest(b *testing.B) {
	b.Run("fsync_off", func(b *testing.B) { benchmarkIngest(b, testdb.New(b)) })
	b.Run("fsync_on", func(b *testing.B) {
		settings := testdb.TestSettings()
		delete(settings, "fsync")
		delete(settings, "full_page_writes")
		cl := testdb.NewCluster(b, pgembed.Config{Settings: settings})
		benchmarkIngest(b, migratedDatabase(b, cl))
	})
}

func benchmarkIngest(b *testing.B, url string) {
	for b.Loop() {
		res, err := bench.Ingest(context.Background(), url, bench.IngestOptions{})
		require.NoError(b, err)
		b.ReportMetric(res.Rate, "events/s")
		b.ReportMetric(res.BaselineRate, "naive_events/s")
		b.ReportMetric(res.Ratio, "ratio")
		b.ReportMetric(res.Ours.P50Ms, "p50_ms")
		b.ReportMetric(res.Ours.P99Ms, "p99_ms")
		b.ReportMetric(res.Baseline.P99Ms, "naive_p99_ms")
		b.ReportMetric(res.Ours.AvgBatch, "avg_batch")
		b.ReportMetric(res.Ours.PostgresCPUPerEventUs, "pg_cpu_us/event")
		b.ReportMetric(res.Baseline.PostgresCPUPerEventUs, "naive_pg_cpu_us/event")
		b.ReportMetric(float64(res.Ours.Lost+res.Baseline.Lost), "lost")
		out, err := json.Marshal(res)
		require.NoError(b, err)
		b.Log(string(out))
	}
}

// migratedDatabase creates a database in cl and applies the migrations.
func migratedDatabase(tb testing.TB, cl *pgembed.Cluster) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, cl.URL("postgres"))
	require.NoError(tb, err)
	_, err = conn.Exec(ctx, "CREATE DATABASE bench")
	require.NoError(tb, errors.Join(err, conn.Close(ctx)))
	db, err := migrations.OpenDB(ctx, cl.URL("bench"))
	require.NoError(tb, err)
	_, err = migrations.Up(ctx, db)
	require.NoError(tb, errors.Join(err, db.Close()))
	return cl.URL("bench")
}
