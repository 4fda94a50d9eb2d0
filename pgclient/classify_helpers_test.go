package pgclient_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// testCtx is a context that ends with the test (or after two minutes).
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pgConnect opens a plain pgx connection, closed at cleanup.
func pgConnect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// replaceDatabase returns connString (a URL) naming database db instead.
func replaceDatabase(t *testing.T, connString, db string) string {
	t.Helper()
	u, err := url.Parse(connString)
	require.NoError(t, err)
	u.Path = "/" + db
	return u.String()
}
