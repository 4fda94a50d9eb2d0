package pgclient_test

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/pgembed"
)

func TestUniqueViolationsNeitherTripNorRetry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	var events eventLog
	cfg := fastConfig(testdb.NewEmpty(t))
	cfg.Breaker.FailureThreshold = 3
	events.hook(&cfg)
	c := openClient(t, cfg)
	_, err := c.Exec(ctx, "CREATE TABLE u (id int PRIMARY KEY)")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "INSERT INTO u VALUES (1)")
	require.NoError(t, err)

	before := c.Stats()
	for range 1000 {
		_, err := c.Exec(pgclient.Idempotent(ctx), "INSERT INTO u VALUES (1)")
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "23505", pgErr.Code)
		require.True(t, pgclient.IsPermanent(err))
	}
	after := c.Stats()
	require.EqualValues(t, 1000, after.QueryCount-before.QueryCount, "each statement was sent once")
	require.EqualValues(t, 1000, after.FailedQueries-before.FailedQueries)
	require.Zero(t, after.Retries-before.Retries, "nothing retried")
	require.Equal(t, pgclient.BreakerClosed, c.BreakerStatus().State)
	require.Empty(t, events.transitions())
}

// TestConnectionLimitBacksOff fills the server's connection slots: Open
// retries with backoff a bounded number of times, then fails with 53300;
// an operation that needs a new connection does the same.
func TestConnectionLimitBacksOff(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	settings := maps.Clone(testdb.TestSettings())
	settings["max_connections"] = "6"
	settings["superuser_reserved_connections"] = "1"
	cluster := testdb.NewCluster(t, pgembed.Config{Settings: settings})
	su := pgConnect(t, cluster.URL("postgres"))
	_, err := su.Exec(ctx, "CREATE ROLE app LOGIN")
	require.NoError(t, err)
	appURL := withUser(t, cluster.URL("postgres"), "app", "")

	// Four of the five ordinary slots are taken (the superuser's connection
	// takes an ordinary one while there is one).
	for range 3 {
		pgConnect(t, appURL)
	}
	var events eventLog
	cfg := fastConfig(appURL)
	cfg.MinConns = 1
	cfg.MaxConns = 2
	cfg.Retry.ConnectRetries = 3
	cfg.Retry.ConnectRetryBase = 40 * time.Millisecond
	cfg.Retry.ConnectRetryMax = 80 * time.Millisecond
	cfg.Retry.StatementRetries = 2
	cfg.Breaker.FailureThreshold = 100
	events.hook(&cfg)
	c := openClient(t, cfg) // takes the fifth slot
	events.reset()

	// The client's one connection is busy and the server has no slot left
	// for a second one: the statement needs a connection that cannot be had.
	held, err := c.Acquire(ctx)
	require.NoError(t, err)
	start := time.Now()
	err = selectOne(ctx, c)
	held.Release()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "53300", pgErr.Code, err.Error())
	require.True(t, pgclient.IsTransient(err))
	requireEvents(t, &events, pgclient.SecurityEventConnectFailed, 1+cfg.Retry.StatementRetries) // one attempt and the retries
	// Backoff: 10ms then 20ms nominal, at least half of each.
	require.GreaterOrEqual(t, time.Since(start), 15*time.Millisecond)
	require.NoError(t, selectOne(ctx, c), "the client's own connection still works")

	// Open while every slot is taken (four raw connections and the client's
	// one): four attempts, backed off, then 53300.
	var openEvents eventLog
	ocfg := fastConfig(appURL)
	ocfg.MinConns = 1
	ocfg.Retry = cfg.Retry
	ocfg.Breaker = cfg.Breaker
	ocfg.ServiceName = serviceName(t) + "_2"
	openEvents.hook(&ocfg)
	start = time.Now()
	_, err = pgclient.Open(ctx, ocfg)
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "53300", pgErr.Code)
	requireEvents(t, &openEvents, pgclient.SecurityEventConnectFailed, 1+ocfg.Retry.ConnectRetries)
	// 40, 80, 80ms nominal (capped), at least half of each.
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
}

// requireEvents checks that exactly n security events of type typ arrive
// (they are delivered asynchronously).
func requireEvents(t *testing.T, l *eventLog, typ string, n int) []pgclient.SecurityEvent {
	t.Helper()
	of := func() []pgclient.SecurityEvent {
		var out []pgclient.SecurityEvent
		for _, e := range l.securityEvents() {
			if e.Type == typ {
				out = append(out, e)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(of()) >= n }, 5*time.Second, 5*time.Millisecond, "%d %s events expected, got %d", n, typ, len(of()))
	time.Sleep(50 * time.Millisecond) // and no more
	got := of()
	require.Len(t, got, n, "%s events: %+v", typ, got)
	return got
}

// withUser returns connString (a URL) with another user and password.
func withUser(t *testing.T, connString, user, password string) string {
	t.Helper()
	u := mustParseURL(t, connString)
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// TestIdempotentStatementsAreRetried terminates the backend of the client's
// only connection: a statement marked idempotent is re-sent on a new
// connection; an unmarked one is not.
func TestIdempotentStatementsAreRetried(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cfg := fastConfig(testdb.NewEmpty(t))
	cfg.MinConns = 1
	cfg.MaxConns = 1
	cfg.ServiceName = serviceName(t)
	c := openClient(t, cfg)
	admin := pgConnect(t, testdb.AdminURL(t))
	terminate := func() {
		t.Helper()
		var pid uint32
		require.NoError(t, c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		_, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n))
			return n == 0
		}, 10*time.Second, 5*time.Millisecond)
	}

	terminate()
	before := c.Stats().Retries
	err := selectOne(ctx, c)
	require.Error(t, err, "the statement may have reached the server: not re-sent")
	require.True(t, pgclient.IsTransient(err), err.Error())
	require.Equal(t, before, c.Stats().Retries)

	terminate()
	require.NoError(t, selectOne(pgclient.Idempotent(ctx), c))
	require.Equal(t, before+1, c.Stats().Retries)

	terminate()
	_, err = c.Exec(pgclient.Idempotent(ctx), "SELECT 1")
	require.NoError(t, err)
	require.Equal(t, before+2, c.Stats().Retries)

	// A timeout is not retried, idempotent or not: the statement would run
	// as long again.
	for _, sql := range []string{
		"SET LOCAL statement_timeout = '50ms'; SELECT pg_sleep(5)", // the server cancels it (57014)
		"SELECT pg_sleep(5)", // the caller's deadline
	} {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = c.Exec(pgclient.Idempotent(dctx), sql)
		cancel()
		require.Error(t, err, sql)
		require.True(t, pgclient.IsTransient(err), err.Error())
		require.Equal(t, before+2, c.Stats().Retries, sql)
	}
}

// TestInTxRetriesSerializationFailures loses a serialization conflict on the
// first attempt: InTx runs the function again and commits.
func TestInTxRetriesSerializationFailures(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := testdb.NewEmpty(t)
	c := openClient(t, fastConfig(url))
	_, err := c.Exec(ctx, "CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL); INSERT INTO acct VALUES (1, 0), (2, 0)")
	require.NoError(t, err)
	other := pgConnect(t, url)

	var attempts atomic.Int32
	serializable := pgx.TxOptions{IsoLevel: pgx.Serializable}
	err = c.InTxOptions(ctx, serializable, func(tx pgx.Tx) error {
		n := attempts.Add(1)
		var sum int
		if err := tx.QueryRow(ctx, "SELECT sum(v) FROM acct").Scan(&sum); err != nil {
			return err
		}
		if n == 1 {
			// A concurrent transaction reads the same and commits first.
			err := pgx.BeginTxFunc(ctx, other, serializable, func(otx pgx.Tx) error {
				if _, err := otx.Exec(ctx, "SELECT sum(v) FROM acct"); err != nil {
					return err
				}
				_, err := otx.Exec(ctx, "UPDATE acct SET v = v + 1 WHERE id = 2")
				return err
			})
			if err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "UPDATE acct SET v = v + 1 WHERE id = 1")
		return err
	})
	require.NoError(t, err)
	require.EqualValues(t, 2, attempts.Load())
	var v1, v2 int
	require.NoError(t, c.QueryRow(ctx, "SELECT (SELECT v FROM acct WHERE id = 1), (SELECT v FROM acct WHERE id = 2)").Scan(&v1, &v2))
	require.Equal(t, 1, v1, "committed once")
	require.Equal(t, 1, v2)

	// A permanent error is returned at once, after one attempt.
	attempts.Store(0)
	err = c.InTx(ctx, func(tx pgx.Tx) error {
		attempts.Add(1)
		_, err := tx.Exec(ctx, "INSERT INTO acct VALUES (1, 0)")
		return err
	})
	require.True(t, pgclient.IsPermanent(err))
	require.EqualValues(t, 1, attempts.Load())

	// An error of the function's own is returned as is.
	mine := errors.New("mine")
	require.ErrorIs(t, c.InTx(ctx, func(pgx.Tx) error { return mine }), mine)
	require.Equal(t, pgclient.BreakerClosed, c.BreakerStatus().State)
}
