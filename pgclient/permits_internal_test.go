package pgclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPermitsFIFO(t *testing.T) {
	p := newPermits(1, time.Now())
	require.True(t, p.tryAcquire())
	require.False(t, p.tryAcquire())

	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			require.NoError(t, p.acquire(context.Background(), 0))
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			p.release()
		})
		// Queue them in order.
		require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.waiters) == i+1 }, time.Second, time.Millisecond)
	}
	p.release()
	wg.Wait()
	require.Equal(t, []int{0, 1, 2}, order)
	require.Equal(t, 1, p.free)
	// A free permit is not taken past a waiter: tryAcquire fails while one waits.
	require.True(t, p.tryAcquire())
	done := make(chan error)
	go func() { done <- p.acquire(context.Background(), 0) }()
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.waiters) == 1 }, time.Second, time.Millisecond)
	p.release()
	require.NoError(t, <-done)
	require.False(t, p.tryAcquire())
	p.release()
}

func TestPermitsWaitEnds(t *testing.T) {
	p := newPermits(1, time.Now())
	require.True(t, p.tryAcquire())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.acquire(ctx, 0) }()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	// The queue's timer ends a wait at its deadline.
	start := time.Now()
	require.ErrorIs(t, p.acquire(context.Background(), p.now()+int64(20*time.Millisecond)), errAcquireTimedOut)
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)

	// Expiry ends only the waits past their deadline, wherever they are in
	// the queue, and re-arms for the next deadline.
	errs := make(chan error, 2)
	queued := func(n int) func() bool {
		return func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.waiters) == n }
	}
	go func() { errs <- p.acquire(context.Background(), 0) }()
	require.Eventually(t, queued(1), time.Second, time.Millisecond)
	go func() { errs <- p.acquire(context.Background(), p.now()+int64(time.Hour)) }()
	require.Eventually(t, queued(2), time.Second, time.Millisecond)
	go func() { done <- p.acquire(context.Background(), p.now()+int64(2*time.Hour)) }()
	require.Eventually(t, queued(3), time.Second, time.Millisecond)
	p.mu.Lock()
	p.waiters[1].deadline = 1 // long past
	p.mu.Unlock()
	p.expire()
	require.ErrorIs(t, <-errs, errAcquireTimedOut)
	p.mu.Lock()
	require.Len(t, p.waiters, 2)
	require.True(t, p.armed, "armed for the next deadline")
	p.waiters[1].deadline = 1
	p.mu.Unlock()
	p.expire()
	require.ErrorIs(t, <-done, errAcquireTimedOut)
	p.release() // to the waiter without a deadline
	require.NoError(t, <-errs)

	p.mu.Lock()
	require.Empty(t, p.waiters, "abandoned waiters leave the queue")
	p.mu.Unlock()
	p.release()
	require.Equal(t, 1, p.free)

	require.True(t, p.tryAcquire())
	go func() { done <- p.acquire(context.Background(), 0) }()
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.waiters) == 1 }, time.Second, time.Millisecond)
	p.close()
	require.ErrorIs(t, <-done, ErrClosed)
	require.ErrorIs(t, p.acquire(context.Background(), 0), ErrClosed)
}

// TestPermitsNoneLost races grants against abandoned waits: every permit
// handed to a waiter that gave up at the same moment is passed on, so the
// count of permits is unchanged at the end.
func TestPermitsNoneLost(t *testing.T) {
	const n = 3
	p := newPermits(n, time.Now())
	var held, maxHeld atomic.Int32
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 300 {
				ctx, cancel := context.WithCancel(context.Background())
				if (i+j)%3 == 0 {
					cancel()
				}
				err := p.acquire(ctx, 0)
				cancel()
				if err != nil {
					require.True(t, errors.Is(err, context.Canceled))
					continue
				}
				h := held.Add(1)
				for {
					m := maxHeld.Load()
					if h <= m || maxHeld.CompareAndSwap(m, h) {
						break
					}
				}
				held.Add(-1)
				p.release()
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, maxHeld.Load(), int32(n))
	require.Equal(t, n, p.free)
	require.Empty(t, p.waiters)
}
