package store_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// refuseConnections makes b's database refuse new connections and ends
// those of b's pool; the returned function lets it take connections again.
func refuseConnections(t *testing.T, b *opsBundle) (allow func()) {
	t.Helper()
	o := testdb.NewOutage(t, b.url)
	o.AllowConnections(t, false)
	o.Terminate(t, "")
	return func() { o.AllowConnections(t, true) }
}

// connectionRefused is an AuditWriterConfig.Unavailable for the test's pool.
func connectionRefused(err error) bool {
	_, ok := errors.AsType[*pgconn.ConnectError](err)
	return ok
}

// TestAuditWriterWaitsOutAnUnavailableDatabase: with Unavailable set, a
// batch that fails because the database cannot be reached is kept and
// written once it can, however many attempts that takes; at Close it gets
// one more attempt, so that shutting down during an outage stays bounded.
func TestAuditWriterWaitsOutAnUnavailableDatabase(t *testing.T) {
	t.Parallel()
	var logs testdb.SyncBuffer
	failures := func() int { return strings.Count(logs.String(), "audit writer: write failed") }
	b := setupOps(t)
	var drops dropCounter
	w, err := store.NewAuditWriter(b.store, store.AuditWriterConfig{
		MaxAttempts: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 20 * time.Millisecond,
		Unavailable: connectionRefused, OnDrop: drops.hook,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)

	allow := refuseConnections(t, b)
	for i := range 10 {
		require.True(t, w.Write(auditEvent(i)))
	}
	require.Eventually(t, func() bool { return failures() >= 5 }, 30*time.Second, 5*time.Millisecond,
		"the writer keeps trying past MaxAttempts")
	require.Zero(t, w.Stats().Written)
	allow()
	require.Eventually(t, func() bool { return w.Stats().Written == 10 }, 30*time.Second, 5*time.Millisecond)
	require.Empty(t, w.Stats().Dropped)
	// The test's pool may still hold a connection that was terminated.
	require.Eventually(t, func() bool {
		var n int
		err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM omnibridge.security_audit_log`).Scan(&n)
		return err == nil && n == 10
	}, 30*time.Second, 5*time.Millisecond)

	// Closing during an outage: counted attempts again, then dropped.
	refuseConnections(t, b)
	require.True(t, w.Write(auditEvent(10)))
	seen := failures()
	require.Eventually(t, func() bool { return failures() >= seen+3 }, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, w.Close(opsCtx(t)))
	require.Equal(t, uint64(1), w.Stats().Dropped[store.DropWriteFailed])
	require.Equal(t, 1, drops.get(store.DropWriteFailed))
}
