package app

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestEnsureDatabaseIsIdempotent(t *testing.T) {
	ctx := context.Background()
	admin := testdb.AdminURL(t)
	name := "ensure_" + randomHex(4)
	t.Cleanup(func() { _ = adminExec(context.Background(), admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	require.NoError(t, ensureDatabase(ctx, admin, name))
	require.NoError(t, ensureDatabase(ctx, admin, name), "an existing database is fine")
	require.Error(t, ensureDatabase(ctx, admin, ""), "other errors still surface")
}
