package pgclient_test

import (
	"cmp"
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
)

const benchWorkers = 32

// BenchmarkPointQuery compares a point query (SELECT $1::int) through
// pgclient with the same query through a bare pgxpool of the same size, one
// goroutine at a time and with 32 concurrent goroutines.
//
//	go test -run '^$' -bench PointQuery -benchtime 3s ./pgclient/
func BenchmarkPointQuery(b *testing.B) {
	url := testdb.NewEmpty(b)
	ctx := context.Background()

	bare := func(b *testing.B) func(context.Context, int) (int, error) {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			b.Fatal(err)
		}
		cfg.MinConns, cfg.MaxConns = pgclient.DefaultMinConns, pgclient.DefaultMaxConns
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		return func(ctx context.Context, i int) (n int, err error) {
			return n, pool.QueryRow(ctx, "SELECT $1::int", i).Scan(&n)
		}
	}
	client := func(leak time.Duration) func(b *testing.B) func(context.Context, int) (int, error) {
		return func(b *testing.B) func(context.Context, int) (int, error) {
			c, err := pgclient.Open(ctx, pgclient.Config{URL: url, LeakThreshold: leak,
				Registerer: prometheus.NewRegistry(), ServiceName: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			return func(ctx context.Context, i int) (n int, err error) {
				return n, c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n)
			}
		}
	}
	pools := []struct {
		name string
		open func(*testing.B) func(context.Context, int) (int, error)
	}{
		{"pgxpool", bare},
		{"pgclient", client(0)},
		{"pgclient_no_leak_detection", client(-1)},
	}
	for _, p := range pools {
		b.Run("serial/"+p.name, func(b *testing.B) {
			query := p.open(b)
			i := 0
			for b.Loop() {
				i++
				if _, err := query(ctx, i); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
	for _, p := range pools {
		b.Run("parallel32/"+p.name, func(b *testing.B) {
			query := p.open(b)
			b.SetParallelism((benchWorkers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := query(ctx, i); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// TestBenchPool smoke-tests the runner behind `omnibridge bench pool`; with
// PGCLIENT_BENCH_SECONDS set it runs for that long and logs the figures.
func TestBenchPool(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("PGCLIENT_BENCH_SECONDS"))
	d := time.Duration(max(secs, 0))*time.Second + 200*time.Millisecond*time.Duration(boolInt(secs == 0))
	ctx, cancel := context.WithTimeout(context.Background(), 3*d+time.Minute)
	defer cancel()
	res, err := pgclient.BenchPool(ctx, pgclient.Config{URL: testdb.NewEmpty(t), ServiceName: "bench-pool",
		LeakThreshold: benchLeakThreshold(), StatementTimeout: envDuration("PGCLIENT_BENCH_STATEMENT_TIMEOUT"),
		MaxConns: int32(envInt("PGCLIENT_BENCH_MAX_CONNS"))}, benchWorkersFromEnv(), d)
	require.NoError(t, err)
	require.Positive(t, res.Queries)
	require.Positive(t, res.BaselineQueries)
	require.Positive(t, res.Ratio)
	t.Logf("pgclient %.0f queries/s, pgxpool %.0f queries/s, ratio %.3f (median of %d round pairs; %d workers; %d vs %d queries)",
		res.Rate, res.BaselineRate, res.Ratio, res.Rounds, res.Workers, res.Queries, res.BaselineQueries)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// benchLeakThreshold is PGCLIENT_BENCH_LEAK_THRESHOLD (a duration, negative
// disables), else the default.
func benchLeakThreshold() time.Duration { return envDuration("PGCLIENT_BENCH_LEAK_THRESHOLD") }

func envDuration(name string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(name))
	return d
}

func benchWorkersFromEnv() int { return cmp.Or(envInt("PGCLIENT_BENCH_WORKERS"), benchWorkers) }

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return max(n, 0)
}
