package pgembed

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// StopMode selects how Stop shuts the server down; it maps to pg_ctl's -m.
type StopMode int

const (
	// StopSmart waits for every client to disconnect before shutting down.
	StopSmart StopMode = iota
	// StopFast rolls back open transactions, disconnects clients and shuts
	// down cleanly with a checkpoint.
	StopFast
	// StopImmediate aborts every server process without a checkpoint; the next
	// start runs crash recovery.
	StopImmediate
)

// String returns the pg_ctl name of the mode ("smart", "fast", "immediate").
func (m StopMode) String() string {
	switch m {
	case StopSmart:
		return "smart"
	case StopFast:
		return "fast"
	case StopImmediate:
		return "immediate"
	default:
		return fmt.Sprintf("StopMode(%d)", int(m))
	}
}

// Defaults applied by Config.WithDefaults.
const (
	// UserDefault is the superuser created by initdb when Config.User is empty.
	UserDefault = "postgres"
	// StartTimeoutDefault bounds initdb plus start-up when Config.StartTimeout is zero.
	StartTimeoutDefault = 60 * time.Second
	// MaxConnectionsDefault is the server's max_connections unless Settings overrides it.
	MaxConnectionsDefault = 200
	// TLSMinVersionDefault is ssl_min_protocol_version unless TLSConfig.MinVersion is set.
	TLSMinVersionDefault = "TLSv1.2"
)

// Config describes a cluster for Start. The zero value is valid: a temporary
// cluster on a free port, trust authentication, no TLS.
type Config struct {
	// BinDir holds initdb, pg_ctl and postgres. Defaults to FindBinDir:
	// OMNIBRIDGE_PG_BINDIR, then `pg_config --bindir`, then the newest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// DataDir is the cluster's data directory. Defaults to a temporary
	// directory that Close removes. When set, the directory is persistent: it
	// is created and initialised if empty or missing, and reused if it already
	// holds a cluster of the same major version (ErrVersionMismatch otherwise).
	DataDir string
	// Port is the TCP port on 127.0.0.1. Defaults to a free port chosen at
	// start; a given port that is busy fails with ErrPortInUse.
	Port int
	// Settings are extra postgresql.conf parameters, applied on every start
	// (also to a reused DataDir) and overriding pgembed's defaults
	// (max_connections 200, wal_level replica, max_wal_senders 10). Settings
	// made with ALTER SYSTEM still win over them. "port" and
	// "unix_socket_directories" are managed by pgembed and rejected here.
	Settings map[string]string
	// User is the superuser's name. Defaults to "postgres".
	User string
	// Password is the superuser's password, set by initdb. Empty means trust
	// authentication for local and 127.0.0.1/::1 connections; otherwise every
	// default pg_hba.conf rule uses scram-sha-256. A reused DataDir keeps the
	// password it was created with.
	Password string
	// HBA are extra pg_hba.conf lines placed before pgembed's default rules,
	// so they take precedence. pg_hba.conf is rewritten on every start.
	HBA []string
	// TLS turns on SSL with certificates generated at start. Nil means no TLS.
	TLS *TLSConfig
	// Logger receives pgembed's own events (not the server log, which goes to
	// pgembed.log in the data directory). Defaults to discarding.
	Logger *slog.Logger
	// StartTimeout bounds initdb plus waiting for the server to accept
	// connections. Defaults to 60 seconds.
	StartTimeout time.Duration
}

// TLSConfig turns on TLS for a cluster. The CA, server and (optionally) client
// certificates are generated on every start with ECDSA P-256 keys.
type TLSConfig struct {
	// MinVersion is ssl_min_protocol_version ("TLSv1", "TLSv1.1", "TLSv1.2"
	// or "TLSv1.3"). Defaults to "TLSv1.2".
	MinVersion string
	// MaxVersion is ssl_max_protocol_version. Empty leaves it unset (no upper
	// bound).
	MaxVersion string
	// ServerNames are the server certificate's subject alternative names
	// (DNS names or IP addresses). Defaults to localhost, 127.0.0.1 and ::1.
	ServerNames []string
	// ExpiredServerCert generates a server certificate that expired a day ago,
	// for testing clients that must reject it.
	ExpiredServerCert bool
	// HostSSLOnly makes every default TCP rule in pg_hba.conf a hostssl rule,
	// so non-TLS TCP connections are refused. Unix-socket connections still
	// work.
	HostSSLOnly bool
	// ClientCertAuth adds hostssl rules with the cert method before the
	// defaults, so TLS connections from 127.0.0.1 and ::1 must present a
	// client certificate signed by the CA whose CN is the user name. A client
	// certificate for Config.User is generated too.
	ClientCertAuth bool
}

// WithDefaults returns a copy of c with every empty field set to its default.
// BinDir is left empty (Start resolves it with FindBinDir) and so is DataDir
// (Start creates a temporary one).
func (c Config) WithDefaults() Config {
	c.User = cmp.Or(c.User, UserDefault)
	c.StartTimeout = cmp.Or(c.StartTimeout, StartTimeoutDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.TLS != nil {
		t := *c.TLS
		t.MinVersion = cmp.Or(t.MinVersion, TLSMinVersionDefault)
		if len(t.ServerNames) == 0 {
			t.ServerNames = []string{"localhost", "127.0.0.1", "::1"}
		}
		c.TLS = &t
	}
	return c
}

var (
	settingNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	userRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]*$`)
	tlsVersions   = map[string]bool{"TLSv1": true, "TLSv1.1": true, "TLSv1.2": true, "TLSv1.3": true}
	managedKeys   = map[string]bool{"port": true, "unix_socket_directories": true}
)

// Validate reports every invalid field of c at once (joined with errors.Join),
// each naming the field and its value. Call it after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("pgembed: Port %d is out of range (0 for a free port, or 1-65535)", c.Port))
	}
	if !userRE.MatchString(c.User) || len(c.User) > 63 {
		errs = append(errs, fmt.Errorf("pgembed: User %q is not a plain role name (letters, digits, _, $, -; at most 63 bytes)", c.User))
	}
	if strings.ContainsAny(c.Password, "\n\r\x00") {
		errs = append(errs, errors.New("pgembed: Password contains a newline or NUL byte"))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("pgembed: StartTimeout %s is negative", c.StartTimeout))
	}
	for k, v := range c.Settings {
		switch {
		case !settingNameRE.MatchString(k):
			errs = append(errs, fmt.Errorf("pgembed: Settings key %q is not a parameter name", k))
		case managedKeys[strings.ToLower(k)]:
			errs = append(errs, fmt.Errorf("pgembed: Settings key %q is managed by pgembed (use Config.Port)", k))
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			errs = append(errs, fmt.Errorf("pgembed: Settings[%q] value %q contains a newline or NUL byte", k, v))
		}
	}
	for i, line := range c.HBA {
		if strings.ContainsAny(line, "\n\r\x00") {
			errs = append(errs, fmt.Errorf("pgembed: HBA[%d] %q contains a newline or NUL byte", i, line))
		}
	}
	if t := c.TLS; t != nil {
		if !tlsVersions[t.MinVersion] {
			errs = append(errs, fmt.Errorf("pgembed: TLS.MinVersion %q is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3", t.MinVersion))
		}
		if t.MaxVersion != "" && !tlsVersions[t.MaxVersion] {
			errs = append(errs, fmt.Errorf("pgembed: TLS.MaxVersion %q is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (or empty)", t.MaxVersion))
		}
		for i, n := range t.ServerNames {
			if n == "" || strings.ContainsAny(n, " \n\r\x00") {
				errs = append(errs, fmt.Errorf("pgembed: TLS.ServerNames[%d] %q is not a host name or IP address", i, n))
			}
		}
	}
	return errors.Join(errs...)
}
