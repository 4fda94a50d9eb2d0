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

// run is the one path every Client operation takes: the place where the
// policy around a whole operation (closed check today; circuit breaker and
// retry of idempotent work with the resilience layer) applies. fn acquires
// its connection and applies the query timeout itself, because for Query,
// QueryRow and SendBatch the operation outlives fn.
func (c *Client) run(ctx context.Context, _ op, fn func(context.Context) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return fn(ctx)
}

// acquire takes a connection from the pool, waiting at most AcquireTimeout
// (or until ctx ends, if sooner).
func (c *Client) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := ctx, context.CancelFunc(nil)
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.acquireTimeout {
		actx, cancel = context.WithTimeoutCause(ctx, c.acquireTimeout, errAcquireTimedOut)
	}
	c.stats.waiting.Add(1)
	start := time.Now()
	pc, err := c.pool.Acquire(actx)
	wait := time.Since(start)
	c.stats.waiting.Add(-1)
	if cancel != nil {
		cancel()
	}
	if m := c.metrics; m != nil {
		m.acquireDuration.Observe(wait.Seconds())
	}
	if err != nil {
		return nil, c.acquireError(ctx, actx, wait, err)
	}
	return pc, nil
}

// acquireError classifies a failed acquire. Only the client's own timer
// expiring means the pool is exhausted; the caller's cancellation is passed
// through and is not counted as a failed acquisition.
func (c *Client) acquireError(ctx, actx context.Context, wait time.Duration, err error) error {
	switch {
	case c.closed.Load():
		return ErrClosed
	case ctx.Err() != nil:
		return fmt.Errorf("pgclient: acquire connection: %w", err)
	case errors.Is(context.Cause(actx), errAcquireTimedOut):
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

func noCancel() {}

// queryContext bounds one statement by QueryTimeout unless ctx ends sooner.
func (c *Client) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= c.queryTimeout {
		return ctx, noCancel
	}
	return context.WithTimeoutCause(ctx, c.queryTimeout, errQueryTimedOut)
}

// queryError marks err as a query timeout when the client's timer ended the
// statement (not the caller's context).
func (c *Client) queryError(qctx context.Context, err error) error {
	if err == nil || !errors.Is(context.Cause(qctx), errQueryTimedOut) || errors.Is(err, ErrQueryTimeout) {
		return err
	}
	c.stats.queryTimeouts.Add(1)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s: %w", ErrQueryTimeout, c.queryTimeout, err)
	}
	return fmt.Errorf("%w after %s: %w: %w", ErrQueryTimeout, c.queryTimeout, context.DeadlineExceeded, err)
}

// Exec runs sql (an SQL string or the name of a PrepareOnConnect statement)
// on a pooled connection and returns the command tag. It waits at most
// AcquireTimeout for a connection (ErrPoolExhausted) and QueryTimeout for the
// statement (ErrQueryTimeout), or less if ctx ends sooner.
func (c *Client) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := c.run(ctx, opExec, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		defer pc.Release()
		tag, err = c.exec(ctx, pc.Conn(), sql, args)
		return err
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

func (c *Client) exec(ctx context.Context, conn querier, sql string, args []any) (pgconn.CommandTag, error) {
	qctx, cancel := c.queryContext(ctx)
	tag, err := conn.Exec(qctx, sql, args...)
	err = c.queryError(qctx, err)
	cancel()
	return tag, err
}

// Query runs sql on a pooled connection. The connection stays acquired (and
// the query timeout running) until the returned rows are closed or read to
// the end: rows that are never closed are a leak. On error the returned rows
// are closed and carry the error too, as with pgx.
func (c *Client) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	var rows pgx.Rows
	err := c.run(ctx, opQuery, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		rows, err = c.query(ctx, pc.Conn(), pc, sql, args)
		return err
	})
	if rows == nil {
		rows = &errRows{err: err}
	}
	return rows, err
}

// query runs sql on conn; pc, when not nil, is released when the rows close.
func (c *Client) query(ctx context.Context, conn querier, pc *pgxpool.Conn, sql string, args []any) (pgx.Rows, error) {
	qctx, cancel := c.queryContext(ctx)
	r, err := conn.Query(qctx, sql, args...)
	if err != nil {
		cancel()
		if pc != nil {
			pc.Release()
		}
		err = c.queryError(qctx, err)
		return &errRows{err: err}, err
	}
	return &rows{r: r, c: c, qctx: qctx, cancel: cancel, pc: pc}, nil
}

// QueryRow runs sql on a pooled connection; the connection is released when
// Scan is called. Errors, ErrPoolExhausted included, are returned by Scan.
func (c *Client) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	var row pgx.Row
	err := c.run(ctx, opQueryRow, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		row = c.queryRow(ctx, pc.Conn(), pc, sql, args)
		return nil
	})
	if err != nil {
		return &errRow{err: err}
	}
	return row
}

func (c *Client) queryRow(ctx context.Context, conn querier, pc *pgxpool.Conn, sql string, args []any) pgx.Row {
	qctx, cancel := c.queryContext(ctx)
	return &row{r: conn.QueryRow(qctx, sql, args...), c: c, qctx: qctx, cancel: cancel, pc: pc}
}

// SendBatch sends every queued statement of b in one round trip (pipeline)
// on a pooled connection. The connection is released when the results are
// closed, or, when b began a transaction (pgx.Batch.BeginTx), when that
// transaction ends. Errors, ErrPoolExhausted included, are returned by the
// results' methods.
func (c *Client) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	var br pgx.BatchResults
	err := c.run(ctx, opBatch, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		br = c.sendBatch(ctx, pc.Conn(), pc, b)
		return nil
	})
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

func (c *Client) sendBatch(ctx context.Context, conn querier, pc *pgxpool.Conn, b *pgx.Batch) pgx.BatchResults {
	qctx, cancel := c.queryContext(ctx)
	res := &batchResults{br: conn.SendBatch(qctx, b), c: c, qctx: qctx, cancel: cancel, pc: pc}
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
	err := c.run(ctx, opCopy, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		defer pc.Release()
		n, err = c.copyFrom(ctx, pc.Conn(), table, columns, src)
		return err
	})
	return n, err
}

func (c *Client) copyFrom(ctx context.Context, conn querier, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	qctx, cancel := c.queryContext(ctx)
	n, err := conn.CopyFrom(qctx, table, columns, src)
	err = c.queryError(qctx, err)
	cancel()
	return n, err
}

// Acquire takes a connection from the pool for a sequence of statements
// (session settings, advisory locks, LISTEN). The caller must Release it; it
// counts as held, for leak detection, until then. Statements on it still get
// QueryTimeout.
func (c *Client) Acquire(ctx context.Context) (*Conn, error) {
	var conn *Conn
	err := c.run(ctx, opAcquire, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		conn = &Conn{c: c, pc: pc}
		return nil
	})
	return conn, err
}
