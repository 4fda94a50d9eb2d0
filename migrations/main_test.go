package migrations_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/migrations"
)

// childEnv makes the test binary act as one `migrate up` process (see
// TestConcurrentUpProcesses): it migrates the named database and prints the
// versions it applied as JSON.
const childEnv = "OMNIBRIDGE_MIGRATIONS_TEST_CHILD_URL"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		os.Exit(runChild(url))
	}
	testdb.Main(m)
}

func runChild(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := migrations.OpenDB(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	res, err := migrations.Up(ctx, db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	versions := []int64{}
	for _, r := range res {
		versions = append(versions, r.Version)
	}
	if err := json.NewEncoder(os.Stdout).Encode(versions); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testCtx bounds a test's database work generously: the machine is shared.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := migrations.OpenDB(testCtx(t), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// migrated returns a connection (as the cluster's superuser, the schema owner)
// to a fresh migrated database. The session runs in a time zone far from UTC,
// so that nothing silently depends on the session's time zone.
func migrated(t *testing.T) *pgx.Conn {
	t.Helper()
	conn := connect(t, testdb.New(t))
	_, err := conn.Exec(testCtx(t), "SET timezone = 'Pacific/Kiritimati'")
	require.NoError(t, err)
	return conn
}

// sqlState returns the SQLSTATE of err, or "" if it is not a server error.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// queryStrings runs a query returning one text column.
func queryStrings(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, conn.QueryRow(testCtx(t), sql, args...).Scan(&n))
	return n
}
