package pgembed

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestLifecycle drives one cluster through start, query, stop, restart, kill
// and close; the subtests run in order and share its data.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c, err := Start(ctx, Config{Password: "s3cret 'quoted'", Settings: map[string]string{"max_connections": "123"}})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close()
		}
	})

	count := func(t *testing.T) string {
		return queryString(t, connect(t, c.URL("postgres")), "SELECT count(*)::text FROM items")
	}

	t.Run("query over TCP and socket", func(t *testing.T) {
		require.True(t, c.Running())
		require.Equal(t, "127.0.0.1", c.Host())
		require.NotZero(t, c.Port())
		require.Equal(t, fmt.Sprintf("postgres://postgres:s3cret%%20%%27quoted%%27@127.0.0.1:%d/postgres?sslmode=disable", c.Port()), c.URL("postgres"))
		conn := connect(t, c.URL("postgres"))
		require.Equal(t, "postgres", queryString(t, conn, "SELECT current_user"))
		require.Equal(t, "123", queryString(t, conn, "SHOW max_connections"))
		require.Equal(t, "127.0.0.1", queryString(t, conn, "SHOW listen_addresses"))
		execSQL(t, conn, "CREATE TABLE items (n int)")
		execSQL(t, conn, "INSERT INTO items VALUES (1)")

		sock := connect(t, c.SocketURL("postgres"))
		require.Equal(t, "1", queryString(t, sock, "SELECT count(*)::text FROM items"))
		require.Equal(t, c.SocketDir(), queryString(t, sock, "SHOW unix_socket_directories"))
		require.Equal(t, c.DataDir(), queryString(t, sock, "SHOW data_directory"))
	})

	t.Run("wrong password is refused", func(t *testing.T) {
		url := fmt.Sprintf("postgres://postgres:nope@127.0.0.1:%d/postgres?sslmode=disable", c.Port())
		var pgErr *pgconn.PgError
		require.ErrorAs(t, tryConnect(url), &pgErr)
		require.Equal(t, "28P01", pgErr.Code)
	})

	t.Run("postmaster is detached from our process group", func(t *testing.T) {
		pid := postmasterPID(c.DataDir())
		require.NotZero(t, pid)
		pgid, err := syscall.Getpgid(pid)
		require.NoError(t, err)
		require.NotEqual(t, syscall.Getpgrp(), pgid, "a Ctrl-C to our group must not reach the server")
		if os.Geteuid() == 0 {
			require.Equal(t, "postgres", processUser(t, pid))
		}
	})

	rows := 1
	for _, mode := range []StopMode{StopFast, StopImmediate, StopSmart} {
		t.Run("restart "+mode.String(), func(t *testing.T) {
			conn := connect(t, c.URL("postgres"))
			execSQL(t, conn, "INSERT INTO items VALUES (2)")
			require.NoError(t, conn.Close(ctx))
			rows++
			port := c.Port()
			require.NoError(t, c.Restart(ctx, mode))
			require.Equal(t, port, c.Port())
			require.True(t, c.Running())
			require.Equal(t, strconv.Itoa(rows), count(t))
		})
	}

	t.Run("kill then start recovers committed data", func(t *testing.T) {
		conn := connect(t, c.URL("postgres"))
		execSQL(t, conn, "INSERT INTO items VALUES (3)")
		pid := postmasterPID(c.DataDir())
		require.NoError(t, c.Kill())
		require.False(t, c.Running())
		require.False(t, processAlive(pid))
		require.Empty(t, serverProcesses(c.DataDir()), "no backend outlives Kill")
		require.Error(t, tryConnect(c.URL("postgres")))
		require.NoError(t, c.Kill(), "Kill of a stopped server is a no-op")

		require.NoError(t, c.Start(ctx))
		require.Equal(t, "5", count(t))
		log, err := os.ReadFile(c.DataDir() + "/" + logFile)
		require.NoError(t, err)
		require.True(t, bytes.Contains(log, []byte("database system was interrupted")), "the restart ran crash recovery")
	})

	t.Run("stop is idempotent", func(t *testing.T) {
		require.NoError(t, c.Stop(ctx, StopFast))
		require.False(t, c.Running())
		require.NoError(t, c.Stop(ctx, StopFast))
		require.Error(t, tryConnect(c.URL("postgres")))
	})

	t.Run("start on a port taken meanwhile", func(t *testing.T) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port())))
		require.NoError(t, err)
		err = c.Start(ctx)
		require.NoError(t, l.Close())
		require.ErrorIs(t, err, ErrPortInUse)
		require.ErrorContains(t, err, strconv.Itoa(c.Port()))

		require.NoError(t, c.Start(ctx))
		require.NoError(t, c.Start(ctx), "Start of a running server is a no-op")
		require.Equal(t, "5", count(t))
	})

	t.Run("close removes the temporary data directory", func(t *testing.T) {
		require.NoError(t, c.Close())
		closed = true
		require.False(t, c.Running())
		_, err := os.Stat(c.DataDir())
		require.True(t, errors.Is(err, os.ErrNotExist), "stat: %v", err)
		require.NoError(t, c.Close(), "Close is idempotent")
		require.Error(t, c.Start(ctx))
	})
}

func TestCloseAfterKill(t *testing.T) {
	t.Parallel()
	c, err := Start(testContext(t), Config{})
	require.NoError(t, err)
	require.NoError(t, c.Kill())
	require.NoError(t, c.Close())
	_, err = os.Stat(c.DataDir())
	require.True(t, errors.Is(err, os.ErrNotExist), "stat: %v", err)
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Close()) }()
	port := l.Addr().(*net.TCPAddr).Port

	_, err = Start(testContext(t), Config{Port: port})
	require.ErrorIs(t, err, ErrPortInUse)
	require.ErrorContains(t, err, strconv.Itoa(port))
}

func TestPersistentDataDir(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := searchableTempDir(t) + "/data"
	cfg := Config{DataDir: dir, Password: "pw", Settings: map[string]string{"work_mem": "7MB"}}

	first, err := Start(ctx, cfg)
	require.NoError(t, err)
	conn := connect(t, first.URL("postgres"))
	require.Equal(t, "7MB", queryString(t, conn, "SHOW work_mem"))
	execSQL(t, conn, "CREATE TABLE kept AS SELECT 42 AS answer")
	require.NoError(t, conn.Close(ctx))
	require.NoError(t, first.Close())
	_, err = os.Stat(dir + "/PG_VERSION")
	require.NoError(t, err, "Close keeps a persistent data directory")

	cfg.Settings = map[string]string{"work_mem": "9MB"}
	second := startCluster(t, cfg)
	require.Equal(t, dir, second.DataDir())
	conn = connect(t, second.URL("postgres"))
	require.Equal(t, "42", queryString(t, conn, "SELECT answer::text FROM kept"))
	require.Equal(t, "9MB", queryString(t, conn, "SHOW work_mem"), "settings apply to a reused data directory")

	_, err = Start(ctx, cfg)
	require.ErrorIs(t, err, ErrAlreadyRunning, "a second server on the same data directory is refused")
	require.True(t, second.Running(), "the refused Start leaves the running server alone")
	require.Equal(t, "42", queryString(t, conn, "SELECT answer::text FROM kept"))
}

// processUser returns the name of the OS user running pid.
func processUser(t *testing.T, pid int) string {
	t.Helper()
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	require.NoError(t, err)
	uid := fi.Sys().(*syscall.Stat_t).Uid
	id, err := currentIdentity()
	require.NoError(t, err)
	if int(uid) == id.uid {
		return id.name
	}
	return strconv.Itoa(int(uid))
}
