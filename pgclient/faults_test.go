package pgclient_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
)

// Network faults, injected with toxiproxy running in the test process
// between the client and the package's test server.

func TestLatencyBeyondQueryTimeoutOpensTheBreaker(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	x := newToxi(t, serverAddr(t))
	var events eventLog
	cfg := fastConfig(x.proxiedURL(t))
	cfg.QueryTimeout = 200 * time.Millisecond
	cfg.CancelGrace = 50 * time.Millisecond
	cfg.ConnectTimeout = 300 * time.Millisecond
	cfg.AcquireTimeout = 5 * time.Second
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	events.hook(&cfg)
	c := openClient(t, cfg)
	require.NoError(t, selectOne(ctx, c))

	// Every answer now takes a second: the statement times out (and its
	// connection is closed, the cancel not being confirmed in time), then
	// new connections time out too.
	x.add(t, "slow", "latency", "downstream", map[string]any{"latency": 1000})
	start := time.Now()
	err := selectOne(ctx, c)
	require.ErrorIs(t, err, pgclient.ErrQueryTimeout)
	require.True(t, pgclient.IsTransient(err))
	require.Less(t, time.Since(start), 900*time.Millisecond, "the query timeout ends the call, not the latency")
	for i := 0; c.BreakerStatus().State != pgclient.BreakerOpen; i++ {
		require.Less(t, i, cfg.Breaker.FailureThreshold, "timeouts count as failures")
		err := selectOne(ctx, c)
		require.True(t, errors.Is(err, pgclient.ErrQueryTimeout) || pgconn.Timeout(err) || errors.Is(err, pgclient.ErrUnavailable), "%v", err)
		require.True(t, pgclient.IsTransient(err))
	}

	start = time.Now()
	err = selectOne(ctx, c)
	require.ErrorIs(t, err, pgclient.ErrUnavailable)
	require.Less(t, time.Since(start), 50*time.Millisecond, "an open breaker fails fast")
	d, ok := pgclient.RetryAfter(err)
	require.True(t, ok)
	require.Positive(t, d)
	h := c.Health(ctx)
	require.Equal(t, pgclient.StatusUnhealthy, h.Status)
	require.Contains(t, strings.Join(h.Reasons, "; "), "circuit breaker open")
	require.Equal(t, pgclient.BreakerOpen, h.Breaker.State)
	require.Equal(t, 2.0, gaugeValue(t, reg, "omnibridge_pgclient_breaker_state", nil))
	require.Equal(t, 1.0, gaugeValue(t, reg, "omnibridge_pgclient_breaker_transitions_total", map[string]string{"to": "open"}))
	require.Positive(t, gaugeValue(t, reg, "omnibridge_pgclient_breaker_rejections_total", nil))

	// Once the open timeout has passed, the breaker probes: degraded.
	x.remove(t, "slow")
	waitBreaker(t, c, pgclient.BreakerHalfOpen, 5*time.Second)
	h = c.Health(ctx)
	require.Equal(t, pgclient.StatusDegraded, h.Status, "%v", h.Reasons)
	require.Contains(t, strings.Join(h.Reasons, "; "), "half-open")
	require.Equal(t, 1.0, gaugeValue(t, reg, "omnibridge_pgclient_breaker_state", nil))

	require.Eventually(t, func() bool { return selectOne(ctx, c) == nil }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, pgclient.BreakerClosed, c.BreakerStatus().State)
	require.Equal(t, 0.0, gaugeValue(t, reg, "omnibridge_pgclient_breaker_state", nil))
	require.Eventually(t, func() bool {
		return strings.Join(events.transitions(), " ") == "closed→open open→half-open half-open→closed"
	}, 5*time.Second, 10*time.Millisecond, "transitions: %v", events.transitions())
	var types []string
	for _, e := range events.securityEvents() {
		if e.Type != pgclient.SecurityEventConnectFailed { // the connections that timed out
			types = append(types, e.Type)
		}
	}
	require.Equal(t, []string{pgclient.SecurityEventBreakerOpened, pgclient.SecurityEventBreakerClosed}, types)
}

func TestBlackholeFailsWithinDeadlinesAndRecovers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	x := newToxi(t, serverAddr(t))
	cfg := fastConfig(x.proxiedURL(t))
	cfg.MinConns = 2
	cfg.MaxConns = 4
	cfg.QueryTimeout = 200 * time.Millisecond
	cfg.CancelGrace = 50 * time.Millisecond
	cfg.AcquireTimeout = 300 * time.Millisecond
	cfg.ConnectTimeout = 300 * time.Millisecond
	cfg.Breaker.OpenTimeout = 500 * time.Millisecond
	c := openClient(t, cfg)
	require.NoError(t, selectOne(ctx, c))
	baseline := runtime.NumGoroutine()

	// Everything sent to the server from now on is held forever.
	x.add(t, "blackhole_down", "timeout", "downstream", map[string]any{"timeout": 0})
	x.add(t, "blackhole_up", "timeout", "upstream", map[string]any{"timeout": 0})

	const workers = 16
	const deadline = time.Second
	var (
		wg          sync.WaitGroup
		calls, errs atomic.Int64
		slowest     atomic.Int64
		maxG        atomic.Int64
	)
	stop := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, deadline)
				start := time.Now()
				err := selectOne(pgclient.Idempotent(cctx), c)
				cancel()
				took := time.Since(start)
				calls.Add(1)
				if err != nil {
					errs.Add(1)
				}
				for {
					s := slowest.Load()
					if int64(took) <= s || slowest.CompareAndSwap(s, int64(took)) {
						break
					}
				}
				if g := int64(runtime.NumGoroutine()); g > maxG.Load() {
					maxG.Store(g)
				}
			}
		})
	}
	waitBreaker(t, c, pgclient.BreakerOpen, 10*time.Second)
	time.Sleep(time.Second) // through at least one half-open probe
	close(stop)
	wg.Wait()

	require.Equal(t, calls.Load(), errs.Load(), "no call can succeed through a black hole")
	require.LessOrEqual(t, time.Duration(slowest.Load()), deadline+500*time.Millisecond, "every call ends within its deadline")
	// Workers, connections being opened or cancelled (at most MaxConns), the
	// proxy's links, other tests running in parallel: nothing that grows
	// with the number of calls (tens of thousands here).
	require.Less(t, maxG.Load(), int64(baseline+workers+300), "goroutines piled up: %d calls", calls.Load())
	require.Greater(t, calls.Load(), int64(1000), "the open breaker fails calls fast")

	x.remove(t, "blackhole_down")
	x.remove(t, "blackhole_up")
	require.Eventually(t, func() bool { return selectOne(ctx, c) == nil }, 10*time.Second, 20*time.Millisecond)
	waitBreaker(t, c, pgclient.BreakerClosed, 5*time.Second)
}

func TestResetPeerMidQueryDiscardsTheConnection(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	x := newToxi(t, serverAddr(t))
	cfg := fastConfig(x.proxiedURL(t))
	cfg.QueryTimeout = 5 * time.Second
	c := openClient(t, cfg)
	before := backendPID(t, c)

	// The server answers after 300ms; the connection is reset as the first
	// bytes of the answer arrive.
	added := make(chan error, 1)
	time.AfterFunc(100*time.Millisecond, func() {
		added <- x.tryAdd("reset", "reset_peer", "downstream", map[string]any{"timeout": 0})
	})
	n := 0
	rows, err := c.Query(ctx, "SELECT g, repeat('x', 100) FROM pg_sleep(0.3), generate_series(1, 100000) g")
	if err == nil {
		for rows.Next() {
			n++
		}
		rows.Close()
		err = rows.Err()
	}
	require.NoError(t, <-added)
	require.Error(t, err)
	require.True(t, pgclient.IsTransient(err), err.Error())
	require.Less(t, n, 100000)
	x.remove(t, "reset")
	require.NotEqual(t, before, backendPID(t, c), "the reset connection was discarded, the next call gets a new one")
	require.Eventually(t, func() bool { return c.Pool().Stat().TotalConns() == 1 }, 10*time.Second, 5*time.Millisecond,
		"the reset connection leaves the pool")
}

func TestResetPeerMidCopy(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	x := newToxi(t, serverAddr(t))
	cfg := fastConfig(x.proxiedURL(t))
	cfg.QueryTimeout = 5 * time.Second
	c := openClient(t, cfg)
	_, err := c.Exec(ctx, "CREATE TABLE copied (id int, payload text)")
	require.NoError(t, err)
	before := backendPID(t, c)

	// Far more rows than one write buffer holds; after the first hundred the
	// connection is reset on the next bytes sent.
	payload := strings.Repeat("p", 1000)
	var added error
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		i++
		switch {
		case i == 100:
			added = x.tryAdd("reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
		case i > 5000:
			return nil, nil
		}
		return []any{i, payload}, nil
	})
	_, err = c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "payload"}, src)
	require.NoError(t, added)
	require.Error(t, err)
	require.True(t, pgclient.IsTransient(err), err.Error())
	x.remove(t, "reset")

	require.NotEqual(t, before, backendPID(t, c), "the reset connection was discarded")
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM copied").Scan(&n), "the next call succeeds")
	require.Zero(t, n, "the interrupted COPY left nothing behind")
	copied, err := c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "payload"}, pgx.CopyFromRows([][]any{{1, "a"}, {2, "b"}}))
	require.NoError(t, err)
	require.EqualValues(t, 2, copied)
}

func TestSlicedAndTruncatedStreams(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	x := newToxi(t, serverAddr(t))
	cfg := fastConfig(x.proxiedURL(t))
	cfg.QueryTimeout = 10 * time.Second
	c := openClient(t, cfg)
	const big = "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g" // ~9.6 kB in one row
	var want string
	require.NoError(t, c.QueryRow(ctx, big).Scan(&want))

	// Tiny segments in both directions: the protocol must reassemble them.
	x.add(t, "slice_down", "slicer", "downstream", map[string]any{"average_size": 7, "size_variation": 5, "delay": 0})
	x.add(t, "slice_up", "slicer", "upstream", map[string]any{"average_size": 3, "size_variation": 2, "delay": 0})
	for range 5 {
		var got string
		require.NoError(t, c.QueryRow(ctx, big).Scan(&got))
		require.Equal(t, want, got)
	}
	var sum int64
	require.NoError(t, c.QueryRow(ctx, "SELECT sum(x) FROM unnest($1::int8[]) x", []int64{1, 2, 3, 4}).Scan(&sum))
	require.EqualValues(t, 10, sum)
	x.remove(t, "slice_down")
	x.remove(t, "slice_up")

	// The stream is cut after a few bytes, in the middle of a message.
	for _, limit := range []int{1, 5, 100, 4000} {
		x.add(t, "cut", "limit_data", "downstream", map[string]any{"bytes": limit})
		var got string
		err := c.QueryRow(ctx, big).Scan(&got)
		require.Error(t, err, "limit %d", limit)
		require.True(t, pgclient.IsTransient(err) || errors.Is(err, pgclient.ErrUnavailable), "limit %d: %v", limit, err)
		x.remove(t, "cut")
	}
	require.Eventually(t, func() bool { return selectOne(ctx, c) == nil }, 10*time.Second, 20*time.Millisecond, "recovers")
}
