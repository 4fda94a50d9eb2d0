package store_test

import (
	"context"
	"encoding/json"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestConnectionMetricsLatestPerInstance(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	now := time.Now()
	snap := func(svc, inst string, active int, age time.Duration) store.ConnectionSnapshot {
		return store.ConnectionSnapshot{
			ServiceName: svc, InstanceID: inst, PoolSize: 20, Active: active, Idle: 20 - active,
			TotalQueries: 1000, FailedQueries: 3, AvgQueryTimeMS: 1.25, UtilizationPercent: float64(active) * 5,
			RecordedAt: now.Add(-age),
		}
	}
	for _, s := range []store.ConnectionSnapshot{
		snap("hook_receiver", "a", 1, 3*time.Minute),
		snap("hook_receiver", "a", 2, time.Minute), // newest of a
		snap("hook_receiver", "a", 3, 2*time.Minute),
		snap("hook_receiver", "b", 4, 30*time.Hour), // only outside the horizon
		snap("hook_receiver", "b", 5, 5*time.Hour),  // newest of b
		snap("model_metrics", "a", 6, 10*time.Second),
		snap("workflow_coordinator", "x", 7, 48*time.Hour), // gone
	} {
		require.NoError(t, b.store.RecordConnectionMetrics(ctx, s))
	}
	// Unknown averages are stored as NULL and read back as 0.
	unknown := snap("workflow_coordinator", "y", 8, 0)
	unknown.RecordedAt = time.Time{}
	unknown.AvgQueryTimeMS = math.NaN()
	unknown.UtilizationPercent = -1
	require.NoError(t, b.store.RecordConnectionMetrics(ctx, unknown))
	require.Equal(t, int64(1), b.scalar(t, `SELECT count(*) FROM omnibridge.connection_metrics
		WHERE avg_query_time_ms IS NULL AND utilization_percent IS NULL AND recorded_at > now() - interval '1 minute'`))

	latest, err := b.store.LatestConnectionMetrics(ctx)
	require.NoError(t, err)
	type key struct {
		svc, inst string
		active    int
	}
	var got []key
	for _, c := range latest {
		got = append(got, key{c.ServiceName, c.InstanceID, c.Active})
	}
	require.Equal(t, []key{
		{"hook_receiver", "a", 2}, {"hook_receiver", "b", 5}, {"model_metrics", "a", 6}, {"workflow_coordinator", "y", 8},
	}, got)
	first := latest[0]
	require.Equal(t, 20, first.PoolSize)
	require.Equal(t, int64(1000), first.TotalQueries)
	require.Equal(t, int64(3), first.FailedQueries)
	require.Equal(t, 1.25, first.AvgQueryTimeMS)
	require.Equal(t, 10.0, first.UtilizationPercent)
	require.WithinDuration(t, now.Add(-time.Minute), first.RecordedAt, time.Millisecond)
	require.Zero(t, latest[3].AvgQueryTimeMS)
	_, err = json.Marshal(latest)
	require.NoError(t, err, "the API serves them as JSON")

	for name, bad := range map[string]store.ConnectionSnapshot{
		"no service":  {InstanceID: "a"},
		"no instance": {ServiceName: "svc"},
		"negative":    {ServiceName: "svc", InstanceID: "a", Active: -1},
		"overflow":    {ServiceName: "svc", InstanceID: "a", FailedQueries: math.MaxInt32 + 1},
	} {
		require.ErrorIs(t, b.store.RecordConnectionMetrics(ctx, bad), store.ErrInvalidInput, name)
	}
}

func TestLatestConnectionMetricsUsesTheInstanceIndex(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	// 3 instances × 2000 snapshots over the last day.
	b.exec(t, `INSERT INTO omnibridge.connection_metrics (service_name, instance_id, pool_size,
			active_connections, idle_connections, recorded_at)
		SELECT 'svc', 'i' || (g % 3), 10, g % 10, 10 - g % 10, now() - g * interval '40 seconds'
		FROM generate_series(1, 6000) g`)
	b.exec(t, `ANALYZE omnibridge.connection_metrics`)
	latest, err := b.store.LatestConnectionMetrics(ctx)
	require.NoError(t, err)
	require.Len(t, latest, 3)

	// The skip scan reads a few index entries per instance, not every snapshot.
	var plan string
	require.NoError(t, b.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) `+store.LatestConnectionMetricsSQL(),
		store.ConnectionMetricsHorizon).Scan(&plan))
	require.NotContains(t, plan, `"Seq Scan"`)
	require.Contains(t, plan, "idx")
}

func TestRunConnectionMetrics(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx, cancel := context.WithCancel(opsCtx(t))
	var calls atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- b.store.RunConnectionMetrics(ctx, 20*time.Millisecond, func() store.ConnectionSnapshot {
			n := calls.Add(1)
			return store.ConnectionSnapshot{ServiceName: "svc", InstanceID: "i", PoolSize: 4, Active: int(n % 4)}
		})
	}()
	require.Eventually(t, func() bool {
		return b.scalar(t, `SELECT count(*) FROM omnibridge.connection_metrics`) >= 3
	}, time.Minute, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.ErrorIs(t, b.store.RunConnectionMetrics(context.Background(), 0, nil), store.ErrInvalidInput)
}
