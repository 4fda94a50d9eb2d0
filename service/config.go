// Package service is what every omnibridge service shares: its own pgclient pool
// (connection isolation), its service session with heartbeats, an HTTP server
// with /healthz, /readyz and /metrics, and graceful shutdown.
package service

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/omnibridge/omnibridge/internal/fielderr"
)

// Defaults for Config.
const (
	DefaultHeartbeatInterval     = 10 * time.Second
	DefaultMetricsInterval       = 30 * time.Second
	DefaultShutdownTimeout       = 30 * time.Second
	DefaultReadHeaderTimeout     = 5 * time.Second
	DefaultReadTimeout           = 30 * time.Second
	DefaultWriteTimeout          = 30 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	DefaultMaxHeaderBytes        = 64 << 10
	DefaultSessionReapMultiplier = 3
)

// Config is what each service configures for its runtime. The omnibridge
// configuration has one per service (services.hook_receiver, …).
type Config struct {
	// Addr is the HTTP listen address. Each service has its own default
	// (:8080, :8081, :8082).
	Addr string `yaml:"addr"`

	// Database overrides the shared database settings for this service's own
	// pool: its own URL (and so its own role), pool limits and role.
	Database DatabaseOverride `yaml:"database"`

	// HeartbeatInterval is how often the service session's last_seen moves.
	// Sessions silent for three intervals are reaped as terminated.
	// Defaults to 10s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`

	// MetricsInterval is how often a pool snapshot goes to connection_metrics.
	// Defaults to 30s.
	MetricsInterval time.Duration `yaml:"metrics_interval"`

	// ShutdownTimeout bounds graceful shutdown: in-flight requests and work
	// get this long to finish. Defaults to 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// HTTP server limits.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // Defaults to 5s.
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // Defaults to 30s.
	WriteTimeout      time.Duration `yaml:"write_timeout"`       // Defaults to 30s.
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // Defaults to 120s.
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`    // Defaults to 64 KiB.
}

// DatabaseOverride is a service's own pool settings; zero fields inherit the
// shared database configuration.
type DatabaseOverride struct {
	// URL is this service's own DSN (for its own login role). Defaults to the
	// shared database.url.
	URL string `yaml:"url"`
	// Role is SET on every connection (a NOLOGIN role the login user is a
	// member of, such as hook_receiver). Defaults to none.
	Role string `yaml:"role"`
	// MinConns and MaxConns are this service's pool limits. Default to the
	// shared settings.
	MinConns int32 `yaml:"min_conns"`
	MaxConns int32 `yaml:"max_conns"`
}

// WithDefaults fills unset fields; addr is the service's default address.
func (c Config) WithDefaults(addr string) Config {
	c.Addr = cmp.Or(c.Addr, addr)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.MetricsInterval = cmp.Or(c.MetricsInterval, DefaultMetricsInterval)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, DefaultReadTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	return c
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fielderr.New("addr", c.Addr, "want host:port or :port"))
	}
	positive := map[string]time.Duration{
		"heartbeat_interval": c.HeartbeatInterval, "metrics_interval": c.MetricsInterval,
		"shutdown_timeout": c.ShutdownTimeout, "read_header_timeout": c.ReadHeaderTimeout,
		"read_timeout": c.ReadTimeout, "write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout,
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] <= 0 {
			errs = append(errs, fielderr.New(name, positive[name], "must be positive"))
		}
	}
	if c.MaxHeaderBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_header_bytes: invalid value %d: must be at least 1024", c.MaxHeaderBytes))
	}
	if c.Database.MinConns < 0 || c.Database.MaxConns < 0 ||
		(c.Database.MaxConns > 0 && c.Database.MinConns > c.Database.MaxConns) {
		errs = append(errs, fmt.Errorf("database: invalid pool limits min_conns=%d max_conns=%d",
			c.Database.MinConns, c.Database.MaxConns))
	}
	return errors.Join(errs...)
}
