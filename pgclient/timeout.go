package pgclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The client's two timeouts cost no timer per operation on the common path.
// A context with a deadline per operation costs allocations, a runtime timer
// and, for statements, pgx's watch of the context: together several percent
// of a point query (BenchmarkPointQuery).
//
//   - Acquire: a caller that must wait for a connection waits for a permit
//     (see permits) on its context and on the queue's one timer; taking the
//     connection from the pool once it holds a permit is bounded by a
//     deadline shared per slot of time (acquireDeadlines).
//   - Statements: each connection records when its current statement started
//     and the supervisor cancels statements past QueryTimeout (scanStatements),
//     as pgx does for a cancelled context: a cancel request to the server,
//     and the socket closed if the server has not answered within
//     CancelGrace.

// acquireDeadlines hands out shared acquire deadlines. A slot lasts
// slotWidth; every acquisition starting in it gets the deadline
// start-of-slot + slotWidth + timeout, so it may wait up to slotWidth longer
// than the timeout, never less.
type acquireDeadlines struct {
	timeout   time.Duration
	slotWidth time.Duration
	epoch     time.Time // of the monotonic times given to slot
	cur       atomic.Pointer[deadlineSlot]
}

type deadlineSlot struct {
	start  int64 // monotonic
	ctx    context.Context
	cancel context.CancelFunc
}

func newAcquireDeadlines(timeout time.Duration, epoch time.Time) *acquireDeadlines {
	return &acquireDeadlines{timeout: timeout, slotWidth: min(timeout/100, 10*time.Millisecond), epoch: epoch}
}

// slot returns the deadline slot for an acquisition starting at now, a
// monotonic time (see Client.monotonic).
func (d *acquireDeadlines) slot(now int64) *deadlineSlot {
	s := d.cur.Load()
	if s != nil && now >= s.start && time.Duration(now-s.start) < d.slotWidth {
		return s
	}
	ns := &deadlineSlot{start: now}
	dl := d.epoch.Add(time.Duration(now) + d.slotWidth + d.timeout)
	ns.ctx, ns.cancel = context.WithDeadlineCause(context.Background(), dl, errAcquireTimedOut)
	if s != nil && now < s.start {
		return ns // an earlier start than the current slot's: a slot of its own
	}
	if d.cur.CompareAndSwap(s, ns) {
		return ns
	}
	ns.cancel()
	return d.cur.Load()
}

// close releases the current slot's timer.
func (d *acquireDeadlines) close() {
	if s := d.cur.Swap(nil); s != nil {
		s.cancel()
	}
}

// sharedDeadlineCtx has the values of the caller's context and the deadline
// of a shared slot.
type sharedDeadlineCtx struct {
	values context.Context
	slot   *deadlineSlot
}

func (s *sharedDeadlineCtx) Deadline() (time.Time, bool) { return s.slot.ctx.Deadline() }
func (s *sharedDeadlineCtx) Done() <-chan struct{}       { return s.slot.ctx.Done() }
func (s *sharedDeadlineCtx) Err() error                  { return s.slot.ctx.Err() }
func (s *sharedDeadlineCtx) Value(key any) any           { return s.values.Value(key) }

// AfterFunc lets context.WithCancel and friends on this context hook into the
// slot instead of starting a goroutine.
func (s *sharedDeadlineCtx) AfterFunc(f func()) func() bool { return context.AfterFunc(s.slot.ctx, f) }

// acquireBound is a context bounded by AcquireTimeout for one acquisition.
type acquireBound struct {
	ctx  context.Context
	slot *deadlineSlot // the shared slot whose deadline bounds ctx; nil when ctx's own deadline is sooner
}

// expired reports whether the bound, not the caller's context, ended ctx.
func (b acquireBound) expired() bool { return b.slot != nil && b.slot.ctx.Err() != nil }

// acquireContext returns the context for taking a connection from the pool
// once the caller holds a permit: ctx bounded by AcquireTimeout from start (a
// monotonic time), through slot when one was taken at start. It shares the deadline of a slot rather than arming a
// timer per acquisition, and so does not see the caller's cancellation while
// pgxpool makes it wait: while a connection closed on release is still being
// destroyed, while a new one is opened (bounded by ConnectTimeout too), or
// while connections held outside the client's methods (Pool(), Health) fill
// the pool. Waits for a connection that the client's own callers hold end on
// the caller's context (see permits).
func (c *Client) acquireContext(ctx context.Context, start int64, slot *deadlineSlot) acquireBound {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= c.acquireTimeout {
		return acquireBound{ctx: ctx}
	}
	if slot == nil {
		slot = c.deadlines.slot(start)
	}
	if ctx == context.Background() || ctx == context.TODO() {
		return acquireBound{ctx: slot.ctx, slot: slot}
	}
	return acquireBound{ctx: &sharedDeadlineCtx{values: ctx, slot: slot}, slot: slot}
}

// strayCancelDelay is how long a cancel request that may have missed its
// statement is given to reach the backend (pgx uses the same delay).
const strayCancelDelay = 100 * time.Millisecond

// Statement states in connState.stmt besides a start time (> 0).
const (
	stmtIdle   int64 = 0
	stmtFiring int64 = -1
)

// startStatement records that a statement starts on the connection whose
// state is st, at now (the monotonic time, read here when 0), unless ctx
// ends before QueryTimeout would (pgx then cancels it on ctx). It returns
// what finishStatement needs (nil when the client does not time it).
func (c *Client) startStatement(ctx context.Context, st *connState, now int64) *connState {
	if st == nil {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= c.queryTimeout {
		return nil
	}
	if now == 0 {
		now = c.monotonic()
	}
	st.stmt.Store(max(now, 1))
	return st
}

// finishStatement ends the statement started by startStatement and, if the
// supervisor cancelled it, turns err into a query timeout error (after the
// cancellation has finished). A cancel that did not visibly end the statement
// may still be in flight and could hit the connection's next statement, so
// the connection is then closed when released.
func (c *Client) finishStatement(st *connState, err error) error {
	if st == nil || st.stmt.Swap(stmtIdle) != stmtFiring {
		return err
	}
	<-st.cancelDone
	if !st.pg.IsClosed() {
		_ = st.pg.Conn().SetDeadline(time.Time{})
	}
	if !isQueryCanceled(err) {
		// The statement ended on its own as the cancel went out: the cancel
		// may yet reach the backend. Close the connection on release, and
		// give the cancel time to land before the holder's next statement,
		// as pgx does after its own cancel requests.
		st.discard = true
		time.Sleep(strayCancelDelay)
	}
	if err == nil {
		return nil
	}
	c.stats.queryTimeouts.Add(1)
	return fmt.Errorf("%w after %s: %w: %w", ErrQueryTimeout, c.queryTimeout, context.DeadlineExceeded, err)
}

// monotonic is the time since Open on the monotonic clock, in nanoseconds.
// It is cheaper to read than time.Now, and always positive.
func (c *Client) monotonic() int64 { return int64(time.Since(c.epoch)) + 1 }

// since is the time elapsed since the monotonic time t.
func (c *Client) since(t int64) time.Duration { return time.Duration(c.monotonic() - t) }

// scanStatements cancels every statement running longer than QueryTimeout.
func (c *Client) scanStatements() {
	now := c.monotonic()
	limit := int64(c.queryTimeout)
	c.conns.each(func(st *connState) {
		start := st.stmt.Load()
		if start <= 0 || now-start < limit || !st.stmt.CompareAndSwap(start, stmtFiring) {
			return
		}
		if !c.background(func() { c.cancelStatement(st) }) {
			st.cancelDone <- struct{}{} // closing: nothing to cancel with
		}
	})
}

// cancelStatement asks the server to cancel st's statement. It runs on its
// own goroutine and touches only what is safe while the holder reads: the
// socket deadline and a cancel request on a separate connection.
func (c *Client) cancelStatement(st *connState) {
	defer func() { st.cancelDone <- struct{}{} }()
	grace := c.cfg.CancelGrace
	if grace <= 0 {
		_ = st.pg.Conn().SetDeadline(time.Now())
		return
	}
	// The deadline is the fallback if the server does not answer the cancel
	// request: the read then fails and pgx closes the connection.
	_ = st.pg.Conn().SetDeadline(time.Now().Add(grace))
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	_ = st.pg.CancelRequest(ctx)
	cancel()
}

// isQueryCanceled reports whether the server cancelled the statement
// (SQLSTATE 57014, query_canceled).
func isQueryCanceled(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57014"
}
