package pgclient_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
)

// testBundle is what most tests need: a client on a fresh empty database,
// its log, and an admin connection for looking at pg_stat_activity.
type testBundle struct {
	client *pgclient.Client
	url    string
	app    string // application_name of the client's connections
	log    *testdb.SyncBuffer
}

// setup opens a client on a fresh database with cfg (URL, ServiceName and
// Logger filled in when empty). At cleanup it asserts that no connection is
// still acquired, then closes the client.
func setup(t *testing.T, cfg pgclient.Config) *testBundle {
	t.Helper()
	b := &testBundle{log: &testdb.SyncBuffer{}}
	if cfg.URL == "" {
		cfg.URL = testdb.NewEmpty(t)
	}
	b.url = cfg.URL
	if cfg.ServiceName == "" {
		cfg.ServiceName = "t_" + strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if len(cfg.ServiceName) > 60 {
			cfg.ServiceName = cfg.ServiceName[:60]
		}
	}
	b.app = cfg.ServiceName
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgclient.Open(ctx, cfg)
	require.NoError(t, err)
	b.client = c
	t.Cleanup(func() {
		requireNoneAcquired(t, c)
		c.Close()
	})
	return b
}

// requireNoneAcquired fails the test when a connection is still acquired
// (after a short grace, since releases of rows closed by other goroutines may
// be in flight).
func requireNoneAcquired(t *testing.T, c *pgclient.Client) {
	t.Helper()
	require.Eventually(t, func() bool {
		return c.Stats().InUse == 0 && c.Pool().Stat().AcquiredConns() == 0
	}, 10*time.Second, 10*time.Millisecond, "connections still acquired at the end of the test: %+v", c.Stats())
}

// admin runs fn on a superuser connection to the test server.
func admin(t *testing.T, fn func(conn *pgx.Conn)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testdb.AdminURL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	fn(conn)
}

// backends counts the server connections with application_name app.
func backends(t *testing.T, app string) int {
	t.Helper()
	var n int
	admin(t, func(conn *pgx.Conn) {
		require.NoError(t, conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n))
	})
	return n
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// withParams returns the URL of a fresh empty database with params appended.
func withParams(t *testing.T, params string) string {
	t.Helper()
	u := testdb.NewEmpty(t)
	if strings.Contains(u, "?") {
		return u + "&" + params
	}
	return u + "?" + params
}
