package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSynchronousCommit(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	got, err := b.store.SynchronousCommit(ctx)
	require.NoError(t, err)
	require.Equal(t, "on", got)

	_, err = b.pool.Exec(ctx, `ALTER DATABASE `+quoteIdent(t, b)+` SET synchronous_commit = off`)
	require.NoError(t, err)
	b.pool.Reset() // new sessions pick up the database setting
	got, err = b.store.SynchronousCommit(ctx)
	require.NoError(t, err)
	require.Equal(t, "off", got)
}

func quoteIdent(t *testing.T, b *opsBundle) string {
	t.Helper()
	var name string
	require.NoError(t, b.pool.QueryRow(opsCtx(t), `SELECT quote_ident(current_database())`).Scan(&name))
	return name
}
