package metricsapi_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/pgclient"
)

// dataPaths are the endpoints that read the database.
func dataPaths(s seeded) []string {
	return []string{
		"/api/v1/performance", "/api/v1/performance/series", "/api/v1/pools", "/api/v1/sessions",
		"/api/v1/events", "/api/v1/events/" + s.processed[0].String(), "/api/v1/audit",
	}
}

// TestDatabaseGoneIs503AndRecovers: a connection lost under a request is
// replaced and the read sent again; while PostgreSQL ends every connection
// and refuses new ones (as during a restart), every data endpoint answers
// 503 database_unavailable with Retry-After, never a 500 or a hang; once it
// takes connections again, they answer 200.
func TestDatabaseGoneIs503AndRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOptions) {
		o.cfg.CacheTTL = -1
		o.log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
		o.pool = func(c *pgclient.Config) {
			c.ConnectTimeout = 2 * time.Second
			c.Breaker.OpenTimeout = 200 * time.Millisecond
		}
	})
	s := seed(t, b.store)
	db := testdb.NewOutage(t, b.dbURL)
	for _, p := range dataPaths(s) {
		require.Equal(t, http.StatusOK, b.get(t, p).status, p)
	}

	// Connections lost under the API while the server is up (a fast
	// restart, a failover): each read is sent again on a new connection.
	for _, p := range dataPaths(s) {
		require.Positive(t, db.Terminate(t, ""), "the API had connections")
		r := b.get(t, p)
		require.Equal(t, http.StatusOK, r.status, "%s after its connection was lost: %s", p, r.body)
	}

	db.AllowConnections(t, false)
	db.Terminate(t, "")
	for _, p := range dataPaths(s) {
		start := time.Now()
		r := b.get(t, p)
		requireError(t, r, http.StatusServiceUnavailable, metricsapi.CodeUnavailable)
		require.Equal(t, "5", r.header.Get("Retry-After"), p)
		require.Less(t, time.Since(start), 10*time.Second, "%s answers while the database is gone", p)
	}

	db.AllowConnections(t, true)
	for _, p := range dataPaths(s) {
		require.Eventually(t, func() bool { return b.get(t, p).status == http.StatusOK }, 30*time.Second,
			50*time.Millisecond, "%s recovers", p)
	}
}

// TestSlowDatabaseIs503Timeout: a request whose statement waits past the
// API's query timeout (here behind a lock) answers 503 timeout with
// Retry-After, and the API answers again once the lock is gone.
func TestSlowDatabaseIs503Timeout(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOptions) {
		o.cfg.CacheTTL = -1
		o.cfg.QueryTimeout = 300 * time.Millisecond
		o.log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	})
	s := seed(t, b.store)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, b.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(ctx) })
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Exec(ctx, `LOCK TABLE omnibridge.hook_events, omnibridge.security_audit_log IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	for _, p := range []string{"/api/v1/events", "/api/v1/events/" + s.dead[0].String(), "/api/v1/audit"} {
		r := b.get(t, p)
		requireError(t, r, http.StatusServiceUnavailable, metricsapi.CodeTimeout)
		require.Equal(t, "5", r.header.Get("Retry-After"), p)
	}
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, http.StatusOK, b.get(t, "/api/v1/events").status)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
