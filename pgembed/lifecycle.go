package pgembed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// portAttempts bounds how often Start picks another free port when the one it
// chose was taken before the server could bind it.
const portAttempts = 5

// Start starts the server again after Stop or Kill, with the same port, data
// and settings, and waits until it accepts connections (bounded by ctx and
// Config.StartTimeout). It returns nil at once if the server is running. The
// error wraps ErrPortInUse when the port has been taken meanwhile.
func (c *Cluster) Start(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errors.New("pgembed: Start on a closed cluster")
	}
	if c.Running() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()

	pick := c.port == 0
	for attempt := 1; ; attempt++ {
		if pick {
			port, err := freePort()
			if err != nil {
				return err
			}
			c.port = port
		} else if err := checkPortFree(c.port); err != nil {
			return err
		}
		err := c.startOnce(ctx)
		if err == nil {
			return nil
		}
		if !pick || !errors.Is(err, ErrPortInUse) || attempt == portAttempts {
			if pick {
				c.port = 0
			}
			return err
		}
		c.log.Warn("pgembed: port taken before the server bound it; trying another", "port", c.port, "attempt", attempt)
	}
}

// startOnce writes the configuration, runs pg_ctl start and waits for the
// server to accept connections. On failure nothing is left running.
func (c *Cluster) startOnce(ctx context.Context) error {
	if err := errors.Join(c.writeConfig(), c.writeHBA()); err != nil {
		return err
	}
	c.clearStaleLocks()
	offset := c.logSize()
	begin := time.Now()
	err := c.id.run(ctx, filepath.Join(c.binDir, "pg_ctl"), "start", "-D", c.dataDir,
		"-l", filepath.Join(c.dataDir, logFile), "-w", "-t", strconv.Itoa(timeoutSeconds(ctx)), "-s")
	if err == nil {
		err = c.waitReady(ctx)
	}
	if err == nil {
		c.log.Info("pgembed: server started", "port", c.port, "data_dir", c.dataDir,
			"pid", postmasterPID(c.dataDir), "duration", time.Since(begin).Round(time.Millisecond))
		return nil
	}
	// pg_ctl gives up on timeout or cancellation but leaves the postmaster
	// starting; never leave it behind.
	if c.Running() {
		_ = c.stopLocked(context.Background(), StopImmediate)
	}
	tail := c.logSince(offset)
	if strings.Contains(tail, "Address already in use") {
		return fmt.Errorf("%w: 127.0.0.1:%d: %s", ErrPortInUse, c.port, tail)
	}
	if tail != "" {
		return fmt.Errorf("pgembed: start server on port %d: %w\nserver log (%s):\n%s", c.port, err, filepath.Join(c.dataDir, logFile), tail)
	}
	return fmt.Errorf("pgembed: start server on port %d: %w", c.port, err)
}

// waitReady polls with real connections over the unix socket until one
// succeeds, the postmaster dies, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context) error {
	cfg, err := pgconn.ParseConfig(c.SocketURL("postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgconn.ConnectConfig(attempt, cfg)
		cancel()
		if err == nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(closeCtx)
			cancel()
			return nil
		}
		last = err
		if !c.Running() {
			return fmt.Errorf("server exited while starting: %w", last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not accepting connections: %w (last attempt: %w)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the server down with pg_ctl stop -m smart|fast|immediate and
// waits until it has exited (bounded by ctx, or 60 seconds without a
// deadline). StopSmart waits for clients to disconnect, so with open
// connections it fails at that deadline and leaves the server shutting down.
// Stop returns nil if the server is not running, so it is idempotent.
func (c *Cluster) Stop(ctx context.Context, mode StopMode) error {
	c.life.Lock()
	defer c.life.Unlock()
	return c.stopLocked(ctx, mode)
}

func (c *Cluster) stopLocked(ctx context.Context, mode StopMode) error {
	if mode < StopSmart || mode > StopImmediate {
		return fmt.Errorf("pgembed: Stop: unknown mode %d (use StopSmart, StopFast or StopImmediate)", int(mode))
	}
	if !c.Running() {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	begin := time.Now()
	err := c.id.run(ctx, filepath.Join(c.binDir, "pg_ctl"), "stop", "-D", c.dataDir,
		"-m", mode.String(), "-w", "-t", strconv.Itoa(timeoutSeconds(ctx)), "-s")
	if err != nil && c.Running() {
		return err
	}
	c.log.Info("pgembed: server stopped", "port", c.port, "mode", mode.String(), "duration", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Restart stops the server with mode and starts it again on the same port.
func (c *Cluster) Restart(ctx context.Context, mode StopMode) error {
	if err := c.Stop(ctx, mode); err != nil {
		return err
	}
	return c.Start(ctx)
}

// Kill simulates a crash: it sends SIGKILL to the postmaster, then to every
// server process left behind, and waits (up to 30 seconds) until all are gone.
// Committed data survives; the next Start runs crash recovery. It returns nil
// if the server is not running.
func (c *Cluster) Kill() error {
	c.life.Lock()
	defer c.life.Unlock()
	pid := postmasterPID(c.dataDir)
	if !processAlive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgembed: kill postmaster %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := serverProcesses(c.dataDir)
		if processAlive(pid) {
			left = append(left, pid)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgembed: server processes %v still alive 30s after SIGKILL", left)
		}
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.clearStaleLocks()
	c.log.Info("pgembed: server killed", "port", c.port, "pid", pid)
	return nil
}

// Running reports whether the postmaster recorded in postmaster.pid is alive.
func (c *Cluster) Running() bool {
	return processAlive(postmasterPID(c.dataDir))
}

// clearStaleLocks removes postmaster.pid and the socket lock file when their
// postmaster is dead but not reaped (a zombie): PostgreSQL takes a zombie's
// pid for a live server and would refuse to start. A dead, reaped postmaster's
// files are left to PostgreSQL, which handles them itself.
func (c *Cluster) clearStaleLocks() {
	pid := postmasterPID(c.dataDir)
	if pid == 0 || processAlive(pid) || syscall.Kill(pid, 0) != nil {
		return
	}
	if len(serverProcesses(c.dataDir)) > 0 {
		return
	}
	_ = os.Remove(filepath.Join(c.dataDir, "postmaster.pid"))
	if c.port != 0 {
		_ = os.Remove(filepath.Join(c.socketDir, fmt.Sprintf(".s.PGSQL.%d.lock", c.port)))
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgembed: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgembed: find a free port: %w", err)
	}
	return port, nil
}

// checkPortFree fails with ErrPortInUse when 127.0.0.1:port cannot be bound.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: 127.0.0.1:%d", ErrPortInUse, port)
		}
		return fmt.Errorf("pgembed: check port %d: %w", port, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("pgembed: check port %d: %w", port, err)
	}
	return nil
}

// timeoutSeconds converts ctx's remaining time to whole seconds for pg_ctl -t
// (at least 1; 60 without a deadline).
func timeoutSeconds(ctx context.Context) int {
	d, ok := ctx.Deadline()
	if !ok {
		return 60
	}
	return max(1, int(math.Ceil(time.Until(d).Seconds())))
}
