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
	var t pgx.Tx
	err := c.run(ctx, opBegin, func(ctx context.Context) error {
		pc, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		t, err = c.beginTx(ctx, pc.Conn(), pc, opts)
		if err != nil {
			pc.Release()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (c *Client) beginTx(ctx context.Context, conn *pgx.Conn, pc *pgxpool.Conn, opts pgx.TxOptions) (*tx, error) {
	st := c.startStatement(ctx, conn)
	t, err := conn.BeginTx(ctx, opts)
	if err = c.finishStatement(st, err); err != nil {
		return nil, err
	}
	return &tx{tx: t, c: c, pc: pc}, nil
}

// InTx runs fn in a transaction and commits when fn returns nil; when fn
// returns an error or panics, it rolls back and returns fn's error (or
// re-panics). fn must not keep the transaction after it returns.
func (c *Client) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return c.InTxOptions(ctx, pgx.TxOptions{}, fn)
}

// InTxOptions is InTx with transaction options (isolation level, read only,
// deferrable).
func (c *Client) InTxOptions(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	t, err := c.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = t.Rollback(ctx)
			panic(p)
		}
		if err != nil {
			if rerr := t.Rollback(ctx); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
				err = errors.Join(err, fmt.Errorf("pgclient: rollback: %w", rerr))
			}
		}
	}()
	if err = fn(t); err != nil {
		return err
	}
	return t.Commit(ctx)
}

// tx is a pgx.Tx whose statements get QueryTimeout and which releases its
// pooled connection when it ends.
type tx struct {
	tx pgx.Tx
	c  *Client
	pc *pgxpool.Conn // released at commit or rollback; nil for nested and Conn transactions
}

var _ pgx.Tx = (*tx)(nil)

func (t *tx) Begin(ctx context.Context) (pgx.Tx, error) {
	st := t.c.startStatement(ctx, t.tx.Conn())
	inner, err := t.tx.Begin(ctx)
	if err = t.c.finishStatement(st, err); err != nil {
		return nil, err
	}
	return &tx{tx: inner, c: t.c}, nil
}

func (t *tx) Commit(ctx context.Context) error {
	st := t.c.startStatement(ctx, t.tx.Conn())
	err := t.c.finishStatement(st, t.tx.Commit(ctx))
	t.release()
	return err
}

func (t *tx) Rollback(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	st := t.c.startStatement(ctx, t.tx.Conn())
	err := t.c.finishStatement(st, t.tx.Rollback(ctx))
	t.release()
	return err
}

func (t *tx) release() {
	if t.pc != nil {
		t.pc.Release()
		t.pc = nil
	}
}

func (t *tx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.c.copyFrom(ctx, t.tx.Conn(), t.tx, table, columns, src)
}

func (t *tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.c.sendBatch(ctx, t.tx.Conn(), t.tx, nil, b)
}

func (t *tx) LargeObjects() pgx.LargeObjects { return t.tx.LargeObjects() }

func (t *tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	st := t.c.startStatement(ctx, t.tx.Conn())
	sd, err := t.tx.Prepare(ctx, name, sql)
	return sd, t.c.finishStatement(st, err)
}

func (t *tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.c.exec(ctx, t.tx.Conn(), t.tx, sql, args)
}

func (t *tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.c.query(ctx, t.tx.Conn(), t.tx, nil, sql, args)
}

func (t *tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.c.queryRow(ctx, t.tx.Conn(), t.tx, nil, sql, args)
}

func (t *tx) Conn() *pgx.Conn { return t.tx.Conn() }
