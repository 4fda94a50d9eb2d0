package pgclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// op names a Client operation, for its retry policy (retryableOp).
type op uint8

const (
	opExec op = iota
	opQuery
	opQueryRow
	opBatch
	opCopy
	opBegin
	opAcquire
)

// Every Client operation makes one attempt inline, which costs no allocation
// of its own, and enters the retry loop only after a failure that may be
// retried (see retryableOp): the closed check, the circuit breaker and the
// connection come from admit; the outcome goes to the breaker through
// lease.done, by the operation itself or by what outlives it (the rows of
// Query, the row of QueryRow, the results of SendBatch).

// lease is a connection admitted for one operation.
type lease struct {
	pc   *pgxpool.Conn
	st   *connState  // nil only for a connection the client did not open
	at   int64       // when it was acquired (monotonic, see Client.monotonic)
	done func(error) // reports the operation's outcome to the breaker
}

// admit checks that the client is open, passes the circuit breaker and
// acquires a connection. On error the breaker has been told.
func (c *Client) admit(ctx context.Context) (lease, error) {
	if c.closed.Load() {
		return lease{}, ErrClosed
	}
	done, err := c.res.breaker.allow()
	if err != nil {
		return lease{}, err
	}
	l, err := c.acquire(ctx)
	if err != nil {
		done(err)
		return lease{}, err
	}
	l.done = done
	return l, nil
}

// again retries an operation of kind o whose first attempt failed with
// first, under the statement retry policy, when that failure may be retried.
// attempt makes one more attempt (admit included).
func (c *Client) again(ctx context.Context, o op, first error, attempt func() error) error {
	if c.res.policies[retryStatement].retries <= 0 || !retryableOp(ctx, o, first) {
		return first
	}
	return c.res.retry(ctx, retryStatement, func(err error) bool { return retryableOp(ctx, o, err) }, func(n int) error {
		if n == 1 {
			return first
		}
		return attempt()
	})
}

// retryableOp reports whether an operation of kind o that failed with err
// may be attempted again (see docs/resilience.md):
//
//   - Begin and Acquire: on any transient failure (a lost BEGIN leaves no
//     transaction behind);
//   - Exec, Query, QueryRow: on a transient failure when nothing was sent,
//     or when ctx is marked Idempotent;
//   - SendBatch and CopyFrom: only when no connection could be had, since
//     their input is consumed as it is sent;
//
// and never on ErrUnavailable, ErrPoolExhausted or the caller's
// cancellation.
func retryableOp(ctx context.Context, o op, err error) bool {
	switch o {
	case opBegin, opAcquire:
		return Classify(err) == ClassTransient && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrPoolExhausted)
	case opBatch, opCopy:
		var ns *notSentError
		return errors.As(err, &ns) && retryableStatement(ctx, err)
	}
	return retryableStatement(ctx, err)
}

// acquire takes a connection from the pool, waiting at most AcquireTimeout
// (or until ctx ends, if sooner): first for a permit (see permits), then for
// the pool to hand over an idle connection or open one.
func (c *Client) acquire(ctx context.Context) (lease, error) {
	start := c.monotonic()
	var slot *deadlineSlot // the pool stage's deadline, when taken at start
	if !c.permits.tryAcquire() {
		var deadline int64 // none when ctx ends sooner
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.acquireTimeout {
			deadline = start + int64(c.acquireTimeout)
			// Taken now, not after the wait: by then the current slot may
			// have started later than start, and its deadline would be too.
			slot = c.deadlines.slot(start)
		}
		c.stats.waiting.Add(1)
		err := c.permits.acquire(ctx, deadline)
		c.stats.waiting.Add(-1)
		wait := c.since(start)
		c.stats.permitWaits.Add(1)
		c.stats.permitWaitNanos.Add(int64(wait))
		if err != nil {
			return lease{}, c.acquireFailed(ctx, wait, err == errAcquireTimedOut, err)
		}
	}
	bound := c.acquireContext(ctx, start, slot)
	pc, err := c.pool.Acquire(bound.ctx)
	now := c.monotonic()
	wait := time.Duration(now - start)
	if err != nil {
		c.permits.release()
		return lease{}, c.acquireFailed(ctx, wait, bound.expired(), err)
	}
	st := stateOf(pc.Conn())
	if st == nil {
		// Not one of the client's connections (it cannot be told apart
		// when released): give the permit back now.
		c.permits.release()
		return lease{pc: pc, at: now}, nil
	}
	st.permit = true
	st.ctr.acquireHist.observe(acquireBuckets, wait)
	if c.leakThreshold > 0 {
		st.hold.at.Store(now)
	}
	return lease{pc: pc, st: st, at: now}, nil
}

// release returns a connection taken by acquire to the pool, then its
// permit: in that order, so that the waiter the permit goes to finds the
// connection back in the pool.
func (c *Client) release(pc *pgxpool.Conn) {
	st := stateOf(pc.Conn())
	permit := st != nil && st.permit
	if permit {
		st.permit = false
	}
	pc.Release()
	if permit {
		c.permits.release()
	}
}

// acquireFailed counts and classifies a failed acquisition (see
// acquireError). Nothing was sent for the operation yet: it is safe to retry.
func (c *Client) acquireFailed(ctx context.Context, wait time.Duration, timedOut bool, err error) error {
	c.stats.failedAcquireHist.observeShared(acquireBuckets, wait)
	return markNotSent(c.acquireError(ctx, timedOut, wait, err))
}

// acquireError classifies a failed acquire. Only the client's own deadline
// expiring means the pool is exhausted; the caller's cancellation is passed
// through and is not counted as a failed acquisition.
func (c *Client) acquireError(ctx context.Context, timedOut bool, wait time.Duration, err error) error {
	switch {
	case c.closed.Load():
		return ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("pgclient: acquire connection: %w", err)
	case timedOut:
		c.stats.failedAcquires.Add(1)
		s := c.pool.Stat()
		return fmt.Errorf("%w: no connection free after %s (acquire_timeout %s; %d of %d in use, %d waiting)",
			ErrPoolExhausted, wait.Round(time.Millisecond), c.acquireTimeout,
			s.AcquiredConns(), s.MaxConns(), c.stats.waiting.Load())
	default:
		c.stats.failedAcquires.Add(1)
		return fmt.Errorf("pgclient: acquire connection: %w", err)
	}
}

// Exec runs sql (an SQL string or the name of a PrepareOnConnect statement)
// on a pooled connection and returns the command tag. It waits at most
// AcquireTimeout for a connection (ErrPoolExhausted) and QueryTimeout for the
// statement (ErrQueryTimeout), or less if ctx ends sooner.
func (c *Client) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := c.execOnce(ctx, sql, args)
	if err != nil {
		err = c.again(ctx, opExec, err, func() (err error) {
			tag, err = c.execOnce(ctx, sql, args)
			return err
		})
	}
	return tag, err
}

func (c *Client) execOnce(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	l, err := c.admit(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := c.exec(ctx, l.st, l.at, l.pc.Conn(), sql, args)
	c.release(l.pc)
	l.done(err)
	return tag, err
}

// querier is what runs statements: a *pgx.Conn or a pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// The statement helpers below run on q, a connection or a transaction on it,
// under the statement timer of the connection's state st; now is the current
// monotonic time when the caller has just read it, else 0 (see
// startStatement).

func (c *Client) exec(ctx context.Context, st *connState, now int64, q querier, sql string, args []any) (pgconn.CommandTag, error) {
	timer := c.startStatement(ctx, st, now)
	tag, err := q.Exec(ctx, sql, args...)
	return tag, c.finishStatement(timer, err)
}

// Query runs sql on a pooled connection. The connection stays acquired (and
// the query timeout running) until the returned rows are closed or read to
// the end: rows that are never closed are a leak. On error the returned rows
// are closed and carry the error too, as with pgx.
func (c *Client) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rs, err := c.queryOnce(ctx, sql, args)
	if err != nil {
		err = c.again(ctx, opQuery, err, func() (err error) {
			rs, err = c.queryOnce(ctx, sql, args)
			return err
		})
	}
	if err != nil {
		return &errRows{err: err}, err
	}
	return rs, nil
}

func (c *Client) queryOnce(ctx context.Context, sql string, args []any) (*rows, error) {
	l, err := c.admit(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := c.query(ctx, l.st, l.at, l.pc.Conn(), l.pc, sql, args)
	if err != nil {
		l.done(err)
		return nil, err
	}
	rs.done = l.done
	return rs, nil
}

// query runs sql; pc, when not nil, is released when the rows close.
func (c *Client) query(ctx context.Context, st *connState, now int64, q querier, pc *pgxpool.Conn, sql string, args []any) (*rows, error) {
	timer := c.startStatement(ctx, st, now)
	r, err := q.Query(ctx, sql, args...)
	if err != nil {
		err = c.finishStatement(timer, err)
		if pc != nil {
			c.release(pc)
		}
		return nil, err
	}
	return &rows{r: r, c: c, st: timer, pc: pc}, nil
}

// QueryRow runs sql on a pooled connection; the connection is released when
// Scan is called. Errors, ErrPoolExhausted included, are returned by Scan.
// A transient failure is retried within Scan when nothing was sent or ctx is
// marked Idempotent (RetryConfig.StatementRetries).
func (c *Client) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	l, err := c.admit(ctx)
	if err != nil {
		err = c.again(ctx, opQueryRow, err, func() (err error) {
			l, err = c.admit(ctx)
			return err
		})
		if err != nil {
			return &errRow{err: err}
		}
	}
	r := c.queryRow(ctx, l.st, l.at, l.pc.Conn(), l.pc, sql, args)
	r.done = l.done
	r.ctx, r.sql, r.args, r.retry = ctx, sql, args, true
	return r
}

func (c *Client) queryRow(ctx context.Context, st *connState, now int64, q querier, pc *pgxpool.Conn, sql string, args []any) *row {
	timer := c.startStatement(ctx, st, now)
	return &row{r: q.QueryRow(ctx, sql, args...), c: c, st: timer, pc: pc}
}

// SendBatch sends every queued statement of b in one round trip (pipeline)
// on a pooled connection. The connection is released when the results are
// closed, or, when b began a transaction (pgx.Batch.BeginTx), when that
// transaction ends. Errors, ErrPoolExhausted included, are returned by the
// results' methods.
func (c *Client) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	l, err := c.admit(ctx)
	if err != nil {
		err = c.again(ctx, opBatch, err, func() (err error) {
			l, err = c.admit(ctx)
			return err
		})
		if err != nil {
			return pgx.FailedBatchResults(b, err)
		}
	}
	res := c.sendBatch(ctx, l.st, l.at, l.pc.Conn(), l.pc, b)
	res.done = l.done
	return res
}

func (c *Client) sendBatch(ctx context.Context, st *connState, now int64, q querier, pc *pgxpool.Conn, b *pgx.Batch) *batchResults {
	timer := c.startStatement(ctx, st, now)
	res := &batchResults{br: q.SendBatch(ctx, b), c: c, st: timer, pc: pc}
	if t := res.br.Tx(); t != nil {
		// The transaction owns the connection from here on.
		res.tx = &tx{tx: t, c: c, pc: pc, st: st}
		res.pc = nil
	}
	return res
}

// CopyFrom copies rows into table with the COPY protocol on a pooled
// connection and returns the number of rows copied. The whole copy is one
// statement for QueryTimeout.
func (c *Client) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	n, err := c.copyOnce(ctx, table, columns, src)
	if err != nil {
		err = c.again(ctx, opCopy, err, func() (err error) {
			n, err = c.copyOnce(ctx, table, columns, src)
			return err
		})
	}
	return n, err
}

func (c *Client) copyOnce(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	l, err := c.admit(ctx)
	if err != nil {
		return 0, err
	}
	n, err := c.copyFrom(ctx, l.st, l.at, l.pc.Conn(), table, columns, src)
	c.release(l.pc)
	l.done(err)
	return n, err
}

func (c *Client) copyFrom(ctx context.Context, st *connState, now int64, q querier, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	timer := c.startStatement(ctx, st, now)
	n, err := q.CopyFrom(ctx, table, columns, src)
	return n, c.finishStatement(timer, err)
}

// Acquire takes a connection from the pool for a sequence of statements
// (session settings, advisory locks, LISTEN). The caller must Release it; it
// counts as held, for leak detection, until then. Statements on it still get
// QueryTimeout.
func (c *Client) Acquire(ctx context.Context) (*Conn, error) {
	l, err := c.admit(ctx)
	if err != nil {
		err = c.again(ctx, opAcquire, err, func() (err error) {
			l, err = c.admit(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	l.done(nil)
	return &Conn{c: c, pc: l.pc, st: l.st}, nil
}
