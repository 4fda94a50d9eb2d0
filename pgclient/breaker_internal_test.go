package pgclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// changeLog collects breaker transitions.
type changeLog struct {
	mu sync.Mutex
	ch []BreakerChange
}

func (l *changeLog) add(c BreakerChange) {
	l.mu.Lock()
	l.ch = append(l.ch, c)
	l.mu.Unlock()
}

func (l *changeLog) states() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.ch {
		out = append(out, c.From.String()+"→"+c.To.String())
	}
	return out
}

func testBreaker(t *testing.T, cfg BreakerConfig) (*breaker, *changeLog) {
	t.Helper()
	cfg = cfg.WithDefaults()
	require.NoError(t, cfg.Validate())
	log := &changeLog{}
	return newBreaker(cfg, "svc", log.add), log
}

// run passes one operation with outcome err through b.
func run(t *testing.T, b *breaker, err error) error {
	t.Helper()
	done, aerr := b.allow()
	if aerr != nil {
		return aerr
	}
	done(err)
	return nil
}

var (
	errTransient = &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	errUnique    = &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}
)

func TestBreakerCountsOnlyTransientFailures(t *testing.T) {
	t.Parallel()
	b, log := testBreaker(t, BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Hour})

	for range 1000 {
		require.NoError(t, run(t, b, errUnique))
		require.NoError(t, run(t, b, fmt.Errorf("query: %w", context.Canceled)))
	}
	require.Equal(t, BreakerClosed, b.status().State, "permanent errors and cancellations never trip it")

	// Two transient failures, then a success: the run of failures restarts.
	require.NoError(t, run(t, b, errTransient))
	require.NoError(t, run(t, b, errTransient))
	require.NoError(t, run(t, b, nil))
	require.NoError(t, run(t, b, errTransient))
	require.NoError(t, run(t, b, errTransient))
	require.Equal(t, BreakerClosed, b.status().State)
	require.NoError(t, run(t, b, context.DeadlineExceeded)) // a timeout is transient
	s := b.status()
	require.Equal(t, BreakerOpen, s.State)
	require.Contains(t, s.Reason, "deadline exceeded")
	require.Equal(t, []string{"closed→open"}, log.states())

	err := run(t, b, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	require.True(t, IsTransient(err), "callers retry later")
	d, ok := RetryAfter(err)
	require.True(t, ok)
	require.InDelta(t, time.Hour.Seconds(), d.Seconds(), 60)
	require.Contains(t, err.Error(), "next probe in")
	require.Contains(t, err.Error(), "deadline exceeded")
	_, ok = RetryAfter(errTransient)
	require.False(t, ok)
}

func TestBreakerHalfOpenProbes(t *testing.T) {
	t.Parallel()
	const openFor = 50 * time.Millisecond
	b, log := testBreaker(t, BreakerConfig{FailureThreshold: 1, OpenTimeout: openFor, HalfOpenProbes: 2})

	require.NoError(t, run(t, b, errTransient))
	require.Equal(t, BreakerOpen, b.status().State)
	time.Sleep(openFor + 20*time.Millisecond)

	// Half-open: two probes in flight, a third is refused.
	done1, err := b.allow()
	require.NoError(t, err)
	done2, err := b.allow()
	require.NoError(t, err)
	_, err = b.allow()
	var ue *UnavailableError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, BreakerHalfOpen, ue.State)
	require.Equal(t, halfOpenRetryAfter, ue.RetryAfter)
	require.Equal(t, BreakerHalfOpen, b.status().State)

	// A permanent error is a success for the breaker: the server answered.
	done1(errUnique)
	done2(nil)
	require.Equal(t, BreakerClosed, b.status().State)

	// Open again; this time a probe fails and the breaker reopens.
	require.NoError(t, run(t, b, errTransient))
	time.Sleep(openFor + 20*time.Millisecond)
	require.NoError(t, run(t, b, fmt.Errorf("read: %w", errTransient)))
	require.Equal(t, BreakerOpen, b.status().State)
	require.Equal(t, []string{
		"closed→open", "open→half-open", "half-open→closed",
		"closed→open", "open→half-open", "half-open→open",
	}, log.states())
	log.mu.Lock()
	last := log.ch[len(log.ch)-1]
	log.mu.Unlock()
	require.Contains(t, last.Reason, "a probe failed")
	require.False(t, last.RetryAt.IsZero())
}

func TestBreakerCancelledProbeFreesItsSlot(t *testing.T) {
	t.Parallel()
	const openFor = 30 * time.Millisecond
	b, _ := testBreaker(t, BreakerConfig{FailureThreshold: 1, OpenTimeout: openFor, HalfOpenProbes: 1})
	require.NoError(t, run(t, b, errTransient))
	time.Sleep(openFor + 20*time.Millisecond)
	require.NoError(t, run(t, b, context.Canceled), "the caller gave up: no verdict")
	require.Equal(t, BreakerHalfOpen, b.status().State)
	require.NoError(t, run(t, b, nil), "the slot is free again")
	require.Equal(t, BreakerClosed, b.status().State)
}

func TestBreakerFailureRatio(t *testing.T) {
	t.Parallel()
	b, _ := testBreaker(t, BreakerConfig{FailureThreshold: 100, FailureRatio: 0.5, MinRequests: 10, Window: time.Minute, OpenTimeout: time.Hour})
	// Alternating failures never make a run of 100, but half of them fail.
	for i := range 8 {
		err := error(nil)
		if i%2 == 0 {
			err = errTransient
		}
		require.NoError(t, run(t, b, err))
	}
	require.Equal(t, BreakerClosed, b.status().State, "fewer than MinRequests")
	require.NoError(t, run(t, b, nil))
	require.NoError(t, run(t, b, errTransient)) // 10 finished, 5 failed
	require.Equal(t, BreakerOpen, b.status().State)
}

func TestBreakerDisabled(t *testing.T) {
	t.Parallel()
	cfg := BreakerConfig{FailureThreshold: -1}.WithDefaults()
	require.NoError(t, cfg.Validate())
	b := newBreaker(cfg, "svc", nil)
	require.Nil(t, b)
	for range 100 {
		require.NoError(t, run(t, b, errTransient))
	}
	require.Equal(t, BreakerClosed, b.status().State)
}

func TestBreakerConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	err := BreakerConfig{FailureThreshold: 5, FailureRatio: 2, Window: time.Microsecond, MinRequests: -1, OpenTimeout: -time.Second, HalfOpenProbes: -2}.Validate()
	require.Error(t, err)
	for _, field := range []string{"breaker.failure_ratio", "breaker.window", "breaker.min_requests", "breaker.open_timeout", "breaker.half_open_probes"} {
		require.ErrorContains(t, err, field)
	}
	var ce *ConfigError
	require.True(t, errors.As(err, &ce))
}
