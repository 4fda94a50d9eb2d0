// Package store is the typed data access of omnibridge: service sessions, hook
// events (ingest, claim, complete, fail, replay), event metrics and the
// performance report, the security audit log, connection metrics, and retention
// with partition maintenance. Every operation of ADR-016's PostgresClient that
// touches data lives here under an idiomatic Go name; each doc comment names the
// ADR operation it implements.
//
// A Store runs on a DB, which a *pgclient.Client satisfies (and so does a bare
// *pgxpool.Pool, which the benchmarks use as their baseline).
package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema is the PostgreSQL schema every omnibridge table lives in.
const Schema = "omnibridge"

// DB is what the store needs from a connection pool.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store is the data layer. It is safe for concurrent use.
type Store struct {
	db  DB
	log *slog.Logger
	now func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger. Defaults to discarding.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithClock replaces time.Now, for tests of time-dependent behaviour.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a Store on db.
func New(db DB, opts ...Option) *Store {
	s := &Store{db: db, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// DB returns the pool the store runs on.
func (s *Store) DB() DB { return s.db }

// txRunner is implemented by pools that run transactions with their own retry
// policy (pgclient retries serialization failures and deadlocks).
type txRunner interface {
	InTx(ctx context.Context, fn func(pgx.Tx) error) error
}

// inTx runs fn in a transaction, committing when it returns nil. fn may run more
// than once when the pool retries the whole transaction, so it must not have
// effects outside the transaction.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	if r, ok := s.db.(txRunner); ok {
		return r.InTx(ctx, fn)
	}
	return pgx.BeginFunc(ctx, s.db, fn)
}
