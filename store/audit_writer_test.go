package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// dropCounter counts OnDrop calls by reason.
type dropCounter struct {
	mu sync.Mutex
	n  map[store.DropReason]int
}

func (d *dropCounter) hook(r store.DropReason, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = make(map[store.DropReason]int)
	}
	d.n[r] += n
}

func (d *dropCounter) get(r store.DropReason) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[r]
}

func auditEvent(i int) store.AuditEvent {
	return store.AuditEvent{Type: "hook.signature_invalid", ClientInfo: map[string]any{"n": i}}
}

func TestAuditWriterWritesAndFlushesOnClose(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	w, err := store.NewAuditWriter(b.store, store.AuditWriterConfig{BatchSize: 50})
	require.NoError(t, err)
	for i := range 1000 {
		require.True(t, w.Write(auditEvent(i)))
	}
	require.NoError(t, w.Close(opsCtx(t)))
	st := w.Stats()
	require.Equal(t, uint64(1000), st.Written)
	require.Empty(t, st.Dropped)
	require.Equal(t, int64(1000), b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log`))
	require.Equal(t, int64(1000), b.scalar(t, `SELECT count(DISTINCT client_info->>'n') FROM omnibridge.security_audit_log`))

	require.False(t, w.Write(auditEvent(0)), "closed")
	require.Equal(t, uint64(1), w.Stats().Dropped[store.DropClosed])
	require.NoError(t, w.Close(opsCtx(t)), "a second Close is harmless")
}

// TestAuditWriterNeverBlocksOnASlowDatabase holds a lock that stalls every
// insert into the audit log, then writes far more events than the queue
// holds: every Write returns while the lock is held, the overflow is counted
// as dropped, and once the lock goes Close writes what was queued.
func TestAuditWriterNeverBlocksOnASlowDatabase(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	blocker, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, `LOCK TABLE omnibridge.security_audit_log IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	var drops dropCounter
	const capacity, writers, each = 100, 8, 500
	w, err := store.NewAuditWriter(b.store, store.AuditWriterConfig{Capacity: capacity, BatchSize: 10, OnDrop: drops.hook})
	require.NoError(t, err)

	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					if w.Write(auditEvent(g*each + i)) {
						accepted.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Write blocked while the audit log was locked")
	}
	// The writer goroutine holds at most one batch while it waits on the lock.
	require.LessOrEqual(t, accepted.Load(), int64(capacity+10))
	st := w.Stats()
	require.Zero(t, st.Written, "nothing can commit while the lock is held")
	require.Equal(t, uint64(writers*each)-uint64(accepted.Load()), st.Dropped[store.DropQueueFull])
	require.Equal(t, int(st.Dropped[store.DropQueueFull]), drops.get(store.DropQueueFull), "OnDrop sees every drop")

	require.NoError(t, blocker.Rollback(ctx))
	require.NoError(t, w.Close(ctx))
	st = w.Stats()
	require.Equal(t, uint64(accepted.Load()), st.Written)
	require.Equal(t, int64(st.Written), b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log`))
}

// TestAuditWriterCloseIsBounded closes a writer whose database never answers:
// Close returns when its context ends, counts what it abandoned, and leaves no
// goroutine behind (TestMain checks).
func TestAuditWriterCloseIsBounded(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	blocker, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, blocker.Rollback(ctx)) }()
	_, err = blocker.Exec(ctx, `LOCK TABLE omnibridge.security_audit_log IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	w, err := store.NewAuditWriter(b.store, store.AuditWriterConfig{WriteTimeout: time.Minute})
	require.NoError(t, err)
	for i := range 20 {
		require.True(t, w.Write(auditEvent(i)))
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = w.Close(cctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st := w.Stats()
	require.Zero(t, st.Written)
	require.Equal(t, uint64(20), st.Dropped[store.DropClosed])
}

func TestAuditWriterDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: every write fails at once.
	cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer pool.Close()
	var drops dropCounter
	w, err := store.NewAuditWriter(store.New(pool), store.AuditWriterConfig{
		Capacity: 10, MaxAttempts: 2, RetryDelay: time.Millisecond, OnDrop: drops.hook,
	})
	require.NoError(t, err)
	for i := range 50 {
		w.Write(auditEvent(i))
	}
	require.NoError(t, w.Close(opsCtx(t)))
	st := w.Stats()
	require.Zero(t, st.Written)
	require.Equal(t, uint64(50), st.Dropped[store.DropWriteFailed]+st.Dropped[store.DropQueueFull])
	require.NotZero(t, st.Dropped[store.DropWriteFailed])
	require.Equal(t, int(st.Dropped[store.DropWriteFailed]), drops.get(store.DropWriteFailed))

	// An event that cannot be stored is dropped at Write, not at the database.
	require.False(t, w.Write(store.AuditEvent{}))
}

// fakeClock is a settable clock for the rate limiter.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestAuditWriterRateLimit(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	b := setupOps(t, store.WithClock(clock.now))
	ctx := opsCtx(t)
	var drops dropCounter
	w, err := store.NewAuditWriter(b.store, store.AuditWriterConfig{
		LimitBurst: 5, LimitEvery: time.Hour, MaxLimitKeys: 3, OnDrop: drops.hook,
	})
	require.NoError(t, err)

	// A flood from one address: the burst passes, the rest is counted.
	for i := range 100 {
		w.WriteLimited("hook.signature_invalid 203.0.113.7", auditEvent(i))
	}
	// Another address has its own bucket.
	for i := range 3 {
		require.True(t, w.WriteLimited("hook.signature_invalid 198.51.100.1", auditEvent(1000+i)))
	}
	require.Equal(t, 95, drops.get(store.DropRateLimited))

	// Five hours later the bucket is full again: the next event passes and
	// carries the count of what was suppressed since the last row.
	clock.advance(5 * time.Hour)
	require.True(t, w.WriteLimited("hook.signature_invalid 203.0.113.7", auditEvent(100)))
	for i := range 4 {
		require.True(t, w.WriteLimited("hook.signature_invalid 203.0.113.7", auditEvent(101+i)))
	}
	for i := range 10 {
		require.False(t, w.WriteLimited("hook.signature_invalid 203.0.113.7", auditEvent(105+i)))
	}

	// Keys beyond MaxLimitKeys share one bucket (burst 5).
	passed := 0
	for i := range 20 {
		if w.WriteLimited(fmt.Sprintf("key-%d", i), auditEvent(2000+i)) {
			passed++
		}
	}
	// key-0 fits; key-1 fits after the sweep forgets the idle 198.51.100.1;
	// the others share the overflow bucket and its burst of 5.
	require.Equal(t, 1+1+5, passed)

	// Close writes a summary of the flood that was still being suppressed.
	require.NoError(t, w.Close(ctx))

	var rows, represented int64
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT count(*), sum(1 + coalesce((client_info->>'suppressed')::int, 0))
		FROM omnibridge.security_audit_log
		WHERE (client_info->>'n')::int < 1000`).Scan(&rows, &represented))
	require.Equal(t, int64(5+5+1), rows, "two bursts and one summary")
	require.Equal(t, int64(115), represented, "every event of the flood is written or counted")
	require.Equal(t, int64(95), b.scalar(t, `SELECT (client_info->>'suppressed')::int FROM omnibridge.security_audit_log
		WHERE (client_info->>'n')::int = 100`))
	require.Equal(t, int64(9), b.scalar(t, `SELECT (client_info->>'suppressed')::int FROM omnibridge.security_audit_log
		WHERE (client_info->>'n')::int = 114`), "the summary row is the last suppressed event")
	require.Equal(t, int64(3), b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log WHERE (client_info->>'n')::int BETWEEN 1000 AND 1999`))
}

func TestAuditWriterConfigValidate(t *testing.T) {
	t.Parallel()
	err := store.AuditWriterConfig{Capacity: -1, BatchSize: -2, LimitEvery: -time.Second}.WithDefaults().Validate()
	require.Error(t, err)
	for _, field := range []string{"capacity", "batch_size", "limit_every"} {
		require.Contains(t, err.Error(), field)
	}
	require.NoError(t, store.AuditWriterConfig{}.WithDefaults().Validate())
}
