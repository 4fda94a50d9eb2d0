package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// leaderPIDSQL finds the backend holding the maintenance leader lock (0 if
// none). A bigint advisory key is split into classid (high half) and objid.
const leaderPIDSQL = `
SELECT coalesce((SELECT pid FROM pg_locks, (SELECT hashtextextended('omnibridge.maintenance', 0) AS k) key
	WHERE locktype = 'advisory' AND granted AND objsubid = 1
	  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND classid::bigint = (key.k >> 32) & 4294967295 AND objid::bigint = key.k & 4294967295), 0)`

// runningMaintainer is a Maintainer running in the background.
type runningMaintainer struct {
	m      *store.Maintainer
	runs   atomic.Int64
	cancel context.CancelFunc
	done   chan error
}

func startMaintainer(t *testing.T, b *opsBundle) *runningMaintainer {
	t.Helper()
	rm := &runningMaintainer{done: make(chan error, 1)}
	m, err := store.NewMaintainer(b.store, store.MaintainerConfig{
		Policy:      store.RetentionPolicy{Interval: time.Second},
		Open:        store.PoolConnOpener(b.pool),
		LeaderCheck: 100 * time.Millisecond,
		OnRun: func(rep store.RetentionReport, err error) {
			if err == nil {
				rm.runs.Add(1)
			}
		},
	})
	require.NoError(t, err)
	rm.m = m
	ctx, cancel := context.WithCancel(context.Background())
	rm.cancel = cancel
	go func() { rm.done <- m.Run(ctx) }()
	t.Cleanup(func() { rm.stop(t) })
	return rm
}

func (rm *runningMaintainer) stop(t *testing.T) {
	rm.cancel()
	select {
	case err, ok := <-rm.done:
		if ok {
			require.NoError(t, err)
			close(rm.done)
		}
	case <-time.After(time.Minute):
		t.Fatal("Maintainer.Run did not return after its context ended")
	}
}

func TestMaintainerOneLeaderAtATime(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	leaderPID := func() int64 { return b.scalar(t, leaderPIDSQL) }

	first := startMaintainer(t, b)
	require.Eventually(t, first.m.IsLeader, time.Minute, 10*time.Millisecond)
	second := startMaintainer(t, b)

	// The leader keeps leading across runs; the other one never runs.
	require.Eventually(t, func() bool { return first.runs.Load() >= 3 }, time.Minute, 20*time.Millisecond)
	require.True(t, first.m.IsLeader())
	require.False(t, second.m.IsLeader())
	require.Zero(t, second.runs.Load())
	require.Zero(t, second.m.Runs())
	pid := leaderPID()
	require.NotZero(t, pid)

	// The leader's lock connection dies: it gives up leadership, and the lock
	// is free for whoever asks first on its next tick.
	b.exec(t, `SELECT pg_terminate_backend($1::int)`, pid)
	require.Eventually(t, func() bool {
		p := leaderPID()
		return p != 0 && p != pid
	}, time.Minute, 20*time.Millisecond)
	require.Eventually(t, func() bool { return first.m.IsLeader() != second.m.IsLeader() }, time.Minute, 10*time.Millisecond)

	// Stopping the leader hands over to the other.
	leader, other := first, second
	if second.m.IsLeader() {
		leader, other = second, first
	}
	leader.stop(t)
	require.False(t, leader.m.IsLeader())
	otherRuns := other.runs.Load()
	require.Eventually(t, func() bool { return other.m.IsLeader() && other.runs.Load() > otherRuns }, time.Minute, 20*time.Millisecond)
	other.stop(t)
	require.Eventually(t, func() bool { return leaderPID() == 0 }, time.Minute, 20*time.Millisecond,
		"a stopped leader releases the lock")
	require.GreaterOrEqual(t, b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log WHERE event_type = 'retention.run'`),
		int64(4), "every run is audited")
}

// poolOnly hides the pool's Acquire from the store.
type poolOnly struct{ store.DB }

func TestRunMaintenance(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx, cancel := context.WithCancel(opsCtx(t))
	done := make(chan error, 1)
	go func() { done <- b.store.RunMaintenance(ctx, store.RetentionPolicy{}, time.Second) }()
	require.Eventually(t, func() bool {
		return b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log WHERE event_type = 'retention.run'`) > 0
	}, time.Minute, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	require.ErrorIs(t, store.New(poolOnly{b.pool}).RunMaintenance(context.Background(), store.RetentionPolicy{}, 0),
		store.ErrNoConnOpener)
	_, err := store.NewMaintainer(b.store, store.MaintainerConfig{})
	require.ErrorIs(t, err, store.ErrNoConnOpener)
	_, err = store.NewMaintainer(b.store, store.MaintainerConfig{
		Open:   store.ConfigConnOpener(mustConnConfig(t, b.url)),
		Policy: store.RetentionPolicy{BatchSize: -1},
	})
	require.Error(t, err)
	require.Contains(t, err.Error(), "batch_size")
}

func TestMaintainerWithConfigOpener(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	var runs atomic.Int64
	ranOK := make(chan struct{}, 1)
	m, err := store.NewMaintainer(b.store, store.MaintainerConfig{
		Policy: store.RetentionPolicy{Interval: time.Second},
		Open:   store.ConfigConnOpener(mustConnConfig(t, b.url)),
		OnRun: func(_ store.RetentionReport, err error) {
			if err == nil && runs.Add(1) == 1 {
				ranOK <- struct{}{}
			}
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(opsCtx(t))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-ranOK:
	case <-time.After(time.Minute):
		t.Fatal("no run")
	}
	require.NotZero(t, b.scalar(t, leaderPIDSQL))
	cancel()
	require.NoError(t, <-done)
	require.False(t, m.IsLeader())
}

func mustConnConfig(t *testing.T, url string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	return cfg
}
