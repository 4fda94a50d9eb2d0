package hookreceiver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// crashChild is the receiver in a child process: this test binary run with
// -test.run=TestCrashChild.
type crashChild struct {
	cmd    *exec.Cmd
	output *testdb.SyncBuffer
	exited chan error
}

type crashChildConfig struct {
	DatabaseURL string `json:"database_url"`
	Addr        string `json:"addr"`
}

// startChild starts a receiver process and waits until it is ready. It may
// run outside the test's goroutine, so it returns errors rather than fail.
func startChild(t *testing.T, adminURL, dbURL, addr string) (*crashChild, error) {
	cfg, err := json.Marshal(crashChildConfig{DatabaseURL: dbURL, Addr: addr})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v")
	// The child's TestMain uses the parent's cluster rather than start one.
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(cfg), testdb.EnvURL+"="+adminURL)
	c := &crashChild{cmd: cmd, output: &testdb.SyncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.output, c.output
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // when the test failed before stopping it
		err := <-c.exited
		c.exited <- err
		if t.Failed() {
			t.Logf("receiver process %d output:\n%s", cmd.Process.Pid, c.output)
		}
	})
	// Ready when /readyz answers 200; the senders meanwhile see refused
	// connections and retry.
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case err := <-c.exited:
			c.exited <- err
			return nil, fmt.Errorf("receiver process exited before it was ready: %v\n%s", err, c.output)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("receiver process not ready after a minute:\n%s", c.output)
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *crashChild) kill() error {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	err := <-c.exited
	c.exited <- err
	return nil
}

// terminate sends SIGTERM and expects a clean exit.
func (c *crashChild) terminate() error {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-c.exited:
		c.exited <- err
		if err != nil {
			return fmt.Errorf("receiver process: %w\n%s", err, c.output)
		}
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("receiver process did not stop within a minute of SIGTERM:\n%s", c.output)
	}
}

// TestCrashChild is the receiver process of TestCrashRecovery; it runs only
// when started by it.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("the receiver process of TestCrashRecovery")
	}
	var cfg crashChildConfig
	require.NoError(t, json.Unmarshal([]byte(raw), &cfg))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b, err := newBundle(ctx, options{cfg: crashConfig(), dbURL: cfg.DatabaseURL, addr: cfg.Addr, poolMax: 16}, testLogger())
	require.NoError(t, err)
	fmt.Println("receiver listening on", cfg.Addr, "pid", strconv.Itoa(os.Getpid()))
	<-ctx.Done()
	require.NoError(t, b.stop())
	b.client.CloseIdleConnections()
	b.db.Close()
}
