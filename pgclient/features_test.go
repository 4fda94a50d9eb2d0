package pgclient_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
)

func TestPrometheusMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 3, Registerer: reg, ServiceName: "metrics-svc"})
	c, ctx := b.client, ctxT(t)
	for range 3 {
		_, err := c.Exec(ctx, "SELECT $1::int", 1)
		require.NoError(t, err)
	}
	_, err := c.Exec(ctx, "SELECT broken")
	require.Error(t, err)

	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		got[f.GetName()] = f
		for _, m := range f.GetMetric() {
			require.Contains(t, labels(m), "service=metrics-svc", f.GetName())
		}
	}
	value := func(name string, label string) float64 {
		t.Helper()
		f, ok := got["omnibridge_pgclient_"+name]
		require.True(t, ok, "metric %s missing", name)
		for _, m := range f.GetMetric() {
			if label != "" && !strings.Contains(labels(m), label) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("metric %s{%s} missing", name, label)
		return 0
	}
	require.EqualValues(t, 4, value("queries_total", ""))
	require.EqualValues(t, 1, value("failed_queries_total", ""))
	require.EqualValues(t, 4, value("acquired_connections_total", ""))
	require.EqualValues(t, 4, value("released_connections_total", ""))
	require.EqualValues(t, 4, value("query_duration_seconds", "op=query"))
	require.EqualValues(t, 4, value("acquire_duration_seconds", ""))
	require.EqualValues(t, 3, value("max_connections", ""))
	require.EqualValues(t, 0, value("connections", "state=in_use"))
	require.EqualValues(t, 2, value("statement_cache_hits_total", ""))
	require.EqualValues(t, 1, value("statement_cache_misses_total", ""))
	for _, name := range []string{"potential_leaks_total", "current_leaks", "waiting", "utilization_ratio",
		"failed_acquisitions_total", "acquire_wait_seconds_total", "connections_opened_total"} {
		value(name, "")
	}
	value("connections_recycled_total", "reason=max_queries")

	// Closing unregisters, so a new client can register on the same registry.
	c.Close()
	c2, err := pgclient.Open(ctx, pgclient.Config{URL: b.url, MinConns: 1, Registerer: reg, ServiceName: "metrics-svc"})
	require.NoError(t, err)
	c2.Close()
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func TestStatementCacheCounts(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1})
	c, ctx := b.client, ctxT(t)
	for i := range 5 {
		var n int
		require.NoError(t, c.QueryRow(ctx, "SELECT $1::int + 1", i).Scan(&n))
		require.Equal(t, i+1, n)
	}
	s := c.Stats()
	require.EqualValues(t, 1, s.StatementCacheMisses)
	require.EqualValues(t, 4, s.StatementCacheHits)

	// The simple protocol has no cache: nothing counted.
	_, err := c.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	require.EqualValues(t, 5, c.Stats().StatementCacheHits+c.Stats().StatementCacheMisses)
}

func TestExecModes(t *testing.T) {
	t.Parallel()
	url := withParams(t, "")
	for _, mode := range []string{pgclient.ExecModeCacheStatement, pgclient.ExecModeCacheDescribe,
		pgclient.ExecModeDescribeExec, pgclient.ExecModeExec, pgclient.ExecModeSimpleProtocol} {
		t.Run(mode, func(t *testing.T) {
			b := setup(t, pgclient.Config{URL: url, MinConns: 1, MaxConns: 1, ExecMode: mode, ServiceName: "mode-" + mode})
			var n int
			for range 3 {
				require.NoError(t, b.client.QueryRow(ctxT(t), "SELECT $1::int * 2", 21).Scan(&n))
			}
			require.Equal(t, 42, n)
			s := b.client.Stats()
			switch mode {
			case pgclient.ExecModeCacheStatement, pgclient.ExecModeCacheDescribe:
				require.EqualValues(t, 1, s.StatementCacheMisses)
				require.EqualValues(t, 2, s.StatementCacheHits)
			default:
				require.Zero(t, s.StatementCacheMisses+s.StatementCacheHits)
			}
		})
	}
}

func TestRoleAndPrepareOnConnect(t *testing.T) {
	t.Parallel()
	role := "t_role_" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	admin(t, func(conn *pgx.Conn) {
		_, err := conn.Exec(context.Background(), "CREATE ROLE "+role+" NOLOGIN")
		require.NoError(t, err)
	})
	t.Cleanup(func() {
		admin(t, func(conn *pgx.Conn) {
			_, err := conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
			require.NoError(t, err)
		})
	})
	b := setup(t, pgclient.Config{MinConns: 2, MaxConns: 2, Role: role,
		PrepareOnConnect: map[string]string{"plus_one": "SELECT $1::int + 1"}})
	c, ctx := b.client, ctxT(t)
	// Both connections of the pool, not just the first, got the role.
	conns := make([]*pgclient.Conn, 2)
	for i := range conns {
		conn, err := c.Acquire(ctx)
		require.NoError(t, err)
		conns[i] = conn
		var user string
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&user))
		require.Equal(t, role, user)
		require.NoError(t, conn.QueryRow(ctx, "plus_one", 41).Scan(&n))
		require.Equal(t, 42, n)
	}
	for _, conn := range conns {
		conn.Release()
	}
	require.Zero(t, c.Stats().StatementCacheMisses, "prepared statements are not cache lookups")

	_, err := pgclient.Open(ctx, pgclient.Config{URL: b.url, MinConns: 1, Role: "no_such_role_x"})
	require.ErrorContains(t, err, "no_such_role_x")
}

func TestUtilizationWarningOncePerEpisode(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []pgclient.DegradationEvent
	got := make(chan struct{}, 10)
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2, UtilizationWarn: 0.5, UtilizationWarnAfter: 100 * time.Millisecond,
		OnDegradation: func(ev pgclient.DegradationEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			got <- struct{}{}
		}})
	c, ctx := b.client, ctxT(t)
	hold := func() []*pgclient.Conn {
		var cs []*pgclient.Conn
		for range 2 {
			conn, err := c.Acquire(ctx)
			require.NoError(t, err)
			cs = append(cs, conn)
		}
		return cs
	}
	release := func(cs []*pgclient.Conn) {
		for _, conn := range cs {
			conn.Release()
		}
	}
	wait := func() {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("no degradation event")
		}
	}

	for episode := 1; episode <= 2; episode++ {
		cs := hold()
		wait()
		time.Sleep(300 * time.Millisecond) // still high: no second warning
		release(cs)
		wait()
		require.Equal(t, episode, strings.Count(b.log.String(), "high connection pool utilization"))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 4)
	for i, ev := range events {
		require.Equal(t, pgclient.DegradationKindHighUtilization, ev.Kind)
		require.Equal(t, i%2 == 1, ev.Recovered)
		require.Equal(t, b.app, ev.Service)
		require.False(t, ev.Since.IsZero())
	}
	require.EqualValues(t, 100, events[0].UtilizationPercent)
	require.EqualValues(t, 50, events[0].ThresholdPercent)
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 2, MaxConns: 4})
	c, ctx := b.client, ctxT(t)
	_, err := c.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "SELECT nope")
	require.Error(t, err)
	conn, err := c.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	s := c.Snapshot()
	require.Equal(t, b.app, s.ServiceName)
	require.EqualValues(t, 2, s.PoolSize)
	require.EqualValues(t, 1, s.ActiveConnections)
	require.EqualValues(t, 1, s.IdleConnections)
	require.EqualValues(t, 2, s.TotalQueries)
	require.EqualValues(t, 1, s.FailedQueries)
	require.Positive(t, s.AvgQueryTimeMS)
	require.EqualValues(t, 25, s.UtilizationPercent)
	require.WithinDuration(t, time.Now(), s.RecordedAt, time.Minute)
}

func TestCancelGraceNegativeClosesConnection(t *testing.T) {
	t.Parallel()
	// pgx's own behaviour, kept available: on timeout the connection is
	// closed at once (pgx still sends a cancel request as it goes).
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, QueryTimeout: 200 * time.Millisecond, CancelGrace: -1})
	c, ctx := b.client, ctxT(t)
	pid := backendPID(t, c)
	opened := c.Stats().NewConnections
	_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
	require.ErrorIs(t, err, pgclient.ErrQueryTimeout)
	require.NotEqual(t, pid, backendPID(t, c), "the connection was replaced")
	require.Greater(t, c.Stats().NewConnections, opened)
}
