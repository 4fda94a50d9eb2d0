package testdb_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestNewIsMigratedAndIsolated(t *testing.T) {
	t.Parallel()
	a, b := testdb.New(t), testdb.New(t)
	require.NotEqual(t, a, b)

	ca, cb := connect(t, a), connect(t, b)
	ctx := context.Background()
	var n int
	require.NoError(t, ca.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'omnibridge' AND table_name = 'hook_events'`).Scan(&n))
	require.Equal(t, 1, n, "a new database has the schema")

	_, err := ca.Exec(ctx, `INSERT INTO omnibridge.service_sessions (id, service_name) VALUES (gen_random_uuid(), 'isolation')`)
	require.NoError(t, err)
	require.NoError(t, cb.QueryRow(ctx, `SELECT count(*) FROM omnibridge.service_sessions`).Scan(&n))
	require.Zero(t, n, "databases do not share rows")
}

func TestNewEmptyHasNoSchema(t *testing.T) {
	t.Parallel()
	c := connect(t, testdb.NewEmpty(t))
	var n int
	require.NoError(t, c.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = 'omnibridge'`).Scan(&n))
	require.Zero(t, n)
}

func TestDatabasesAreDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		c := connect(t, testdb.New(t))
		require.NoError(t, c.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name))
	})
	admin := connect(t, testdb.AdminURL(t))
	var exists bool
	require.NoError(t, admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	require.False(t, exists, "database %s should be dropped when its test ends", name)
}
