package pgembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cluster is a PostgreSQL server managed by pgembed. Its methods are safe for
// concurrent use; lifecycle calls (Start, Stop, Kill, Close) are serialised.
type Cluster struct {
	cfg Config // with defaults
	id  osIdentity
	log *slog.Logger

	binDir     string
	dataDir    string
	socketDir  string
	port       int
	tempData   bool // dataDir is removed by Close
	tempSocket bool // socketDir lies outside dataDir and is removed by Close

	life sync.Mutex // serialises Start, Stop and Kill

	mu       sync.Mutex // guards the fields below
	tlsFiles *TLSFiles
	closed   bool
}

// Start creates (initdb) or reuses the data directory, starts the server and
// waits until it accepts connections, all within cfg.StartTimeout and ctx. On
// error nothing is left running and a temporary data directory is removed.
// Errors wrap ErrBinariesNotFound, ErrPortInUse or ErrVersionMismatch when
// those are the cause; a server that fails to start reports the tail of its log.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	c, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	if err := c.initialise(ctx); err != nil {
		// Nothing of ours runs yet: a server found running on the data
		// directory belongs to someone else and is left alone.
		c.removeTemp()
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		c.discard()
		return nil, err
	}
	return c, nil
}

// prepare validates cfg and resolves the binaries and the server's OS user.
func prepare(cfg Config) (*Cluster, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	binDir := cfg.BinDir
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, fmt.Errorf("%w: BinDir %s: %w", ErrBinariesNotFound, binDir, err)
	}
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: %w", err)
	}
	id, err := currentIdentity()
	if err != nil {
		return nil, err
	}
	if cfg.Port != 0 {
		// Fail before the slow initdb.
		if err := checkPortFree(cfg.Port); err != nil {
			return nil, err
		}
	}
	c := &Cluster{cfg: cfg, id: id, binDir: binDir, port: cfg.Port, log: cfg.Logger}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "pgembed-")
		if err != nil {
			return nil, fmt.Errorf("pgembed: create temporary data directory: %w", err)
		}
		c.dataDir, c.tempData = dir, true
	} else {
		if c.dataDir, err = filepath.Abs(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("pgembed: DataDir %q: %w", cfg.DataDir, err)
		}
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("pgembed: create DataDir: %w", err)
		}
	}
	if err := c.id.checkTraversable(c.dataDir); err != nil {
		c.removeTemp()
		return nil, err
	}
	return c, nil
}

// initialise runs initdb into an empty data directory, or checks that an
// existing one matches the binaries, then prepares sockets and certificates.
func (c *Cluster) initialise(ctx context.Context) error {
	major, err := binaryMajor(ctx, c.binDir)
	if err != nil {
		return err
	}
	ver, err := os.ReadFile(filepath.Join(c.dataDir, "PG_VERSION"))
	switch {
	case err == nil:
		if have := strings.TrimSpace(string(ver)); have != major {
			return fmt.Errorf("%w: %s was created by PostgreSQL %s, the binaries in %s are PostgreSQL %s",
				ErrVersionMismatch, c.dataDir, have, c.binDir, major)
		}
		if c.Running() {
			return fmt.Errorf("%w %s (pid %d); stop it first (%s -D %s stop -m fast), or use another data directory",
				ErrAlreadyRunning, c.dataDir, postmasterPID(c.dataDir), filepath.Join(c.binDir, "pg_ctl"), c.dataDir)
		}
		c.log.Info("pgembed: reusing data directory", "data_dir", c.dataDir, "version", major)
	case errors.Is(err, os.ErrNotExist):
		entries, err := os.ReadDir(c.dataDir)
		if err != nil {
			return fmt.Errorf("pgembed: %w", err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("pgembed: data directory %s is neither empty nor a PostgreSQL cluster (no PG_VERSION); choose an empty or new directory", c.dataDir)
		}
		if err := c.initdb(ctx); err != nil {
			return err
		}
	default:
		return fmt.Errorf("pgembed: %w", err)
	}
	return c.prepareDataDir()
}

func (c *Cluster) initdb(ctx context.Context) error {
	if err := c.id.chown(c.dataDir); err != nil {
		return err
	}
	args := []string{"-D", c.dataDir, "-U", c.cfg.User, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if c.tempData {
		// A throwaway cluster need not survive a machine crash right after creation.
		args = append(args, "--no-sync")
	}
	if c.cfg.Password != "" {
		f, err := os.CreateTemp("", "pgembed-pw-")
		if err != nil {
			return fmt.Errorf("pgembed: write password file: %w", err)
		}
		defer func() { _ = os.Remove(f.Name()) }()
		_, werr := f.WriteString(c.cfg.Password + "\n")
		if err := errors.Join(werr, f.Close(), c.id.chown(f.Name())); err != nil {
			return fmt.Errorf("pgembed: write password file: %w", err)
		}
		args = append(args, "--pwfile="+f.Name())
	}
	start := time.Now()
	if err := c.id.run(ctx, filepath.Join(c.binDir, "initdb"), args...); err != nil {
		return err
	}
	c.log.Info("pgembed: initdb done", "data_dir", c.dataDir, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// prepareDataDir gives the data directory to the server user and creates the
// socket directory and TLS material.
func (c *Cluster) prepareDataDir() error {
	if err := c.id.chownTree(c.dataDir); err != nil {
		return err
	}
	c.socketDir = filepath.Join(c.dataDir, socketDirName)
	if len(c.socketDir) > maxSocketDir {
		dir, err := os.MkdirTemp("", "pgembed-sock-")
		if err != nil {
			return fmt.Errorf("pgembed: create socket directory: %w", err)
		}
		c.socketDir, c.tempSocket = dir, true
	} else if err := os.MkdirAll(c.socketDir, 0o700); err != nil {
		return fmt.Errorf("pgembed: create socket directory: %w", err)
	}
	if err := c.id.chown(c.socketDir); err != nil {
		return err
	}
	if c.cfg.TLS != nil {
		files, err := c.generateTLS()
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.tlsFiles = files
		c.mu.Unlock()
	}
	return nil
}

// discard removes what a failed Start created.
func (c *Cluster) discard() {
	if c.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.Stop(ctx, StopImmediate); err != nil {
			_ = c.Kill()
		}
		cancel()
	}
	c.removeTemp()
}

func (c *Cluster) removeTemp() {
	if c.tempSocket && c.socketDir != "" {
		_ = os.RemoveAll(c.socketDir)
	}
	if c.tempData {
		_ = os.RemoveAll(c.dataDir)
	}
}

// Close stops the server (fast mode, or SIGKILL if that fails) and removes
// the data directory if it was temporary. It is idempotent and safe after
// Kill or Stop.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := c.Stop(ctx, StopFast)
	if err != nil && c.Running() {
		err = errors.Join(err, c.Kill())
	}
	c.removeTemp()
	return err
}

// URL returns a connection URL for the superuser on dbname over TCP:
// postgres://user[:password]@127.0.0.1:PORT/dbname?sslmode=disable. It uses
// sslmode=disable even when TLS is on; TLS clients build their own URL from
// Host, Port and TLSFiles.
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     c.userinfo(),
		Host:     net.JoinHostPort(c.Host(), strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// SocketURL returns a connection URL for the superuser on dbname over the
// cluster's unix socket. It keeps working when pg_hba.conf refuses non-TLS TCP
// (TLSConfig.HostSSLOnly) or demands client certificates.
func (c *Cluster) SocketURL(dbname string) string {
	q := url.Values{"host": {c.socketDir}, "port": {strconv.Itoa(c.port)}, "sslmode": {"disable"}}
	u := url.URL{Scheme: "postgres", User: c.userinfo(), Path: "/" + dbname, RawQuery: q.Encode()}
	return u.String()
}

func (c *Cluster) userinfo() *url.Userinfo {
	if c.cfg.Password != "" {
		return url.UserPassword(c.cfg.User, c.cfg.Password)
	}
	return url.User(c.cfg.User)
}

// Host returns the address the server listens on: "127.0.0.1".
func (c *Cluster) Host() string { return "127.0.0.1" }

// Port returns the server's TCP port; it stays the same across restarts.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the absolute data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// SocketDir returns the directory of the server's unix socket: a
// subdirectory of the data directory, or a short temporary directory when
// that path would be too long for a socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// BinDir returns the directory of the PostgreSQL binaries in use.
func (c *Cluster) BinDir() string { return c.binDir }

// User returns the superuser's name.
func (c *Cluster) User() string { return c.cfg.User }

// Password returns the superuser's password, or "" with trust authentication.
func (c *Cluster) Password() string { return c.cfg.Password }

// TLSFiles returns the paths of the generated certificates and keys, or nil
// when TLS is off. The client pair is empty unless ClientCertAuth was set.
func (c *Cluster) TLSFiles() *TLSFiles {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tlsFiles == nil {
		return nil
	}
	f := *c.tlsFiles
	return &f
}
