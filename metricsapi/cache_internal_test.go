package metricsapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestResultCacheSharesAndExpires(t *testing.T) {
	t.Parallel()
	c := newResultCache(5 * time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	var calls atomic.Int32
	release := make(chan struct{})
	compute := func(context.Context) (any, error) {
		calls.Add(1)
		<-release
		return map[string]int{"n": int(calls.Load())}, nil
	}

	// Concurrent requests share one computation.
	var wg sync.WaitGroup
	bodies := make([][]byte, 8)
	for i := range bodies {
		wg.Go(func() {
			b, err := c.get(context.Background(), "k", time.Second, compute)
			require.NoError(t, err)
			bodies[i] = b
		})
	}
	require.Eventually(t, func() bool { return calls.Load() == 1 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.EqualValues(t, 1, calls.Load())
	for _, b := range bodies {
		require.JSONEq(t, `{"n": 1}`, string(b))
	}

	// Within the TTL the result is reused; after it, computed again.
	b, err := c.get(context.Background(), "k", time.Second, compute)
	require.NoError(t, err)
	require.JSONEq(t, `{"n": 1}`, string(b))
	now = now.Add(5 * time.Second)
	b, err = c.get(context.Background(), "k", time.Second, compute)
	require.NoError(t, err)
	require.JSONEq(t, `{"n": 2}`, string(b))
	// Another key is its own.
	_, err = c.get(context.Background(), "other", time.Second, compute)
	require.NoError(t, err)
	require.EqualValues(t, 3, calls.Load())
}

func TestResultCacheKeepsNoErrors(t *testing.T) {
	t.Parallel()
	c := newResultCache(time.Hour)
	fail := errors.New("database down")
	_, err := c.get(context.Background(), "k", time.Second, func(context.Context) (any, error) { return nil, fail })
	require.ErrorIs(t, err, fail)
	b, err := c.get(context.Background(), "k", time.Second, func(context.Context) (any, error) { return 1, nil })
	require.NoError(t, err)
	require.Equal(t, "1", string(b))
}

func TestResultCacheOff(t *testing.T) {
	t.Parallel()
	c := newResultCache(-1)
	var calls int
	for range 3 {
		_, err := c.get(context.Background(), "k", time.Second, func(context.Context) (any, error) { calls++; return calls, nil })
		require.NoError(t, err)
	}
	require.Equal(t, 3, calls)
}

func TestResultCacheWaiterLeavesWithoutFailingOthers(t *testing.T) {
	t.Parallel()
	c := newResultCache(time.Hour)
	release := make(chan struct{})
	var sawCancel atomic.Bool
	compute := func(ctx context.Context) (any, error) {
		<-release
		sawCancel.Store(ctx.Err() != nil)
		return "done", nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := c.get(ctx, "k", time.Minute, compute)
		left <- err
	}()
	stayed := make(chan []byte, 1)
	go func() {
		time.Sleep(10 * time.Millisecond)
		b, err := c.get(context.Background(), "k", time.Minute, compute)
		require.NoError(t, err)
		stayed <- b
	}()
	cancel()
	require.ErrorIs(t, <-left, context.Canceled)
	close(release)
	require.Equal(t, `"done"`, string(<-stayed))
	require.False(t, sawCancel.Load(), "the computation outlives the waiter that left")
}

func TestResultCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := newResultCache(time.Hour)
	for i := range maxCacheEntries + 50 {
		_, err := c.get(context.Background(), fmt.Sprint(i), time.Second, func(context.Context) (any, error) { return i, nil })
		require.NoError(t, err)
	}
	require.Len(t, c.entries, maxCacheEntries)
}
