package pgclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Begin starts a transaction on a pooled connection; see BeginTx.
func (c *Client) Begin(ctx context.Context) (pgx.Tx, error) {
	return c.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx acquires a connection and starts a transaction with opts. The
// connection is released when the transaction commits or rolls back; until
// then it counts as held (leak detection). Every statement in the
// transaction gets QueryTimeout. Rollback runs even when its context is
// already cancelled (bounded by QueryTimeout), so the connection returns to
// the pool clean.
func (c *Client) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	t, err := c.beginOnce(ctx, opts)
	if err != nil {
		err = c.again(ctx, opBegin, err, func() (err error) {
			t, err = c.beginOnce(ctx, opts)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (c *Client) beginOnce(ctx context.Context, opts pgx.TxOptions) (*tx, error) {
	l, err := c.admit(ctx)
	if err != nil {
		return nil, err
	}
	t, err := c.beginTx(ctx, l.st, l.at, l.pc.Conn(), l.pc, opts)
	if err != nil {
		c.release(l.pc)
	}
	l.done(err)
	return t, err
}

func (c *Client) beginTx(ctx context.Context, st *connState, now int64, conn *pgx.Conn, pc *pgxpool.Conn, opts pgx.TxOptions) (*tx, error) {
	timer := c.startStatement(ctx, st, now)
	t, err := conn.BeginTx(ctx, opts)
	if err = c.finishStatement(timer, err); err != nil {
		return nil, err
	}
	return &tx{tx: t, c: c, pc: pc, st: st}, nil
}

// InTx runs fn in a transaction and commits when fn returns nil; when fn
// returns an error or panics, it rolls back and returns fn's error (or
// re-panics). fn must not keep the transaction after it returns.
//
// When the transaction fails with a serialization failure, a deadlock or a
// lock timeout (ClassRetryTx), or a statement in fn fails transiently before
// anything was sent, InTx rolls back and calls fn again with a new
// transaction (RetryConfig.TxRetries, with backoff). fn must therefore have
// no effect outside the transaction, or only effects that are safe to
// repeat. A transient failure at COMMIT is never retried: the transaction
// may have committed, and the error says so.
func (c *Client) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return c.InTxOptions(ctx, pgx.TxOptions{}, fn)
}

// InTxOptions is InTx with transaction options (isolation level, read only,
// deferrable).
func (c *Client) InTxOptions(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	err := c.inTx(ctx, opts, fn)
	if err != nil && c.res.policies[retryTx].retries > 0 && retryableTx(err) {
		first := err
		err = c.res.retry(ctx, retryTx, retryableTx, func(n int) error {
			if n == 1 {
				return first
			}
			return c.inTx(ctx, opts, fn)
		})
	}
	var f *txFailure
	if errors.As(err, &f) && f == err {
		return f.err
	}
	return err
}

// inTx makes one attempt of InTxOptions. Its error is a *txFailure saying
// where the attempt failed.
func (c *Client) inTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	t, err := c.BeginTx(ctx, opts)
	if err != nil {
		return &txFailure{stage: txBegin, err: err}
	}
	defer func() {
		if p := recover(); p != nil {
			_ = t.Rollback(ctx)
			panic(p)
		}
		if f, ok := err.(*txFailure); ok && f.stage == txBody {
			if rerr := t.Rollback(ctx); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
				f.err = errors.Join(f.err, fmt.Errorf("pgclient: rollback: %w", rerr))
			}
		}
	}()
	if err := fn(t); err != nil {
		return &txFailure{stage: txBody, err: err}
	}
	if err := t.Commit(ctx); err != nil {
		if IsTransient(err) {
			err = fmt.Errorf("pgclient: commit failed and the transaction may have committed (check before running it again): %w", err)
		}
		return &txFailure{stage: txCommit, err: err}
	}
	return nil
}

// tx is a pgx.Tx whose statements get QueryTimeout and which releases its
// pooled connection when it ends.
type tx struct {
	tx pgx.Tx
	c  *Client
	pc *pgxpool.Conn // released at commit or rollback; nil for nested and Conn transactions
	st *connState    // the connection's state
}

var _ pgx.Tx = (*tx)(nil)

func (t *tx) Begin(ctx context.Context) (pgx.Tx, error) {
	timer := t.c.startStatement(ctx, t.st, 0)
	inner, err := t.tx.Begin(ctx)
	if err = t.c.finishStatement(timer, err); err != nil {
		return nil, err
	}
	return &tx{tx: inner, c: t.c, st: t.st}, nil
}

func (t *tx) Commit(ctx context.Context) error {
	timer := t.c.startStatement(ctx, t.st, 0)
	err := t.c.finishStatement(timer, t.tx.Commit(ctx))
	t.release()
	return err
}

func (t *tx) Rollback(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	timer := t.c.startStatement(ctx, t.st, 0)
	err := t.c.finishStatement(timer, t.tx.Rollback(ctx))
	t.release()
	return err
}

func (t *tx) release() {
	if t.pc != nil {
		t.c.release(t.pc)
		t.pc = nil
	}
}

func (t *tx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.c.copyFrom(ctx, t.st, 0, t.tx, table, columns, src)
}

func (t *tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.c.sendBatch(ctx, t.st, 0, t.tx, nil, b)
}

func (t *tx) LargeObjects() pgx.LargeObjects { return t.tx.LargeObjects() }

func (t *tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	timer := t.c.startStatement(ctx, t.st, 0)
	sd, err := t.tx.Prepare(ctx, name, sql)
	return sd, t.c.finishStatement(timer, err)
}

func (t *tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.c.exec(ctx, t.st, 0, t.tx, sql, args)
}

func (t *tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := t.c.query(ctx, t.st, 0, t.tx, nil, sql, args)
	if err != nil {
		return &errRows{err: err}, err
	}
	return r, nil
}

func (t *tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.c.queryRow(ctx, t.st, 0, t.tx, nil, sql, args)
}

func (t *tx) Conn() *pgx.Conn { return t.tx.Conn() }
