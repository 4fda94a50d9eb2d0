package pgembed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestReplica(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	// A password and a raised max_connections: the replica must inherit both
	// (a standby refuses to start with lower limits than its primary).
	primary := startCluster(t, Config{Password: "pw", Settings: map[string]string{"max_connections": "250"}})
	pconn := connect(t, primary.URL("postgres"))
	execSQL(t, pconn, "CREATE TABLE events (id int PRIMARY KEY, body text)")
	execSQL(t, pconn, "INSERT INTO events VALUES (1, 'before the backup')")

	replica, err := primary.StartReplica(ctx, Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, replica.Close()) })
	require.NotEqual(t, primary.Port(), replica.Port())
	require.NotEqual(t, primary.DataDir(), replica.DataDir())
	require.Equal(t, "pw", replica.Password())

	rconn := connect(t, replica.URL("postgres"))
	require.Equal(t, "true", queryString(t, rconn, "SELECT pg_is_in_recovery()::text"))
	require.Equal(t, "250", queryString(t, rconn, "SHOW max_connections"))
	require.Equal(t, "before the backup", queryString(t, rconn, "SELECT body FROM events WHERE id = 1"))

	execSQL(t, pconn, "INSERT INTO events VALUES (2, 'streamed')")
	require.Eventually(t, func() bool {
		var body string
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := rconn.QueryRow(qctx, "SELECT body FROM events WHERE id = 2").Scan(&body)
		return err == nil && body == "streamed"
	}, 60*time.Second, 50*time.Millisecond, "the row written on the primary reaches the replica")

	require.Equal(t, "streaming", queryString(t, pconn, "SELECT state FROM pg_stat_replication"))

	_, err = rconn.Exec(ctx, "INSERT INTO events VALUES (3, 'nope')")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "err: %v", err)
	require.Equal(t, "25006", pgErr.Code, "a hot standby is read-only")
}

func TestReplicaNeedsRunningPrimary(t *testing.T) {
	t.Parallel()
	c := &Cluster{dataDir: t.TempDir()}
	_, err := c.StartReplica(testContext(t), Config{})
	require.ErrorContains(t, err, "primary is not running")
}
