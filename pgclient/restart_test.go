package pgclient_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/pgembed"
)

// load runs point queries on c from workers goroutines until stopped, and
// records when each failed.
type load struct {
	c    *pgclient.Client
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu     sync.Mutex
	ok     int
	fails  []time.Time
	sample []error
}

func startLoad(ctx context.Context, c *pgclient.Client, workers int) *load {
	l := &load{c: c, stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := selectOne(pgclient.Idempotent(cctx), c)
				cancel()
				l.mu.Lock()
				if err == nil {
					l.ok++
				} else {
					l.fails = append(l.fails, time.Now())
					if len(l.sample) < 5 {
						l.sample = append(l.sample, err)
					}
				}
				l.mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond) // a failing caller backs off a little
				}
			}
		})
	}
	return l
}

// finish stops the workers and waits for them; it may be called again.
func (l *load) finish() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// failuresBetween counts failures in [from, to).
func (l *load) failuresBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, f := range l.fails {
		if !f.Before(from) && f.Before(to) {
			n++
		}
	}
	return n
}

func (l *load) successes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// waitSteady waits until the load has run d with no failure and some
// successes, and returns when that began.
func (l *load) waitSteady(t *testing.T, d, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		from, okBefore := time.Now(), l.successes()
		time.Sleep(d)
		if l.failuresBetween(from, time.Now()) == 0 && l.successes() > okBefore {
			return from
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("the load did not run cleanly for %s within %s; sample errors: %v", d, within, l.sample)
	return time.Time{}
}

// TestServerRestartUnderLoad restarts PostgreSQL (fast, then immediate)
// under 32 concurrent workers: calls fail only while it is down, and the
// same client recovers fully.
func TestServerRestartUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cluster := testdb.NewCluster(t, pgembed.Config{})
	cfg := fastConfig(cluster.URL("postgres"))
	cfg.MinConns = 4
	cfg.MaxConns = 16
	cfg.QueryTimeout = 2 * time.Second
	cfg.AcquireTimeout = 2 * time.Second
	cfg.Breaker.FailureThreshold = 5
	cfg.Breaker.OpenTimeout = 200 * time.Millisecond
	cfg.Breaker.HalfOpenProbes = 2
	c := openClient(t, cfg)

	l := startLoad(ctx, c, 32)
	defer l.finish()
	l.waitSteady(t, 300*time.Millisecond, 20*time.Second)

	cleanSince := time.Time{}
	for _, mode := range []pgembed.StopMode{pgembed.StopFast, pgembed.StopImmediate} {
		downAt := time.Now()
		require.Zero(t, l.failuresBetween(cleanSince, downAt), "no failure before the %s restart", mode)
		require.NoError(t, cluster.Restart(ctx, mode), mode.String())
		upAt := time.Now()
		cleanSince = l.waitSteady(t, 500*time.Millisecond, 30*time.Second)
		t.Logf("%s restart: down for %s, %d failed calls, clean again %s after the restart",
			mode, upAt.Sub(downAt).Round(time.Millisecond), l.failuresBetween(downAt, cleanSince), cleanSince.Sub(upAt).Round(time.Millisecond))
		require.Equal(t, pgclient.BreakerClosed, c.BreakerStatus().State)
	}
	l.finish()
	require.Zero(t, l.failuresBetween(cleanSince, time.Now()))
	h := c.Health(ctx)
	require.Equal(t, pgclient.StatusHealthy, h.Status, "%v", h.Reasons)
}

// TestTerminatedBackendsUnderLoad kills every pool connection on the server
// (pg_terminate_backend) under load, twice: the client replaces them.
func TestTerminatedBackendsUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cfg := fastConfig(testdb.NewEmpty(t))
	cfg.ServiceName = serviceName(t)
	cfg.MinConns = 4
	cfg.MaxConns = 12
	cfg.QueryTimeout = 2 * time.Second
	cfg.Breaker.FailureThreshold = 5
	cfg.Breaker.OpenTimeout = 200 * time.Millisecond
	c := openClient(t, cfg)
	admin := pgConnect(t, testdb.AdminURL(t))

	l := startLoad(ctx, c, 32)
	defer l.finish()
	start := l.waitSteady(t, 300*time.Millisecond, 20*time.Second)
	for range 2 {
		var killed int
		require.NoError(t, admin.QueryRow(ctx,
			"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", cfg.ServiceName).Scan(&killed))
		require.Positive(t, killed)
		l.waitSteady(t, 300*time.Millisecond, 20*time.Second)
	}
	require.Zero(t, l.failuresBetween(time.Time{}, start))
	require.Equal(t, pgclient.BreakerClosed, c.BreakerStatus().State)
}
