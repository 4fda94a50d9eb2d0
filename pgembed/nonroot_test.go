package pgembed

import (
	"bytes"
	"context"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nonRootHelperEnv makes TestNonRootHelper run instead of skip; TestNonRoot
// sets it when it re-executes this test binary as the postgres OS user.
const nonRootHelperEnv = "PGEMBED_TEST_NONROOT_HELPER"

// TestNonRoot proves the ordinary-user path while the tests run as root: it
// runs TestNonRootHelper in a copy of this test binary as the postgres OS user.
func TestNonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("already running as a non-root user: every other test covers that path")
	}
	id, err := currentIdentity()
	require.NoError(t, err)

	// The go tool's build directory is private to root; copy the binary where
	// the postgres user can execute it.
	dir := searchableTempDir(t)
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(dir, "pgembed.test")
	copyFile(t, self, bin, 0o755)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := osexec.CommandContext(ctx, bin, "-test.run=^TestNonRootHelper$", "-test.v", "-test.count=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.uid), Gid: uint32(id.gid)}}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), nonRootHelperEnv+"=1", "HOME="+id.home, "TMPDIR="+os.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	require.NoError(t, err, "helper output:\n%s", out.String())
	require.Contains(t, out.String(), "--- PASS: TestNonRootHelper", "helper output:\n%s", out.String())
}

// TestNonRootHelper starts, queries, restarts and stops a cluster as the
// current non-root user; it only runs when re-executed by TestNonRoot.
func TestNonRootHelper(t *testing.T) {
	if os.Getenv(nonRootHelperEnv) != "1" {
		t.Skip("run by TestNonRoot as the postgres OS user")
	}
	require.NotZero(t, os.Geteuid())
	id, err := currentIdentity()
	require.NoError(t, err)
	require.False(t, id.switchUser, "no user switch when not root")

	ctx := testContext(t)
	c, err := Start(ctx, Config{})
	require.NoError(t, err)
	pid := postmasterPID(c.DataDir())
	fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
	require.NoError(t, err)
	require.Equal(t, uint32(os.Geteuid()), fi.Sys().(*syscall.Stat_t).Uid, "the server runs as the calling user")

	conn := connect(t, c.URL("postgres"))
	execSQL(t, conn, "CREATE TABLE t AS SELECT 1 AS n")
	require.NoError(t, conn.Close(ctx))
	require.NoError(t, c.Restart(ctx, StopImmediate))
	require.Equal(t, "1", queryString(t, connect(t, c.URL("postgres")), "SELECT n::text FROM t"))
	require.NoError(t, c.Stop(ctx, StopFast))
	require.False(t, c.Running())
	require.NoError(t, c.Close())
	_, err = os.Stat(c.DataDir())
	require.True(t, os.IsNotExist(err), "stat: %v", err)
	t.Log("non-root cluster: started, queried, restarted and stopped as uid", os.Geteuid())
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
