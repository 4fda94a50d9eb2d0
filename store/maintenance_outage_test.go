package store_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// runResults collects the Maintainer's runs.
type runResults struct {
	mu   sync.Mutex
	errs []error // one per run, nil for a success
}

func (r *runResults) add(_ store.RetentionReport, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *runResults) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// retentionWaiterSQL finds a backend of this database that waits for a lock
// on service_sessions: the run's delete, behind the test's lock.
const retentionWaiterSQL = `
SELECT coalesce((SELECT l.pid FROM pg_locks l
	WHERE NOT l.granted AND l.relation = 'omnibridge.service_sessions'::regclass
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	LIMIT 1), 0)`

// TestMaintenanceRunSurvivesATerminatedConnection: a run whose connection is
// terminated in the middle of it (here while its delete waits behind a lock)
// fails with a warning that names the table and the cause, goes on with the
// other tables, and the next run succeeds.
func TestMaintenanceRunSurvivesATerminatedConnection(t *testing.T) {
	t.Parallel()
	var logs testdb.SyncBuffer
	b := setupOps(t, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := opsCtx(t)
	b.exec(t, `INSERT INTO omnibridge.service_sessions (id, service_name, status, session_start, session_end, last_seen)
		VALUES (gen_random_uuid(), 'old', 'ended', now() - interval '400 days', now() - interval '400 days', now() - interval '400 days')`)

	// The run's delete of expired sessions waits behind this lock.
	blocker, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = blocker.Rollback(context.Background()) })
	_, err = blocker.Exec(ctx, `LOCK TABLE omnibridge.service_sessions IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	var runs runResults
	m, err := store.NewMaintainer(b.store, store.MaintainerConfig{
		Policy:      store.RetentionPolicy{Interval: time.Second, LockTimeout: time.Minute},
		Open:        store.ConfigConnOpener(mustConnConfig(t, b.url)),
		LeaderCheck: 50 * time.Millisecond,
		OnRun:       runs.add,
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	var pid int64
	require.Eventually(t, func() bool {
		pid = b.scalar(t, retentionWaiterSQL)
		return pid != 0
	}, time.Minute, 10*time.Millisecond, "the run waits behind the lock")
	b.exec(t, `SELECT pg_terminate_backend($1::int)`, pid)
	require.Eventually(t, func() bool { return len(runs.all()) >= 1 }, time.Minute, 10*time.Millisecond)
	first := runs.all()[0]
	require.Error(t, first)
	require.ErrorContains(t, first, "service_sessions")
	require.ErrorContains(t, first, "57P01")
	require.Contains(t, logs.String(), `level=WARN msg="store: retention run failed"`)
	require.Contains(t, logs.String(), "57P01")
	require.True(t, m.IsLeader(), "the lock connection was not the one terminated")

	require.NoError(t, blocker.Rollback(ctx))
	require.Eventually(t, func() bool {
		errs := runs.all()
		return len(errs) >= 2 && errs[len(errs)-1] == nil
	}, time.Minute, 10*time.Millisecond, "the next run succeeds")
	require.Zero(t, b.scalar(t, `SELECT count(*) FROM omnibridge.service_sessions WHERE service_name = 'old'`))

	// Both the run's connection and the leader's lock connection end, as
	// when the server restarts: the run is cancelled, the instance resigns,
	// and it leads and runs again on a later tick.
	blocker, err = b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, `LOCK TABLE omnibridge.service_sessions IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		pid = b.scalar(t, retentionWaiterSQL)
		return pid != 0
	}, time.Minute, 10*time.Millisecond, "the next run waits behind the lock")
	before := len(runs.all())
	b.exec(t, `SELECT pg_terminate_backend(p) FROM unnest(ARRAY[$1::int, (`+leaderPIDSQL+`)::int]) p`, pid)
	require.Eventually(t, func() bool { return len(runs.all()) > before }, time.Minute, 10*time.Millisecond)
	require.Error(t, runs.all()[before])
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="store: maintenance: no longer leading" reason="lock connection lost`)
	}, time.Minute, 10*time.Millisecond, "the instance resigns with a warning that says why the run ended")
	require.NoError(t, blocker.Rollback(ctx))
	require.Eventually(t, func() bool {
		errs := runs.all()
		return len(errs) > before+1 && errs[len(errs)-1] == nil && m.IsLeader()
	}, time.Minute, 10*time.Millisecond, "it leads again and the next run succeeds")
	require.NotContains(t, strings.ToLower(logs.String()), "panic")
}

// TestRetentionRunFailingAtItsStartIsLogged: a run that cannot even start
// (the database refuses connections) is logged once, like a run that fails
// on a table; a run that its context ended is logged as cancelled.
func TestRetentionRunFailingAtItsStartIsLogged(t *testing.T) {
	t.Parallel()
	var logs testdb.SyncBuffer
	b := setupOps(t, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := opsCtx(t)
	o := testdb.NewOutage(t, b.url)
	o.AllowConnections(t, false)
	o.Terminate(t, "")
	_, err := b.store.RunRetention(ctx, store.RetentionPolicy{}, false)
	require.Error(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), `level=WARN msg="store: retention run failed"`), logs.String())

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.store.RunRetention(cancelled, store.RetentionPolicy{}, false)
	require.Error(t, err)
	require.Contains(t, logs.String(), `level=INFO msg="store: retention run cancelled"`)
	require.Equal(t, 1, strings.Count(logs.String(), `msg="store: retention run failed"`))
}
