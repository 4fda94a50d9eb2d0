package coordinator

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omnibridge/omnibridge/internal/connstr"
	"github.com/omnibridge/omnibridge/internal/fielderr"
	"github.com/omnibridge/omnibridge/store"
)

// Defaults for Config. WithDefaults fills these into unset fields.
const (
	DefaultBatchSize       = 500
	DefaultPollInterval    = time.Second
	DefaultLeaseTimeout    = 2 * time.Minute
	DefaultReclaimInterval = 15 * time.Second
	DefaultDrainTimeout    = 10 * time.Second
	DefaultDatabaseTimeout = 10 * time.Second
	DefaultLagInterval     = 10 * time.Second

	DefaultBrokerBackoffInitial = 500 * time.Millisecond
	DefaultBrokerBackoffMax     = 30 * time.Second
	DefaultListenBackoffInitial = time.Second
	DefaultListenBackoffMax     = 30 * time.Second

	DefaultRetryJitter = "full"
)

// Bounds that Validate enforces.
const (
	// MinPollInterval is the shortest PollInterval: polling faster than this
	// only loads the database.
	MinPollInterval = 10 * time.Millisecond
	// MaxBatchSize is the largest BatchSize, the most one claim takes.
	MaxBatchSize = store.MaxClaim
)

// Config configures the WorkflowCoordinator. It sits under
// services.workflow_coordinator in the omnibridge configuration (YAML keys in
// snake_case); the zero value plus WithDefaults is valid.
type Config struct {
	// BatchSize is how many due events one claim takes and one Publish call
	// sends. Between 1 and MaxBatchSize. Defaults to 500.
	BatchSize int `yaml:"batch_size"`

	// PollInterval is how often the coordinator claims when nothing wakes it:
	// the fallback for a lost LISTEN connection, and what picks up retries
	// whose backoff has passed. At least MinPollInterval. Defaults to 1s.
	PollInterval time.Duration `yaml:"poll_interval"`

	// LeaseTimeout is how long a claim is held before any coordinator's lease
	// reaper gives its events back (their holder is taken for dead), and they
	// are published again. It must exceed the longest time a claim is held
	// normally, twice kafka.delivery_timeout plus a margin (New checks, see
	// docs/coordinator.md), or events are published twice. Defaults to 2m.
	LeaseTimeout time.Duration `yaml:"lease_timeout"`

	// ReclaimInterval is how often the lease reaper looks for expired claims.
	// Defaults to 15s.
	ReclaimInterval time.Duration `yaml:"reclaim_interval"`

	// DrainTimeout bounds graceful shutdown: a Publish in flight when Run's
	// context ends gets this long to be acknowledged before it is canceled and
	// its events released. Run returns at most DrainTimeout plus
	// DatabaseTimeout after its context ends. Defaults to 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// DatabaseTimeout is the deadline of each claim, complete, fail, release,
	// reclaim and lag statement. Defaults to 10s.
	DatabaseTimeout time.Duration `yaml:"database_timeout"`

	// LagInterval is how often the lag and backlog gauges are refreshed from
	// the database. Defaults to 10s.
	LagInterval time.Duration `yaml:"lag_interval"`

	// Retry schedules the attempts of events that Kafka refused.
	Retry RetryConfig `yaml:"retry"`

	// BrokerBackoff is how the whole coordinator backs off while the Kafka
	// cluster is unavailable (see docs/coordinator.md for the rule). Defaults
	// to 500ms doubling up to 30s.
	BrokerBackoff BackoffConfig `yaml:"broker_backoff"`

	// ListenBackoff paces reconnecting the LISTEN connection after it drops;
	// polling goes on meanwhile. Defaults to 1s doubling up to 30s.
	ListenBackoff BackoffConfig `yaml:"listen_backoff"`

	// ListenURL is the PostgreSQL URL or DSN of the dedicated LISTEN
	// connection, when it must differ from the service's pool: behind
	// PgBouncer in transaction pooling mode a LISTEN is lost with the server
	// connection it ran on, so point ListenURL at PostgreSQL itself (or at a
	// PgBouncer port in session mode). When set, the coordinator connects
	// with it and Deps.Listen is not used. Defaults to empty: Deps.Listen.
	ListenURL string `yaml:"listen_url"`
}

// RetryConfig is the retry schedule of events whose publication failed for a
// reason of their own; it maps onto store.RetryPolicy. After failed attempt n
// the event waits min(max_delay, base_delay·2^(n-1)), jittered, and the failure
// of attempt max_attempts makes it dead.
type RetryConfig struct {
	// BaseDelay is the backoff after the first failure. Defaults to 1s.
	BaseDelay time.Duration `yaml:"base_delay"`
	// MaxDelay caps the backoff. Defaults to 10m.
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxAttempts is how many attempts an event gets before it is dead.
	// Between 1 and 1000. Defaults to 10.
	MaxAttempts int `yaml:"max_attempts"`
	// Jitter is "full" (delay drawn from [0, backoff)), "equal" ([backoff/2,
	// backoff)) or "none". Defaults to "full".
	Jitter string `yaml:"jitter"`
}

// BackoffConfig is an exponential backoff: the delay starts at Initial and
// doubles up to Max, each delay randomized by ±25%.
type BackoffConfig struct {
	// Initial is the first delay.
	Initial time.Duration `yaml:"initial"`
	// Max caps the delay (before randomization).
	Max time.Duration `yaml:"max"`
}

// WithDefaults returns a copy of c with every unset field given its default.
// Zero durations and counts count as unset.
func (c Config) WithDefaults() Config {
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.LeaseTimeout = cmp.Or(c.LeaseTimeout, DefaultLeaseTimeout)
	c.ReclaimInterval = cmp.Or(c.ReclaimInterval, DefaultReclaimInterval)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DefaultDrainTimeout)
	c.DatabaseTimeout = cmp.Or(c.DatabaseTimeout, DefaultDatabaseTimeout)
	c.LagInterval = cmp.Or(c.LagInterval, DefaultLagInterval)
	c.Retry.BaseDelay = cmp.Or(c.Retry.BaseDelay, store.DefaultRetryBaseDelay)
	c.Retry.MaxDelay = cmp.Or(c.Retry.MaxDelay, store.DefaultRetryMaxDelay)
	c.Retry.MaxAttempts = cmp.Or(c.Retry.MaxAttempts, store.DefaultRetryMaxAttempts)
	c.Retry.Jitter = strings.ToLower(cmp.Or(c.Retry.Jitter, DefaultRetryJitter))
	c.BrokerBackoff.Initial = cmp.Or(c.BrokerBackoff.Initial, DefaultBrokerBackoffInitial)
	c.BrokerBackoff.Max = cmp.Or(c.BrokerBackoff.Max, DefaultBrokerBackoffMax)
	c.ListenBackoff.Initial = cmp.Or(c.ListenBackoff.Initial, DefaultListenBackoffInitial)
	c.ListenBackoff.Max = cmp.Or(c.ListenBackoff.Max, DefaultListenBackoffMax)
	return c
}

// FieldError names an invalid configuration field (its YAML key within the
// workflow_coordinator section) and its value.
type FieldError = fielderr.Error

func fieldError(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports every invalid field at once (joined with errors.Join),
// each a *FieldError. Call it on the result of WithDefaults. New also checks
// LeaseTimeout against the producer's delivery timeout, which Validate cannot
// see.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		errs = append(errs, fieldError("batch_size", c.BatchSize, "must be between 1 and %d", MaxBatchSize))
	}
	if c.PollInterval < MinPollInterval {
		errs = append(errs, fieldError("poll_interval", c.PollInterval, "must be at least %s", MinPollInterval))
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"lease_timeout", c.LeaseTimeout},
		{"reclaim_interval", c.ReclaimInterval},
		{"drain_timeout", c.DrainTimeout},
		{"database_timeout", c.DatabaseTimeout},
		{"lag_interval", c.LagInterval},
	}
	for _, p := range positive {
		if p.d <= 0 {
			errs = append(errs, fieldError(p.name, p.d, "must be positive"))
		}
	}
	if c.ReclaimInterval > c.LeaseTimeout && c.LeaseTimeout > 0 {
		errs = append(errs, fieldError("reclaim_interval", c.ReclaimInterval,
			"must not exceed lease_timeout (%s), or expired claims wait longer than the lease", c.LeaseTimeout))
	}
	if c.ListenURL != "" {
		if _, err := pgx.ParseConfig(c.ListenURL); err != nil {
			errs = append(errs, fieldError("listen_url", connstr.Redact(c.ListenURL), "is not a PostgreSQL URL or DSN: %v", err))
		}
	}
	errs = append(errs, c.Retry.validate()...)
	errs = append(errs, c.BrokerBackoff.validate("broker_backoff")...)
	errs = append(errs, c.ListenBackoff.validate("listen_backoff")...)
	return errors.Join(errs...)
}

func (r RetryConfig) validate() []error {
	var errs []error
	if r.BaseDelay < time.Millisecond {
		errs = append(errs, fieldError("retry.base_delay", r.BaseDelay, "must be at least 1ms"))
	}
	if r.MaxDelay < r.BaseDelay {
		errs = append(errs, fieldError("retry.max_delay", r.MaxDelay, "must not be less than retry.base_delay (%s)", r.BaseDelay))
	}
	if r.MaxAttempts < 1 || r.MaxAttempts > 1000 {
		errs = append(errs, fieldError("retry.max_attempts", r.MaxAttempts, "must be between 1 and 1000"))
	}
	if _, err := jitter(r.Jitter); err != nil {
		errs = append(errs, fieldError("retry.jitter", r.Jitter, "%v", err))
	}
	return errs
}

func jitter(s string) (store.Jitter, error) {
	switch strings.ToLower(s) {
	case "full":
		return store.FullJitter, nil
	case "equal":
		return store.EqualJitter, nil
	case "none":
		return store.NoJitter, nil
	default:
		return 0, errors.New(`must be "full", "equal" or "none"`)
	}
}

// Policy returns the store.RetryPolicy that r describes. r must be valid.
func (r RetryConfig) Policy() store.RetryPolicy {
	j, _ := jitter(r.Jitter)
	return store.RetryPolicy{BaseDelay: r.BaseDelay, MaxDelay: r.MaxDelay, MaxAttempts: r.MaxAttempts, Jitter: j}
}

func (b BackoffConfig) validate(prefix string) []error {
	var errs []error
	if b.Initial <= 0 {
		errs = append(errs, fieldError(prefix+".initial", b.Initial, "must be positive"))
	}
	if b.Max < b.Initial {
		errs = append(errs, fieldError(prefix+".max", b.Max, "must not be less than %s.initial (%s)", prefix, b.Initial))
	}
	return errs
}
