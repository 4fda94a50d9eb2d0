package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// opsBundle is what the tests of sessions, metrics, audit, connection metrics
// and retention share: a store on a fresh migrated database, the bare pool
// under it for checks in SQL, and the database's URL.
type opsBundle struct {
	store *store.Store
	pool  *pgxpool.Pool
	url   string
}

func setupOps(t testing.TB, opts ...store.Option) *opsBundle {
	t.Helper()
	url := testdb.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 10
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &opsBundle{store: store.New(pool, opts...), pool: pool, url: url}
}

// opsCtx is a generous deadline for one test's database work.
func opsCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// scalar runs a query that returns one integer.
func (b *opsBundle) scalar(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// exec runs SQL for setting up a case.
func (b *opsBundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}
