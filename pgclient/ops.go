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

// op names a Client operation, for the policy in run.
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

// run is the one path every Client operation takes, and where the policy
// around a whole operation applies: the closed check, the circuit breaker,
// and retries. fn acquires its connection and applies the query timeout
// itself. It returns whether it handed done, the report of the outcome to
// the breaker, to something that outlives it (the rows of Query, the row of
// QueryRow, the results of SendBatch), which then calls it; otherwise run
// reports fn's error.
//
// The first attempt takes no allocation beyond fn's closure: the retry loop
// starts only after a failure that may be retried (see retryableOp).
func (c *Client) run(ctx context.Context, o op, fn func(ctx context.Context, done func(error)) (deferred bool, err error)) error {
	if c.closed.Load() {
		return ErrClosed
	}
	first := c.attempt(ctx, fn)
	if first == nil || c.res.policies[retryStatement].retries <= 0 || !retryableOp(ctx, o, first) {
		return first
	}
	return c.res.retry(ctx, retryStatement, func(err error) bool { return retryableOp(ctx, o, err) }, func(n int) error {
		if n == 1 {
			return first
		}
		if c.closed.Load() {
			return ErrClosed
		}
		return c.attempt(ctx, fn)
	})
}

// attempt runs fn once through the circuit breaker.
func (c *Client) attempt(ctx context.Context, fn func(context.Context, func(error)) (bool, error)) error {
	done, err := c.res.breaker.allow()
	if err != nil {
		return err
	}
	deferred, err := fn(ctx, done)
	if !deferred {
		done(err)
	}
	return err
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
// (or until ctx ends, if sooner).
func (c *Client) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	start := time.Now()
	actx, expired, release := c.acquireContext(ctx, start)
	c.stats.waiting.Add(1)
	pc, err := c.pool.Acquire(actx)
	c.stats.waiting.Add(-1)
	wait := time.Since(start)
	if m := c.metrics; m != nil {
		m.acquireDuration.Observe(wait.Seconds())
	}
	if err != nil {
		// Nothing was sent for the operation yet: safe to retry.
		err = markNotSent(c.acquireError(ctx, expired(), wait, err))
	}
	release()
	return pc, err
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
	var tag pgconn.CommandTag
	err := c.run(ctx, opExec, func(ctx context.Context, _ func(error)) (bool, error) {
		pc, err := c.acquire(ctx)
		if err != nil {
			return false, err
		}
		defer pc.Release()
		tag, err = c.exec(ctx, pc.Conn(), pc.Conn(), sql, args)
		return false, err
	})
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

// The statement helpers below run on q, which is conn itself or a
// transaction on it, under conn's statement timer.

func (c *Client) exec(ctx context.Context, conn *pgx.Conn, q querier, sql string, args []any) (pgconn.CommandTag, error) {
	st := c.startStatement(ctx, conn)
	tag, err := q.Exec(ctx, sql, args...)
	return tag, c.finishStatement(st, err)
}

// Query runs sql on a pooled connection. The connection stays acquired (and
// the query timeout running) until the returned rows are closed or read to
// the end: rows that are never closed are a leak. On error the returned rows
// are closed and carry the error too, as with pgx.
func (c *Client) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	var rs pgx.Rows
	err := c.run(ctx, opQuery, func(ctx context.Context, done func(error)) (bool, error) {
		pc, err := c.acquire(ctx)
		if err != nil {
			return false, err
		}
		rs, err = c.query(ctx, pc.Conn(), pc.Conn(), pc, sql, args)
		if err != nil {
			return false, err
		}
		rs.(*rows).done = done
		return true, nil
	})
	if err != nil {
		return &errRows{err: err}, err
	}
	return rs, nil
}

// query runs sql; pc, when not nil, is released when the rows close.
func (c *Client) query(ctx context.Context, conn *pgx.Conn, q querier, pc *pgxpool.Conn, sql string, args []any) (pgx.Rows, error) {
	st := c.startStatement(ctx, conn)
	r, err := q.Query(ctx, sql, args...)
	if err != nil {
		err = c.finishStatement(st, err)
		if pc != nil {
			pc.Release()
		}
		return &errRows{err: err}, err
	}
	return &rows{r: r, c: c, st: st, pc: pc}, nil
}

// QueryRow runs sql on a pooled connection; the connection is released when
// Scan is called. Errors, ErrPoolExhausted included, are returned by Scan.
// A transient failure is retried within Scan when nothing was sent or ctx is
// marked Idempotent (RetryConfig.StatementRetries).
func (c *Client) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	var r *row
	err := c.run(ctx, opQueryRow, func(ctx context.Context, done func(error)) (bool, error) {
		pc, err := c.acquire(ctx)
		if err != nil {
			return false, err
		}
		r = c.queryRow(ctx, pc.Conn(), pc.Conn(), pc, sql, args)
		r.done = done
		return true, nil
	})
	if err != nil {
		return &errRow{err: err}
	}
	r.ctx, r.sql, r.args, r.retry = ctx, sql, args, true
	return r
}

func (c *Client) queryRow(ctx context.Context, conn *pgx.Conn, q querier, pc *pgxpool.Conn, sql string, args []any) *row {
	st := c.startStatement(ctx, conn)
	return &row{r: q.QueryRow(ctx, sql, args...), c: c, st: st, pc: pc}
}

// SendBatch sends every queued statement of b in one round trip (pipeline)
// on a pooled connection. The connection is released when the results are
// closed, or, when b began a transaction (pgx.Batch.BeginTx), when that
// transaction ends. Errors, ErrPoolExhausted included, are returned by the
// results' methods.
func (c *Client) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	var br pgx.BatchResults
	err := c.run(ctx, opBatch, func(ctx context.Context, done func(error)) (bool, error) {
		pc, err := c.acquire(ctx)
		if err != nil {
			return false, err
		}
		res := c.sendBatch(ctx, pc.Conn(), pc.Conn(), pc, b)
		res.done = done
		br = res
		return true, nil
	})
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

func (c *Client) sendBatch(ctx context.Context, conn *pgx.Conn, q querier, pc *pgxpool.Conn, b *pgx.Batch) *batchResults {
	st := c.startStatement(ctx, conn)
	res := &batchResults{br: q.SendBatch(ctx, b), c: c, st: st, pc: pc}
	if t := res.br.Tx(); t != nil {
		// The transaction owns the connection from here on.
		res.tx = &tx{tx: t, c: c, pc: pc}
		res.pc = nil
	}
	return res
}

// CopyFrom copies rows into table with the COPY protocol on a pooled
// connection and returns the number of rows copied. The whole copy is one
// statement for QueryTimeout.
func (c *Client) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	var n int64
	err := c.run(ctx, opCopy, func(ctx context.Context, _ func(error)) (bool, error) {
		pc, err := c.acquire(ctx)
		if err != nil {
			return false, err
		}
		defer pc.Release()
		n, err = c.copyFrom(ctx, pc.Conn(), pc.Conn(), table, columns, src)
		return false, err
	})
	return n, err
}

func (c *Client) copyFrom(ctx context.Context, conn *pgx.Conn, q querier, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	st := c.startStatement(ctx, conn)
	n, err := q.CopyFrom(ctx, table, columns, src)
	return n, c.finishStatement(st, err)
}

// Acquire takes a connection from the pool for a sequence of statements
// (session settings, advisory locks, LISTEN). The caller must Release it; it
// counts as held, for leak detection, until then. Statements on it still get
// QueryTimeout.
func (c *Client) Acquire(ctx context.Context) (*Conn, error) {
	var conn *Conn
	err := c.run(ctx, opAcquire, func(ctx context.Context, _ func(error)) (bool, error) {
		pc, err := c.acquire(ctx)
		if err != nil {
			return false, err
		}
		conn = &Conn{c: c, pc: pc}
		return false, nil
	})
	return conn, err
}
