package coordinator

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, DefaultBatchSize, c.BatchSize)
	require.Equal(t, DefaultPollInterval, c.PollInterval)
	require.Equal(t, DefaultLeaseTimeout, c.LeaseTimeout)
	require.Equal(t, DefaultReclaimInterval, c.ReclaimInterval)
	require.Equal(t, DefaultDrainTimeout, c.DrainTimeout)
	require.Equal(t, DefaultDatabaseTimeout, c.DatabaseTimeout)
	require.Equal(t, DefaultLagInterval, c.LagInterval)
	require.Equal(t, BackoffConfig{DefaultBrokerBackoffInitial, DefaultBrokerBackoffMax}, c.BrokerBackoff)
	require.Equal(t, BackoffConfig{DefaultListenBackoffInitial, DefaultListenBackoffMax}, c.ListenBackoff)
	p := c.Retry.Policy()
	require.Equal(t, store.RetryPolicy{
		BaseDelay: store.DefaultRetryBaseDelay, MaxDelay: store.DefaultRetryMaxDelay,
		MaxAttempts: store.DefaultRetryMaxAttempts, Jitter: store.FullJitter,
	}, p)
	require.NoError(t, p.WithDefaults().Validate())

	// Set fields are kept.
	c = Config{BatchSize: 7, Retry: RetryConfig{Jitter: "EQUAL"}}.WithDefaults()
	require.Equal(t, 7, c.BatchSize)
	require.Equal(t, store.EqualJitter, c.Retry.Policy().Jitter)
}

// Validate names every invalid field at once.
func TestConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	c := Config{
		BatchSize:       MaxBatchSize + 1,
		PollInterval:    time.Millisecond,
		LeaseTimeout:    time.Minute,
		ReclaimInterval: 2 * time.Minute,
		DrainTimeout:    -time.Second,
		DatabaseTimeout: -1,
		LagInterval:     -1,
		Retry:           RetryConfig{BaseDelay: time.Microsecond, MaxDelay: time.Nanosecond, MaxAttempts: 1001, Jitter: "some"},
		BrokerBackoff:   BackoffConfig{Initial: -1, Max: -2},
		ListenBackoff:   BackoffConfig{Initial: time.Second, Max: time.Millisecond},
	}.WithDefaults()
	err := c.Validate()
	require.Error(t, err)
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fe, ok := errors.AsType[*FieldError](e)
		require.True(t, ok, "%v", e)
		fields = append(fields, fe.Field)
		require.Contains(t, e.Error(), fe.Field)
	}
	require.ElementsMatch(t, []string{
		"batch_size", "poll_interval", "reclaim_interval", "drain_timeout", "database_timeout", "lag_interval",
		"retry.base_delay", "retry.max_delay", "retry.max_attempts", "retry.jitter",
		"broker_backoff.initial", "broker_backoff.max", "listen_backoff.max",
	}, fields)
	require.Contains(t, err.Error(), `batch_size: invalid value "10001"`)
}

func TestNewChecksDependencies(t *testing.T) {
	t.Parallel()
	_, err := New(Config{}.WithDefaults(), Deps{})
	require.ErrorIs(t, err, ErrMissingStore)
	require.ErrorIs(t, err, ErrMissingPublisher)

	// An invalid config and missing dependencies are reported together.
	_, err = New(Config{BatchSize: -1}.WithDefaults(), Deps{})
	require.ErrorIs(t, err, ErrMissingStore)
	fe, ok := errors.AsType[*FieldError](err)
	require.True(t, ok)
	require.Equal(t, "batch_size", fe.Field)
}

// fakeConfigPublisher only answers Config, enough for New's checks.
type fakeConfigPublisher struct {
	Publisher
	cfg kafka.Config
}

func (p fakeConfigPublisher) Config() kafka.Config { return p.cfg }

func TestNewChecksLeaseAgainstDeliveryTimeout(t *testing.T) {
	t.Parallel()
	st := store.New(nil)
	pub := fakeConfigPublisher{cfg: kafka.Config{DeliveryTimeout: 30 * time.Second}.WithDefaults()}

	_, err := New(Config{LeaseTimeout: 33 * time.Second}.WithDefaults(), Deps{Store: st, Publisher: pub})
	fe, ok := errors.AsType[*FieldError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "lease_timeout", fe.Field)
	require.Contains(t, err.Error(), "kafka.delivery_timeout (30s)")

	// Just above the longest Publish: accepted (with a warning).
	c, err := New(Config{LeaseTimeout: 34 * time.Second}.WithDefaults(), Deps{Store: st, Publisher: pub})
	require.NoError(t, err)
	require.Equal(t, 34*time.Second, c.Config().LeaseTimeout)
}

func TestNewRegistersMetricsOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	d := Deps{Store: store.New(nil), Publisher: fakeConfigPublisher{cfg: kafka.Config{}.WithDefaults()}, Registerer: reg}
	_, err := New(Config{}.WithDefaults(), d)
	require.NoError(t, err)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{
		"omnibridge_coordinator_published_total", "omnibridge_coordinator_failed_total",
		"omnibridge_coordinator_dead_total", "omnibridge_coordinator_batch_size",
		"omnibridge_coordinator_lag_seconds", "omnibridge_coordinator_broker_backoff",
		"omnibridge_coordinator_ack_latency_seconds", "omnibridge_coordinator_released_total",
	} {
		require.True(t, names[n], "metric %s not registered", n)
	}

	_, err = New(Config{}.WithDefaults(), d)
	require.ErrorContains(t, err, "already registered")
	// The failed registration left the first coordinator's metrics alone.
	mfs2, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs2, len(mfs))
}

// A listen_url that does not parse is reported without its password.
func TestConfigListenURL(t *testing.T) {
	t.Parallel()
	c := Config{ListenURL: "postgres://user:hunter2@host:notaport/db"}.WithDefaults()
	err := c.Validate()
	fe, ok := errors.AsType[*FieldError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "listen_url", fe.Field)
	require.NotContains(t, err.Error(), "hunter2")

	c = Config{ListenURL: "host=/tmp port=x password=hunter2"}.WithDefaults()
	err = c.Validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")

	require.NoError(t, Config{ListenURL: "postgres://user:pw@localhost:5432/db?sslmode=disable"}.WithDefaults().Validate())
}
