package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/internal/bench"
	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestDrainSmokeRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testdb.New(t)
	var steps []string
	res, err := bench.Drain(ctx, url, 3000, bench.DrainConfig{
		Coordinator:     coordinator.Config{BatchSize: 200},
		IngestRate:      1000,
		LatencyRate:     300,
		LatencyDuration: 2 * time.Second,
		LatencyWarmup:   500 * time.Millisecond,
		Progress:        func(s string) { steps = append(steps, s) },
	})
	require.NoError(t, err)
	require.Equal(t, 3000, res.Events)
	require.Equal(t, 200, res.BatchSize)
	require.Greater(t, res.Rate, 0.0)
	require.InDelta(t, res.Rate/1000, res.Ratio, 1e-9)
	require.NotNil(t, res.Latency)
	require.Positive(t, res.Latency.Events)
	require.Greater(t, res.Latency.Rate, 0.0)
	require.Greater(t, res.Latency.P50Ms, 0.0)
	require.GreaterOrEqual(t, res.Latency.P99Ms, res.Latency.P50Ms)
	require.GreaterOrEqual(t, res.Latency.MaxMs, res.Latency.P99Ms)
	require.Greater(t, res.StoreRate, 0.0)
	require.InDelta(t, res.Rate/res.StoreRate, res.StoreRatio, 1e-9)
	require.Len(t, steps, 4)

	// The tables are emptied again, so the database can be reused.
	res, err = bench.Drain(ctx, url, 10, bench.DrainConfig{NoStoreBaseline: true})
	require.NoError(t, err)
	require.Zero(t, res.StoreRate)
	require.Nil(t, res.Latency)
}

func TestDrainRefusesBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := bench.Drain(ctx, "postgres://unused", -1, bench.DrainConfig{LatencyRate: -1, Coordinator: coordinator.Config{BatchSize: -3}})
	require.ErrorContains(t, err, "must be at least 1")
	require.ErrorContains(t, err, "latency rate")
	require.ErrorContains(t, err, "batch_size")
}
