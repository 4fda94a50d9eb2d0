package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// storeAs returns a store whose connections act as role (SET ROLE), with that
// role's pool, skipping the test when the migrations could not create the
// roles (a server where the test user may not create roles).
func storeAs(t *testing.T, b *opsBundle, role string) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	if b.scalar(t, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, role) == 0 {
		t.Skipf("role %s does not exist on this server", role)
	}
	cfg, err := pgxpool.ParseConfig(b.url)
	require.NoError(t, err)
	cfg.MaxConns = 4
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
		return err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return store.New(pool), pool
}

// TestOperationsUnderServiceRoles runs every operation of this part of the
// store as the least-privileged role that uses it (DESIGN.md "Roles").
func TestOperationsUnderServiceRoles(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)

	// What every service does.
	for _, role := range []string{"hook_receiver", "workflow_coordinator", "model_metrics"} {
		s, _ := storeAs(t, b, role)
		sess, err := s.CreateSession(ctx, store.Session{ServiceName: role, InstanceID: "i1"})
		require.NoError(t, err, role)
		require.NoError(t, s.Heartbeat(ctx, sess.ID), role)
		_, err = s.ReapSessions(ctx, time.Hour)
		require.NoError(t, err, role)
		require.NoError(t, s.EndSession(ctx, sess.ID, store.SessionEnded), role)
		require.NoError(t, s.AppendAudit(ctx, store.AuditEvent{Type: "role." + role, Success: true}), role)
		require.NoError(t, s.AppendAudits(ctx, []store.AuditEvent{{Type: "a"}, {Type: "b"}}), role)
		require.NoError(t, s.RecordDegradation(ctx, store.Degradation{Component: "pool", Kind: "high_utilization"}), role)
		require.NoError(t, s.RecordConnectionMetrics(ctx, store.ConnectionSnapshot{ServiceName: role, InstanceID: "i1", PoolSize: 1}), role)
		w, err := store.NewAuditWriter(s, store.AuditWriterConfig{})
		require.NoError(t, err)
		require.True(t, w.Write(store.AuditEvent{Type: "writer." + role}))
		require.NoError(t, w.Close(ctx))
		require.Equal(t, uint64(1), w.Stats().Written, role)
	}

	// The coordinator records attempts, measures the backlog (its lag loop)
	// and runs maintenance.
	want := seedRetention(t, b)
	coord, coordPool := storeAs(t, b, "workflow_coordinator")
	require.NoError(t, coord.RecordEventMetric(ctx, store.EventMetric{EventID: uuid.New(), KafkaPublishSuccess: true}))
	require.NoError(t, coord.RecordEventMetrics(ctx, []store.EventMetric{{EventID: uuid.New()}, {EventID: uuid.New()}}))
	_, err := coord.Backlog(ctx)
	require.NoError(t, err)
	dry, err := coord.RunRetention(ctx, store.RetentionPolicy{}, true)
	require.NoError(t, err)
	checkReport(t, dry, want)
	rep, err := coord.RunRetention(ctx, store.RetentionPolicy{}, false)
	require.NoError(t, err)
	checkReport(t, rep, want)
	ran := make(chan struct{}, 1)
	m, err := store.NewMaintainer(coord, store.MaintainerConfig{
		Policy: store.RetentionPolicy{Interval: time.Second}, Open: store.PoolConnOpener(coordPool),
		OnRun: func(_ store.RetentionReport, err error) {
			if err == nil {
				select {
				case ran <- struct{}{}:
				default:
				}
			}
		},
	})
	require.NoError(t, err)
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	select {
	case <-ran:
	case <-time.After(time.Minute):
		t.Fatal("the coordinator's maintainer did not run")
	}
	cancel()
	require.NoError(t, <-done)

	// The metrics API reads.
	api, _ := storeAs(t, b, "model_metrics")
	_, err = api.PerformanceReport(ctx, time.Hour)
	require.NoError(t, err)
	page, err := api.ListAudit(ctx, store.AuditFilter{Type: "role.*"})
	require.NoError(t, err)
	require.Len(t, page.Events, 3)
	latest, err := api.LatestConnectionMetrics(ctx)
	require.NoError(t, err)
	require.Len(t, latest, 3)
	_, err = api.ListSessions(ctx, store.SessionFilter{})
	require.NoError(t, err)

	// The receiver may not remove anything, not even through retention.
	recv, _ := storeAs(t, b, "hook_receiver")
	_, err = recv.RunRetention(ctx, store.RetentionPolicy{}, false)
	require.Error(t, err)
}
