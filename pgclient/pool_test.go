package pgclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
)

func TestWarmUpEstablishesMinConns(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 5, MaxConns: 10})
	// Counted right after Open returned, before any query.
	require.Equal(t, 5, backends(t, b.app))
	s := b.client.Stats()
	require.EqualValues(t, 5, s.Size)
	require.EqualValues(t, 5, s.Idle)
}

func TestPoolExhausted(t *testing.T) {
	t.Parallel()
	const timeout = 400 * time.Millisecond
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2, AcquireTimeout: timeout})
	c, ctx := b.client, ctxT(t)

	var held []*pgclient.Conn
	for range 2 {
		conn, err := c.Acquire(ctx)
		require.NoError(t, err)
		held = append(held, conn)
	}
	start := time.Now()
	_, err := c.Exec(ctx, "SELECT 1")
	elapsed := time.Since(start)
	require.ErrorIs(t, err, pgclient.ErrPoolExhausted)
	require.GreaterOrEqual(t, elapsed, timeout*8/10)
	require.Less(t, elapsed, timeout*3)
	require.EqualValues(t, 1, c.Stats().FailedAcquisitions)

	// The caller's own shorter deadline is not the pool's fault.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = c.Exec(short, "SELECT 1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, pgclient.ErrPoolExhausted)
	require.EqualValues(t, 1, c.Stats().FailedAcquisitions)

	// Errors surface where pgx puts them for each operation.
	require.ErrorIs(t, c.QueryRow(ctx, "SELECT 1").Scan(new(int)), pgclient.ErrPoolExhausted)
	rows, err := c.Query(ctx, "SELECT 1")
	require.ErrorIs(t, err, pgclient.ErrPoolExhausted)
	require.ErrorIs(t, rows.Err(), pgclient.ErrPoolExhausted)
	require.EqualValues(t, 3, c.Stats().FailedAcquisitions)

	for _, conn := range held {
		conn.Release()
	}
	_, err = c.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
}

func backendPID(t *testing.T, c *pgclient.Client) uint32 {
	t.Helper()
	var pid uint32
	require.NoError(t, c.QueryRow(ctxT(t), "SELECT pg_backend_pid()").Scan(&pid))
	return pid
}

func TestRecycleAfterMaxQueries(t *testing.T) {
	t.Parallel()
	const limit = 5
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, MaxQueriesPerConn: limit})
	c := b.client

	first := backendPID(t, c)
	for i := 2; i <= limit; i++ {
		require.Equal(t, first, backendPID(t, c), "query %d must run on the same connection", i)
	}
	require.NotEqual(t, first, backendPID(t, c), "query %d must run on a new connection", limit+1)
	require.EqualValues(t, 1, c.Stats().RecycledByQueries)

	// The replacement is counted too, and the pool keeps MinConns.
	second := backendPID(t, c)
	for i := 3; i <= limit; i++ {
		require.Equal(t, second, backendPID(t, c))
	}
	require.EqualValues(t, 2, c.Stats().RecycledByQueries)
	require.Eventually(t, func() bool { return backends(t, b.app) == 1 }, 10*time.Second, 20*time.Millisecond)
}

func TestRecycleAfterMaxQueriesCountsBatchStatements(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, MaxQueriesPerConn: 3})
	c, ctx := b.client, ctxT(t)
	first := backendPID(t, c) // 1 statement
	tx, err := c.Begin(ctx)   // BEGIN is the 2nd
	require.NoError(t, err)
	var pid uint32
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)) // 3rd
	require.Equal(t, first, pid)
	require.NoError(t, tx.Commit(ctx)) // 4th, then released and closed
	require.NotEqual(t, first, backendPID(t, c))
}

func TestRecycleAfterConnMaxAge(t *testing.T) {
	t.Parallel()
	const age = 300 * time.Millisecond
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, ConnMaxAge: age, ConnMaxAgeJitter: -1})
	c := b.client
	first := backendPID(t, c)
	require.Equal(t, first, backendPID(t, c), "young connection is reused")
	time.Sleep(age + 100*time.Millisecond)
	require.NotEqual(t, first, backendPID(t, c))
	require.GreaterOrEqual(t, c.Stats().RecycledByAge, int64(1))
}

func TestConnMaxAgeJitterSpreadsRecycling(t *testing.T) {
	t.Parallel()
	// With a jitter ten times the age, connections opened together expire at
	// different times: after the base age some are still alive.
	b := setup(t, pgclient.Config{MinConns: 8, MaxConns: 8, ConnMaxAge: 100 * time.Millisecond,
		ConnMaxAgeJitter: 2 * time.Second, HealthCheckPeriod: 50 * time.Millisecond})
	time.Sleep(700 * time.Millisecond)
	s := b.client.Stats()
	require.Positive(t, s.RecycledByAge, "some connections recycled")
	require.Less(t, s.RecycledByAge, int64(8), "not all recycled at once")
}

func TestQueryTimeoutCancelsOnServer(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, QueryTimeout: timeout})
	c, ctx := b.client, ctxT(t)

	var setting string
	require.NoError(t, c.QueryRow(ctx, "SHOW statement_timeout").Scan(&setting))
	require.Equal(t, "1300ms", setting, "server-side backstop: query_timeout + 1s")

	pid := backendPID(t, c)
	opened := c.Stats().NewConnections
	start := time.Now()
	_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
	require.ErrorIs(t, err, pgclient.ErrQueryTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
	requireNotRunning(t, b.app, "pg_sleep")

	// The connection survived the cancel.
	require.Equal(t, pid, backendPID(t, c))
	require.Equal(t, opened, c.Stats().NewConnections)
	require.EqualValues(t, 1, c.Stats().QueryTimeouts)

	// The caller's own deadline cancels on the server too, without being
	// reported as the client's timeout.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	rows, err := c.Query(short, "SELECT pg_sleep(30)")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
	}
	require.Error(t, err)
	require.NotErrorIs(t, err, pgclient.ErrQueryTimeout)
	requireNotRunning(t, b.app, "pg_sleep")
	require.Equal(t, pid, backendPID(t, c))
}

func TestQueryTimeoutInTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, QueryTimeout: 200 * time.Millisecond})
	c, ctx := b.client, ctxT(t)
	pid := backendPID(t, c)
	err := c.InTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_sleep(30)")
		return err
	})
	require.ErrorIs(t, err, pgclient.ErrQueryTimeout)
	requireNotRunning(t, b.app, "pg_sleep")
	require.Equal(t, pid, backendPID(t, c), "rolled back and kept")
}

// requireNotRunning asserts that no backend of app is running a statement
// containing text.
func requireNotRunning(t *testing.T, app, text string) {
	t.Helper()
	var n int
	admin(t, func(conn *pgx.Conn) {
		require.NoError(t, conn.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND state = 'active' AND query LIKE '%' || $2 || '%'`,
			app, text).Scan(&n))
	})
	require.Zero(t, n, "%s still running on the server", text)
}

func TestExhaustedErrorMentionsState(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1, AcquireTimeout: 100 * time.Millisecond})
	c, ctx := b.client, ctxT(t)
	conn, err := c.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = c.Acquire(ctx)
	require.True(t, errors.Is(err, pgclient.ErrPoolExhausted))
	require.Contains(t, err.Error(), "1 of 1 in use")
}

// TestWarmUpAfterAFailedBackgroundConnect opens a client through a proxy
// that drops the second connection (the pool's first, after Open's probe):
// pgxpool gives up on it until its next health check, and Open must still
// return with MinConns established, opening the missing one itself.
func TestWarmUpAfterAFailedBackgroundConnect(t *testing.T) {
	t.Parallel()
	upstream := serverAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var accepted atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { _ = ln.Close() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if accepted.Add(1) == 2 {
				_ = c.Close()
				continue
			}
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
			wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		}
	})
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	cfg := fastConfig(withHostPort(t, testdb.NewEmpty(t), "127.0.0.1", port))
	cfg.MinConns = 2
	cfg.HealthCheckPeriod = time.Hour

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgclient.Open(ctx, cfg)
	require.NoError(t, err)
	s := c.Stats()
	c.Close()
	require.GreaterOrEqual(t, s.Size, int32(2))
	require.GreaterOrEqual(t, accepted.Load(), int32(3), "the dropped connection was replaced")
}

func TestStrayCancelClosesConnection(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 1})
	c, ctx := b.client, ctxT(t)
	pid := backendPID(t, c)

	// A context that ended before its statement: pgx sends nothing, and the
	// connection is kept.
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err := c.Pool().Exec(done, "SELECT 1")
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, pid, backendPID(t, c), "no cancel request went out")

	// The statement has finished on the server while the caller still reads
	// its rows; then the caller's context ends. pgx sends a cancel request
	// that the statement never sees: on a loaded machine it may reach the
	// backend during the next holder's statement. The connection is closed.
	reading, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := c.Pool().Query(reading, "SELECT generate_series(1, 3)")
	require.NoError(t, err)
	require.True(t, rows.Next())
	cancel()
	time.Sleep(300 * time.Millisecond) // pgx sends the cancel request meanwhile
	for rows.Next() {
	}
	rows.Close()
	next := backendPID(t, c)
	require.NotEqual(t, pid, next, "a cancel request may still be on its way to the backend")

	// A statement the cancellation ended (57014) used it up: kept.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	_, err = c.Exec(short, "SELECT pg_sleep(30)")
	require.Error(t, err)
	require.Equal(t, next, backendPID(t, c))
}
