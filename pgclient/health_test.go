package pgclient_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
)

func requireReason(t *testing.T, h pgclient.HealthResult, status pgclient.HealthStatus, reason string) {
	t.Helper()
	require.Equal(t, status, h.Status, "reasons: %v", h.Reasons)
	for _, r := range h.Reasons {
		if strings.Contains(r, reason) {
			return
		}
	}
	t.Fatalf("no reason mentions %q: %v", reason, h.Reasons)
}

func TestHealthHealthy(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 4, HealthSlowQuery: 10 * time.Second})
	h := b.client.Health(ctxT(t))
	require.Equal(t, pgclient.StatusHealthy, h.Status, "reasons: %v", h.Reasons)
	require.Empty(t, h.Reasons)
	require.True(t, h.QueryTest.OK)
	require.False(t, h.QueryTest.OutOfPool)
	require.EqualValues(t, 4, h.ConnectionPool.Max)
	require.EqualValues(t, 0, h.ConnectionPool.InUse)

	js, err := json.Marshal(h)
	require.NoError(t, err)
	for _, key := range []string{`"status":"healthy"`, `"connection_pool":{`, `"utilization_percent"`,
		`"potential_leaks"`, `"waiting"`, `"query_test":{"ok":true`, `"response_time_ms"`, `"reasons":[]`} {
		require.Contains(t, string(js), key)
	}
}

func TestHealthSlowQuery(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 4, HealthSlowQuery: time.Nanosecond})
	requireReason(t, b.client.Health(ctxT(t)), pgclient.StatusDegraded, "test query took")
}

func TestHealthHighUtilizationAndExhaustedPool(t *testing.T) {
	t.Parallel()
	const healthTimeout = 600 * time.Millisecond
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2, HealthTimeout: healthTimeout, HealthSlowQuery: 10 * time.Second})
	c, ctx := b.client, ctxT(t)

	conn, err := c.Acquire(ctx)
	require.NoError(t, err)
	h := c.Health(ctx) // 1 of 2 in use: 50%
	require.Equal(t, pgclient.StatusHealthy, h.Status, "reasons: %v", h.Reasons)

	conn2, err := c.Acquire(ctx)
	require.NoError(t, err)
	start := time.Now()
	h = c.Health(ctx)
	require.Less(t, time.Since(start), 3*healthTimeout, "health must not hang on an exhausted pool")
	requireReason(t, h, pgclient.StatusDegraded, "pool utilization 100%")
	requireReason(t, h, pgclient.StatusDegraded, "pool exhausted")
	require.True(t, h.QueryTest.OK, "the database itself answered")
	require.True(t, h.QueryTest.OutOfPool)
	conn.Release()
	conn2.Release()
}

func TestHealthWaiters(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, AcquireTimeout: 20 * time.Second,
		UtilizationWarn: 1, HealthTimeout: 400 * time.Millisecond, HealthSlowQuery: 10 * time.Second})
	c, ctx := b.client, ctxT(t)
	conn, err := c.Acquire(ctx)
	require.NoError(t, err)
	done := make(chan error)
	go func() {
		_, err := c.Exec(ctx, "SELECT 1") // waits for conn
		done <- err
	}()
	require.Eventually(t, func() bool { return c.Stats().Waiting == 1 }, 10*time.Second, 5*time.Millisecond)
	requireReason(t, c.Health(ctx), pgclient.StatusDegraded, "1 callers waiting")
	conn.Release()
	require.NoError(t, <-done)
}

func TestHealthLeak(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 4, LeakThreshold: 50 * time.Millisecond, HealthSlowQuery: 10 * time.Second})
	c, ctx := b.client, ctxT(t)
	conn, err := c.Acquire(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Stats().CurrentLeaks == 1 }, 10*time.Second, 5*time.Millisecond)
	h := c.Health(ctx)
	requireReason(t, h, pgclient.StatusDegraded, "held longer than leak_threshold")
	require.EqualValues(t, 1, h.ConnectionPool.CurrentLeaks)
	conn.Release()
	require.Equal(t, pgclient.StatusHealthy, c.Health(ctx).Status)
}

func TestHealthUnhealthyWhenDatabaseGone(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmpty(t)
	b := setup(t, pgclient.Config{URL: url, MinConns: 1, MaxConns: 2, HealthTimeout: time.Second})
	admin(t, func(conn *pgx.Conn) {
		_, err := conn.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{dbName(t, url)}.Sanitize()+" WITH (FORCE)")
		require.NoError(t, err)
	})
	start := time.Now()
	h := b.client.Health(ctxT(t))
	require.Less(t, time.Since(start), 3*time.Second)
	requireReason(t, h, pgclient.StatusUnhealthy, "test query failed")
	require.False(t, h.QueryTest.OK)
	require.NotEmpty(t, h.QueryTest.Error)
}

func dbName(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	return cfg.Database
}
