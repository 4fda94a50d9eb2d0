package pgclient

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Conn is a connection acquired from a Client with Acquire. Its statements get
// QueryTimeout like the Client's. It must be released with Release, after
// which no other method may be called. A Conn is not safe for concurrent use.
type Conn struct {
	c  *Client
	pc *pgxpool.Conn
	st *connState
}

// Release returns the connection to the pool (closing it instead when it has
// reached MaxQueriesPerConn or ConnMaxAge, or is broken or mid-transaction).
// Calling it more than once is safe.
func (cn *Conn) Release() {
	if cn.pc != nil {
		cn.c.release(cn.pc)
		cn.pc = nil
	}
}

// Exec runs sql on the connection; see Client.Exec.
func (cn *Conn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return cn.c.exec(ctx, cn.st, 0, cn.pc.Conn(), sql, args)
}

// Query runs sql on the connection; the rows must be closed before the next
// statement. See Client.Query.
func (cn *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := cn.c.query(ctx, cn.st, 0, cn.pc.Conn(), nil, sql, args)
	if err != nil {
		return &errRows{err: err}, err
	}
	return r, nil
}

// QueryRow runs sql on the connection; see Client.QueryRow.
func (cn *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return cn.c.queryRow(ctx, cn.st, 0, cn.pc.Conn(), nil, sql, args)
}

// SendBatch sends b on the connection; the results must be closed before the
// next statement.
func (cn *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return cn.c.sendBatch(ctx, cn.st, 0, cn.pc.Conn(), nil, b)
}

// CopyFrom copies rows into table on the connection; see Client.CopyFrom.
func (cn *Conn) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return cn.c.copyFrom(ctx, cn.st, 0, cn.pc.Conn(), table, columns, src)
}

// Begin starts a transaction on the connection. Ending the transaction does
// not release the connection.
func (cn *Conn) Begin(ctx context.Context) (pgx.Tx, error) {
	return cn.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction with opts on the connection.
func (cn *Conn) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	t, err := cn.c.beginTx(ctx, cn.st, 0, cn.pc.Conn(), nil, opts)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Conn returns the underlying pgx connection, for what the wrapper does not
// offer (LISTEN/WaitForNotification, PgConn). Statements sent on it directly
// get no QueryTimeout. It must not be used after Release.
func (cn *Conn) Conn() *pgx.Conn { return cn.pc.Conn() }
