package pgclient_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
)

func TestClassifyErrorValues(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want pgclient.Class
	}{
		{"nil", nil, pgclient.ClassNone},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), pgclient.ClassCanceled},
		{"canceled beats a transient cause", errors.Join(io.EOF, context.Canceled), pgclient.ClassCanceled},
		{"deadline", context.DeadlineExceeded, pgclient.ClassTransient},
		{"query timeout", fmt.Errorf("%w: %w", pgclient.ErrQueryTimeout, context.DeadlineExceeded), pgclient.ClassTransient},
		{"pool exhausted", fmt.Errorf("%w: 25 of 25 in use", pgclient.ErrPoolExhausted), pgclient.ClassTransient},
		{"breaker open", &pgclient.UnavailableError{State: pgclient.BreakerOpen}, pgclient.ClassTransient},
		{"closed client", pgclient.ErrClosed, pgclient.ClassPermanent},
		{"EOF", io.EOF, pgclient.ClassTransient},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), pgclient.ClassTransient},
		{"connection refused", refused, pgclient.ClassTransient},
		{"connection reset", syscall.ECONNRESET, pgclient.ClassTransient},
		{"conn closed", pgconn.ErrConnClosed, pgclient.ClassTransient},
		{"unknown authority", x509.UnknownAuthorityError{}, pgclient.ClassPermanent},
		{"hostname mismatch", x509.HostnameError{Host: "db"}, pgclient.ClassPermanent},
		{"TLS alert from the server", &net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}, pgclient.ClassPermanent},
		{"unknown error", errors.New("something else"), pgclient.ClassPermanent},
		{"serialization failure", pg("40001"), pgclient.ClassRetryTx},
		{"deadlock", pg("40P01"), pgclient.ClassRetryTx},
		{"lock not available", pg("55P03"), pgclient.ClassRetryTx},
		{"connection exception", pg("08000"), pgclient.ClassTransient},
		{"unable to connect", pg("08001"), pgclient.ClassTransient},
		{"connection does not exist", pg("08003"), pgclient.ClassTransient},
		{"connection rejected", pg("08004"), pgclient.ClassTransient},
		{"connection failure", pg("08006"), pgclient.ClassTransient},
		{"protocol violation", pg("08P01"), pgclient.ClassPermanent},
		{"transaction outcome unknown", pg("08007"), pgclient.ClassPermanent},
		{"too many connections", pg("53300"), pgclient.ClassTransient},
		{"out of memory", pg("53200"), pgclient.ClassTransient},
		{"admin shutdown", pg("57P01"), pgclient.ClassTransient},
		{"crash shutdown", pg("57P02"), pgclient.ClassTransient},
		{"cannot connect now", pg("57P03"), pgclient.ClassTransient},
		{"database dropped", pg("57P04"), pgclient.ClassPermanent},
		{"object not in prerequisite state", pg("55000"), pgclient.ClassPermanent},
		{"idle session timeout", pg("57P05"), pgclient.ClassTransient},
		{"query canceled", pg("57014"), pgclient.ClassTransient},
		{"read-only transaction", pg("25006"), pgclient.ClassTransient},
		{"unique violation", pg("23505"), pgclient.ClassPermanent},
		{"invalid text", pg("22P02"), pgclient.ClassPermanent},
		{"syntax error", pg("42601"), pgclient.ClassPermanent},
		{"invalid password", pg("28P01"), pgclient.ClassPermanent},
		{"no such database", pg("3D000"), pgclient.ClassPermanent},
		{"feature not supported", pg("0A000"), pgclient.ClassPermanent},
		{"a server error inside a connect error wins over its network cause", errors.Join(refused, &pgconn.PgError{Code: "28P01"}), pgclient.ClassPermanent},
	} {
		require.Equal(t, tc.want, pgclient.Classify(tc.err), "%s: %v", tc.name, tc.err)
		require.Equal(t, tc.want == pgclient.ClassTransient, pgclient.IsTransient(tc.err), tc.name)
		require.Equal(t, tc.want == pgclient.ClassRetryTx, pgclient.IsRetryableTx(tc.err), tc.name)
		require.Equal(t, tc.want == pgclient.ClassPermanent, pgclient.IsPermanent(tc.err), tc.name)
	}
	require.Equal(t, "retry_tx", pgclient.ClassRetryTx.String())
}

// TestClassifyServerErrors classifies errors produced by a real server.
func TestClassifyServerErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := testdb.NewEmpty(t)
	conn := pgConnect(t, url)
	_, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0); INSERT INTO t (id) VALUES (1), (2)")
	require.NoError(t, err)

	expect := func(err error, code string, want pgclient.Class) {
		t.Helper()
		require.Error(t, err)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, code, pgErr.Code, err.Error())
		require.Equal(t, want, pgclient.Classify(err), err.Error())
	}

	_, err = conn.Exec(ctx, "INSERT INTO t (id) VALUES (1)")
	expect(err, "23505", pgclient.ClassPermanent)
	_, err = conn.Exec(ctx, "SELEC 1")
	expect(err, "42601", pgclient.ClassPermanent)
	_, err = conn.Exec(ctx, "SELECT 'x'::int")
	expect(err, "22P02", pgclient.ClassPermanent)
	_, err = conn.Exec(ctx, "SELECT count(*) FROM t FOR UPDATE")
	expect(err, "0A000", pgclient.ClassPermanent)

	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO t (id) VALUES (3)")
		return err
	})
	expect(err, "25006", pgclient.ClassTransient)

	_, err = conn.Exec(ctx, "SET statement_timeout = '20ms'; SELECT pg_sleep(5)")
	expect(err, "57014", pgclient.ClassTransient)
	_, err = conn.Exec(ctx, "SET statement_timeout = 0; SET deadlock_timeout = '50ms'; SET lock_timeout = 0")
	require.NoError(t, err)

	// 55P03: the row is locked and NOWAIT will not wait.
	other := pgConnect(t, url)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT * FROM t WHERE id = 1 FOR UPDATE")
	require.NoError(t, err)
	_, err = other.Exec(ctx, "SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT")
	expect(err, "55P03", pgclient.ClassRetryTx)

	// 40P01: each holds a row the other wants.
	otx, err := other.Begin(ctx)
	require.NoError(t, err)
	_, err = otx.Exec(ctx, "SET LOCAL deadlock_timeout = '50ms'; SELECT * FROM t WHERE id = 2 FOR UPDATE")
	require.NoError(t, err)
	errs := make(chan error, 2)
	go func() { _, err := tx.Exec(ctx, "SELECT * FROM t WHERE id = 2 FOR UPDATE"); errs <- err }()
	go func() { _, err := otx.Exec(ctx, "SELECT * FROM t WHERE id = 1 FOR UPDATE"); errs <- err }()
	e1, e2 := <-errs, <-errs
	require.True(t, (e1 == nil) != (e2 == nil), "exactly one is the deadlock victim: %v / %v", e1, e2)
	expect(errors.Join(e1, e2), "40P01", pgclient.ClassRetryTx)
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, otx.Rollback(ctx))

	// 40001: write skew between two serializable transactions.
	serializable := pgx.TxOptions{IsoLevel: pgx.Serializable}
	tx, err = conn.BeginTx(ctx, serializable)
	require.NoError(t, err)
	otx, err = other.BeginTx(ctx, serializable)
	require.NoError(t, err)
	for _, q := range []pgx.Tx{tx, otx} {
		_, err = q.Exec(ctx, "SELECT sum(v) FROM t")
		require.NoError(t, err)
	}
	_, err = tx.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 1")
	require.NoError(t, err)
	_, err = otx.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 2")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	err = otx.Commit(ctx)
	expect(err, "40001", pgclient.ClassRetryTx)

	// 57P01: the backend is terminated by an administrator.
	var pid uint32 = other.PgConn().PID()
	_, err = conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n))
		return n == 0
	}, 10*time.Second, 10*time.Millisecond)
	_, err = other.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	require.Equal(t, pgclient.ClassTransient, pgclient.Classify(err), err.Error())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		require.Equal(t, "57P01", pgErr.Code)
	}

	// 3D000 at connect time.
	_, err = pgx.Connect(ctx, replaceDatabase(t, url, "no_such_database"))
	expect(err, "3D000", pgclient.ClassPermanent)

	// 55000 at connect time: the database takes no connections for now.
	admin := pgConnect(t, testdb.AdminURL(t))
	var db string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	_, err = admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" ALLOW_CONNECTIONS false")
	require.NoError(t, err)
	_, err = pgx.Connect(ctx, url)
	expect(err, "55000", pgclient.ClassTransient)
	_, err = admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" ALLOW_CONNECTIONS true")
	require.NoError(t, err)
}

func TestClassifyNetworkErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// Nothing listens on a port that was just released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = pgx.Connect(ctx, "postgres://u@"+addr+"/db?sslmode=disable&connect_timeout=5")
	require.Error(t, err)
	require.True(t, errors.Is(err, syscall.ECONNREFUSED), err.Error())
	require.Equal(t, pgclient.ClassTransient, pgclient.Classify(err))

	// A server that accepts and never answers: the deadline ends the connect.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = pgx.Connect(dctx, "postgres://u@"+ln.Addr().String()+"/db?sslmode=disable")
	require.Error(t, err)
	require.True(t, pgconn.Timeout(err), err.Error())
	require.Equal(t, pgclient.ClassTransient, pgclient.Classify(err))

	// The caller's own cancellation.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = pgx.Connect(cctx, testdb.AdminURL(t))
	require.Error(t, err)
	require.Equal(t, pgclient.ClassCanceled, pgclient.Classify(err), err.Error())
}
