package pgclient

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rows ends the statement's timeout and releases its connection (when it owns
// one) when closed, or when Next reaches the end, as pgxpool's rows do.
type rows struct {
	r      pgx.Rows
	c      *Client
	st     *connState    // statement timer to stop; nil if not armed
	pc     *pgxpool.Conn // nil inside a Tx or an acquired Conn
	done   func(error)   // reports the outcome to the breaker; nil inside a Tx or a Conn
	err    error
	closed bool
}

func (r *rows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.r.Close()
	r.err = r.c.finishStatement(r.st, r.r.Err())
	if r.pc != nil {
		r.c.release(r.pc)
		r.pc = nil
	}
	if r.done != nil {
		r.done(r.err)
		r.done = nil
	}
}

func (r *rows) Err() error {
	if r.closed {
		return r.err
	}
	return r.r.Err()
}

func (r *rows) CommandTag() pgconn.CommandTag                { return r.r.CommandTag() }
func (r *rows) FieldDescriptions() []pgconn.FieldDescription { return r.r.FieldDescriptions() }
func (r *rows) Values() ([]any, error)                       { return r.r.Values() }
func (r *rows) RawValues() [][]byte                          { return r.r.RawValues() }
func (r *rows) Conn() *pgx.Conn                              { return r.r.Conn() }
func (r *rows) TypeMap() *pgtype.Map                         { return r.r.TypeMap() }

func (r *rows) Next() bool {
	if r.closed {
		return false
	}
	if r.r.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *rows) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if err != nil {
		r.Close()
	}
	return err
}

// errRows are the rows of a query that never started.
type errRows struct{ err error }

func (r *errRows) Close()                                       {}
func (r *errRows) Err() error                                   { return r.err }
func (r *errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *errRows) Next() bool                                   { return false }
func (r *errRows) Scan(...any) error                            { return r.err }
func (r *errRows) Values() ([]any, error)                       { return nil, r.err }
func (r *errRows) RawValues() [][]byte                          { return nil }
func (r *errRows) Conn() *pgx.Conn                              { return nil }
func (r *errRows) TypeMap() *pgtype.Map                         { return nil }

// row releases its connection when scanned. A row of Client.QueryRow
// (retry set) runs its statement again when Scan fails in a way that may
// be retried.
type row struct {
	r    pgx.Row
	c    *Client
	st   *connState
	pc   *pgxpool.Conn
	done func(error) // reports the outcome to the breaker; nil inside a Tx or a Conn

	retry bool
	ctx   context.Context
	sql   string
	args  []any
}

func (r *row) Scan(dest ...any) error {
	err := r.c.finishStatement(r.st, r.r.Scan(dest...))
	r.st = nil
	if r.pc != nil {
		r.c.release(r.pc)
		r.pc = nil
	}
	if r.done != nil {
		r.done(err)
		r.done = nil
	}
	if err != nil && r.retry && r.c.res.policies[retryStatement].retries > 0 && retryableStatement(r.ctx, err) {
		r.retry = false
		err = r.c.rescan(r.ctx, r.sql, r.args, dest, err)
	}
	return err
}

type errRow struct{ err error }

func (r *errRow) Scan(...any) error { return r.err }

// batchResults releases its connection (unless a transaction begun by the
// batch owns it) and ends the timeout when closed.
type batchResults struct {
	br     pgx.BatchResults
	c      *Client
	st     *connState
	pc     *pgxpool.Conn
	tx     *tx
	done   func(error) // reports the outcome to the breaker; nil inside a Tx or a Conn
	closed bool
	err    error
}

func (b *batchResults) Exec() (pgconn.CommandTag, error) { return b.br.Exec() }
func (b *batchResults) Query() (pgx.Rows, error)         { return b.br.Query() }

func (b *batchResults) QueryRow() pgx.Row { return b.br.QueryRow() }

func (b *batchResults) Close() error {
	if b.closed {
		return b.err
	}
	b.closed = true
	b.err = b.c.finishStatement(b.st, b.br.Close())
	if b.pc != nil {
		b.c.release(b.pc)
		b.pc = nil
	}
	if b.done != nil {
		b.done(b.err)
		b.done = nil
	}
	return b.err
}

func (b *batchResults) Tx() pgx.Tx {
	if b.tx == nil {
		return nil
	}
	return b.tx
}
