package pgclient

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnibridge/omnibridge/internal/connstr"
)

// Defaults of Config. The pool sizes, query limit and timeouts are ADR-016's.
const (
	DefaultServiceName            = "omnibridge"
	DefaultMinConns               = 5
	DefaultMaxConns               = 25
	DefaultMaxQueriesPerConn      = 10000
	DefaultConnMaxAge             = time.Hour
	DefaultConnMaxIdle            = 30 * time.Minute
	DefaultHealthCheckPeriod      = time.Minute
	DefaultQueryTimeout           = 30 * time.Second
	DefaultAcquireTimeout         = 10 * time.Second
	DefaultCancelGrace            = time.Second
	DefaultLeakThreshold          = 60 * time.Second
	DefaultStatementCacheCapacity = 512
	DefaultExecMode               = ExecModeCacheStatement
	DefaultUtilizationWarn        = 0.85
	DefaultUtilizationWarnAfter   = 10 * time.Second
	DefaultHealthTimeout          = 2 * time.Second
	DefaultHealthSlowQuery        = 500 * time.Millisecond
	DefaultConnectTimeout         = 5 * time.Second
)

// Query execution modes accepted by Config.ExecMode. They map one to one to
// pgx.QueryExecMode; the underscore spellings pgx uses in URLs are accepted too.
const (
	// ExecModeCacheStatement prepares each distinct statement once per
	// connection and reuses it: the fastest mode, and the default. Needs
	// session-level pooling (or PgBouncer ≥ 1.21 with max_prepared_statements).
	ExecModeCacheStatement = "cache-statement"
	// ExecModeCacheDescribe caches only the statement description and executes
	// with the unnamed statement: safe behind PgBouncer transaction pooling,
	// one round trip per query after the first.
	ExecModeCacheDescribe = "cache-describe"
	// ExecModeDescribeExec describes then executes every statement: two round
	// trips, no cache; safe everywhere.
	ExecModeDescribeExec = "describe-exec"
	// ExecModeExec sends the extended protocol with text-inferred parameter
	// types: one round trip, no cache, no describe.
	ExecModeExec = "exec"
	// ExecModeSimpleProtocol interpolates parameters client-side and uses the
	// simple protocol: works through any proxy.
	ExecModeSimpleProtocol = "simple-protocol"
)

// Config configures a Client. The zero value of each field means "use the
// default"; where a feature can be switched off, a negative value does that.
// Parameters in URL fill fields left unset (see the package documentation for
// the list); a field that is set wins over the URL.
type Config struct {
	// URL is the PostgreSQL connection string (URL or keyword/value form). It
	// may carry pool and omnibridge parameters (pool_max_conns=…,
	// omnibridge_query_timeout=…). Required.
	URL string `yaml:"url"`

	// ServiceName names the service in metrics, logs and health output, and is
	// sent to the server as application_name (visible in pg_stat_activity).
	// Defaults to the URL's application_name, else "omnibridge".
	ServiceName string `yaml:"service_name"`

	// Role, when set, is made the current role (SET ROLE) on every new
	// connection, so a service runs with only its own grants while logging in
	// as a shared user. Defaults to none (the login role).
	Role string `yaml:"role"`

	// MinConns connections are opened before Open returns and kept open.
	// Defaults to 5; negative means none (connections open on demand).
	MinConns int32 `yaml:"min_conns"`

	// MaxConns caps the pool. Defaults to 25.
	MaxConns int32 `yaml:"max_conns"`

	// MaxQueriesPerConn closes a connection, when it is released, once it has
	// run this many statements (each statement of a batch counts), so
	// per-session server memory cannot grow without bound. Defaults to 10000;
	// negative means no limit.
	MaxQueriesPerConn int64 `yaml:"max_queries_per_conn"`

	// ConnMaxAge closes a connection once it is this old (plus jitter), when it
	// is next released or found idle. Defaults to 1h; negative means no limit.
	ConnMaxAge time.Duration `yaml:"conn_max_age"`

	// ConnMaxAgeJitter adds a random extra age, up to this much, to each
	// connection's limit so that connections opened together do not all close
	// together. Defaults to 10% of ConnMaxAge; negative means no jitter.
	ConnMaxAgeJitter time.Duration `yaml:"conn_max_age_jitter"`

	// ConnMaxIdle closes a connection idle this long, as long as MinConns stay
	// open. Defaults to 30m; negative means never.
	ConnMaxIdle time.Duration `yaml:"conn_max_idle"`

	// HealthCheckPeriod is how often idle connections are checked for age and
	// idleness and the pool is topped up to MinConns. Defaults to 1m.
	HealthCheckPeriod time.Duration `yaml:"health_check_period"`

	// QueryTimeout bounds every statement run through the Client, a Conn or a
	// Tx, unless the caller's context ends sooner. An expired statement is
	// cancelled on the server. Defaults to 30s.
	QueryTimeout time.Duration `yaml:"query_timeout"`

	// StatementTimeout is sent to the server as statement_timeout, a backstop
	// for statements the client cannot time out itself. Defaults to
	// QueryTimeout plus 10% (at least one second more); negative sends nothing
	// (needed behind PgBouncer, which refuses unknown startup parameters unless
	// told to ignore them).
	StatementTimeout time.Duration `yaml:"statement_timeout"`

	// CancelGrace is how long, after a statement's context ends, the client
	// waits for the server to confirm the cancel request before giving up on
	// the connection and closing it. Defaults to 1s; negative closes the
	// connection at once (pgx's default: it sends the cancel request as it
	// closes, so the statement still stops, but the connection is lost).
	CancelGrace time.Duration `yaml:"cancel_grace"`

	// AcquireTimeout bounds the wait for a free connection; an acquire that
	// waits longer fails with ErrPoolExhausted. Defaults to 10s.
	AcquireTimeout time.Duration `yaml:"acquire_timeout"`

	// LeakThreshold reports a connection held longer than this as a potential
	// leak, with the stack of the code that acquired it. Defaults to 60s;
	// negative disables leak detection (no stack is captured at all).
	LeakThreshold time.Duration `yaml:"leak_threshold"`

	// StatementCacheCapacity is the number of prepared statements (cache-statement
	// mode) or statement descriptions (cache-describe mode) kept per connection.
	// Defaults to 512.
	StatementCacheCapacity int `yaml:"statement_cache_capacity"`

	// ExecMode is how statements are sent: cache-statement, cache-describe,
	// describe-exec, exec or simple-protocol (see the ExecMode constants).
	// Defaults to cache-statement.
	ExecMode string `yaml:"exec_mode"`

	// UtilizationWarn is the share of MaxConns in use (0 < x ≤ 1) above which
	// the pool counts as highly utilized: a warning is logged and a
	// DegradationEvent emitted when it lasts UtilizationWarnAfter, and Health
	// reports degraded. Defaults to 0.85; negative disables the warning.
	UtilizationWarn float64 `yaml:"utilization_warn"`

	// UtilizationWarnAfter is how long utilization must stay above
	// UtilizationWarn before the warning. Defaults to 10s.
	UtilizationWarnAfter time.Duration `yaml:"utilization_warn_after"`

	// HealthTimeout bounds Health, however busy the pool. Defaults to 2s.
	HealthTimeout time.Duration `yaml:"health_timeout"`

	// HealthSlowQuery is the test-query time above which Health reports
	// degraded. Defaults to 500ms.
	HealthSlowQuery time.Duration `yaml:"health_slow_query"`

	// PrepareOnConnect maps statement names to SQL prepared on every new
	// connection; run them by passing the name as the SQL. Defaults to none.
	PrepareOnConnect map[string]string `yaml:"prepare_on_connect"`

	// Logger receives the client's logs (component "pgclient"). Defaults to
	// slog.Default().
	Logger *slog.Logger `yaml:"-"`

	// Registerer, when set, gets the client's Prometheus collector. Defaults to
	// none: nothing is registered globally.
	Registerer prometheus.Registerer `yaml:"-"`

	// OnDegradation, when set, is called (on its own goroutine) when a
	// degradation episode starts and ends. It must return promptly: Close waits
	// for running calls. Defaults to none.
	OnDegradation func(DegradationEvent) `yaml:"-"`

	// ConnectTimeout bounds one attempt to open a connection, TLS and
	// authentication included (pgx's connect_timeout, per host). Keep it
	// below AcquireTimeout, so that a server that does not answer shows as a
	// failed connection rather than as an exhausted pool. Defaults to the
	// URL's connect_timeout, else 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`

	// TLS configures TLS to the server; see TLSConfig and docs/security.md.
	// Defaults to the URL's sslmode and related parameters, else mode
	// "require".
	TLS TLSConfig `yaml:"tls"`

	// RequireAuth lists the authentication methods the client accepts from
	// the server, as libpq's require_auth: "scram-sha-256" refuses a server
	// that asks for md5 or a cleartext password before anything derived from
	// the password is sent. Defaults to the URL's require_auth, else any.
	RequireAuth string `yaml:"require_auth"`

	// ChannelBinding is disable, prefer or require (libpq's channel_binding):
	// require makes SCRAM bind the authentication to the TLS channel
	// (SCRAM-SHA-256-PLUS). Defaults to the URL's channel_binding, else
	// prefer.
	ChannelBinding string `yaml:"channel_binding"`

	// Breaker configures the circuit breaker around connecting and every
	// operation; see BreakerConfig and docs/resilience.md.
	Breaker BreakerConfig `yaml:"breaker"`

	// Retry configures retries with exponential backoff; see RetryConfig.
	Retry RetryConfig `yaml:"retry"`

	// OnBreakerChange, when set, is called on every transition of the
	// circuit breaker. Callbacks (this one and OnSecurityEvent) run one at a
	// time, in order, on a goroutine of the client's, fed by a bounded queue:
	// they never block an operation, and events are dropped (and counted)
	// when the queue is full. Defaults to none.
	OnBreakerChange func(BreakerChange) `yaml:"-"`

	// OnSecurityEvent, when set, receives every SecurityEvent: failed
	// connections (authentication, TLS, other) and the breaker opening and
	// closing. The service wiring writes them to the audit log. Defaults to
	// none.
	OnSecurityEvent func(SecurityEvent) `yaml:"-"`
}

// WithDefaults returns a copy of c with parameters from c.URL filling unset
// fields and defaults filling the rest. It does not validate: an unparseable
// URL is left for Validate to report.
func (c Config) WithDefaults() Config {
	if params, err := urlParams(c.URL); err == nil {
		c, _, _ = applyURLParams(c, params)
	}
	c.ServiceName = cmp.Or(c.ServiceName, DefaultServiceName)
	c.MinConns = cmp.Or(c.MinConns, DefaultMinConns)
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	c.MaxQueriesPerConn = cmp.Or(c.MaxQueriesPerConn, DefaultMaxQueriesPerConn)
	c.ConnMaxAge = cmp.Or(c.ConnMaxAge, DefaultConnMaxAge)
	if c.ConnMaxAgeJitter == 0 && c.ConnMaxAge > 0 {
		c.ConnMaxAgeJitter = c.ConnMaxAge / 10
	}
	c.ConnMaxIdle = cmp.Or(c.ConnMaxIdle, DefaultConnMaxIdle)
	c.HealthCheckPeriod = cmp.Or(c.HealthCheckPeriod, DefaultHealthCheckPeriod)
	c.QueryTimeout = cmp.Or(c.QueryTimeout, DefaultQueryTimeout)
	if c.StatementTimeout == 0 && c.QueryTimeout > 0 {
		c.StatementTimeout = c.QueryTimeout + max(c.QueryTimeout/10, time.Second)
	}
	c.CancelGrace = cmp.Or(c.CancelGrace, DefaultCancelGrace)
	c.AcquireTimeout = cmp.Or(c.AcquireTimeout, DefaultAcquireTimeout)
	c.LeakThreshold = cmp.Or(c.LeakThreshold, DefaultLeakThreshold)
	c.StatementCacheCapacity = cmp.Or(c.StatementCacheCapacity, DefaultStatementCacheCapacity)
	c.ExecMode = cmp.Or(normalizeExecMode(c.ExecMode), DefaultExecMode)
	c.UtilizationWarn = cmp.Or(c.UtilizationWarn, DefaultUtilizationWarn)
	c.UtilizationWarnAfter = cmp.Or(c.UtilizationWarnAfter, DefaultUtilizationWarnAfter)
	c.HealthTimeout = cmp.Or(c.HealthTimeout, DefaultHealthTimeout)
	c.HealthSlowQuery = cmp.Or(c.HealthSlowQuery, DefaultHealthSlowQuery)
	c = c.resilienceDefaults()
	return c
}

// Validate reports every invalid field at once (errors.Join of *ConfigError),
// each naming the field by its YAML key and giving its value. Call it on the
// result of WithDefaults: zero values are invalid where a default exists.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, reason string) {
		errs = append(errs, configError(field, value, reason))
	}
	if c.URL == "" {
		bad("url", "", "required: a PostgreSQL URL such as postgres://user@host:5432/db")
	} else if params, err := urlParams(c.URL); err != nil {
		bad("url", connstr.Redact(c.URL), err.Error())
	} else if _, _, perrs := applyURLParams(Config{}, params); len(perrs) > 0 {
		errs = append(errs, perrs...)
	}
	if c.ServiceName == "" {
		bad("service_name", c.ServiceName, "must not be empty")
	}
	if c.MaxConns < 1 {
		bad("max_conns", c.MaxConns, "must be at least 1")
	}
	if c.MinConns > c.MaxConns && c.MaxConns >= 1 {
		bad("min_conns", c.MinConns, fmt.Sprintf("must not exceed max_conns (%d)", c.MaxConns))
	}
	if c.MaxQueriesPerConn == 0 {
		bad("max_queries_per_conn", c.MaxQueriesPerConn, "must be positive, or negative for no limit")
	}
	positive := []struct {
		field string
		v     time.Duration
	}{
		{"health_check_period", c.HealthCheckPeriod},
		{"query_timeout", c.QueryTimeout},
		{"acquire_timeout", c.AcquireTimeout},
		{"utilization_warn_after", c.UtilizationWarnAfter},
		{"health_timeout", c.HealthTimeout},
		{"health_slow_query", c.HealthSlowQuery},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad(p.field, p.v, "must be positive")
		}
	}
	nonZero := []struct {
		field string
		v     time.Duration
	}{
		{"conn_max_age", c.ConnMaxAge},
		{"conn_max_idle", c.ConnMaxIdle},
		{"cancel_grace", c.CancelGrace},
		{"leak_threshold", c.LeakThreshold},
	}
	for _, p := range nonZero {
		if p.v == 0 {
			bad(p.field, p.v, "must be positive, or negative to disable")
		}
	}
	if c.StatementTimeout > 0 && c.QueryTimeout > 0 && c.StatementTimeout < c.QueryTimeout {
		bad("statement_timeout", c.StatementTimeout,
			fmt.Sprintf("must not be below query_timeout (%s): it is the server-side backstop", c.QueryTimeout))
	}
	if c.StatementTimeout == 0 && c.QueryTimeout > 0 {
		bad("statement_timeout", c.StatementTimeout, "must be positive, or negative to send none")
	}
	if c.StatementCacheCapacity < 1 {
		bad("statement_cache_capacity", c.StatementCacheCapacity, "must be at least 1")
	}
	if _, ok := execModes[normalizeExecMode(c.ExecMode)]; !ok {
		bad("exec_mode", c.ExecMode, "must be cache-statement, cache-describe, describe-exec, exec or simple-protocol")
	}
	if c.UtilizationWarn == 0 || c.UtilizationWarn > 1 {
		bad("utilization_warn", c.UtilizationWarn, "must be in (0, 1], or negative to disable")
	}
	for name, sql := range c.PrepareOnConnect {
		if name == "" || strings.TrimSpace(sql) == "" {
			bad("prepare_on_connect", name, "needs a name and non-empty SQL")
		}
	}
	errs = append(errs, c.validateResilience()...)
	return errors.Join(errs...)
}

var execModes = map[string]pgx.QueryExecMode{
	ExecModeCacheStatement: pgx.QueryExecModeCacheStatement,
	ExecModeCacheDescribe:  pgx.QueryExecModeCacheDescribe,
	ExecModeDescribeExec:   pgx.QueryExecModeDescribeExec,
	ExecModeExec:           pgx.QueryExecModeExec,
	ExecModeSimpleProtocol: pgx.QueryExecModeSimpleProtocol,
}

// normalizeExecMode accepts pgx's URL spellings (cache_statement) as well.
func normalizeExecMode(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
}
