package pgclient_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
)

const someURL = "postgres://u@localhost:5432/db"

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := pgclient.Config{URL: someURL}.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, pgclient.Config{
		URL:                    someURL,
		ServiceName:            "omnibridge",
		MinConns:               5,
		MaxConns:               25,
		MaxQueriesPerConn:      10000,
		ConnMaxAge:             time.Hour,
		ConnMaxAgeJitter:       6 * time.Minute,
		ConnMaxIdle:            30 * time.Minute,
		HealthCheckPeriod:      time.Minute,
		QueryTimeout:           30 * time.Second,
		StatementTimeout:       33 * time.Second,
		CancelGrace:            time.Second,
		AcquireTimeout:         10 * time.Second,
		LeakThreshold:          60 * time.Second,
		StatementCacheCapacity: 512,
		ExecMode:               "cache-statement",
		UtilizationWarn:        0.85,
		UtilizationWarnAfter:   10 * time.Second,
		HealthTimeout:          2 * time.Second,
		HealthSlowQuery:        500 * time.Millisecond,
		ConnectTimeout:         5 * time.Second,
		TLS:                    pgclient.TLSConfig{Mode: "require", MinVersion: "1.2", CipherSuites: pgclient.DefaultTLSCipherSuites},
		ChannelBinding:         "prefer",
		Breaker:                pgclient.BreakerConfig{FailureThreshold: 5, Window: 10 * time.Second, MinRequests: 20, OpenTimeout: 10 * time.Second, HalfOpenProbes: 3},
		Retry: pgclient.RetryConfig{
			ConnectRetries: 3, ConnectRetryBase: time.Second, ConnectRetryMax: 10 * time.Second,
			StatementRetries: 2, StatementRetryBase: 50 * time.Millisecond, StatementRetryMax: time.Second,
			TxRetries: 3, TxRetryBase: 20 * time.Millisecond, TxRetryMax: time.Second,
			MaxElapsed: 30 * time.Second,
		},
	}, c)
	require.Equal(t, c, c.WithDefaults(), "idempotent")
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	c := pgclient.Config{
		URL:                    someURL + "?omnibridge_bogus=1&pool_max_conns=x",
		MinConns:               30,
		MaxConns:               20,
		QueryTimeout:           -time.Second,
		AcquireTimeout:         -1,
		StatementTimeout:       time.Second, // below query_timeout once that is valid: not reported here
		ExecMode:               "turbo",
		UtilizationWarn:        1.5,
		StatementCacheCapacity: -3,
		PrepareOnConnect:       map[string]string{"empty": " "},
	}.WithDefaults()
	err := c.Validate()
	require.Error(t, err)
	fields := map[string]bool{}
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	for _, e := range joined.Unwrap() {
		var ce *pgclient.ConfigError
		require.True(t, errors.As(e, &ce), "%v", e)
		fields[ce.Field] = true
	}
	for _, f := range []string{"url", "min_conns", "query_timeout", "acquire_timeout", "exec_mode",
		"utilization_warn", "statement_cache_capacity", "prepare_on_connect"} {
		require.True(t, fields[f], "missing %s in %v", f, err)
	}
	require.Contains(t, err.Error(), "omnibridge_bogus")
	require.Contains(t, err.Error(), "pool_max_conns=x")
	require.Contains(t, err.Error(), `"turbo"`)

	require.ErrorContains(t, pgclient.Config{}.WithDefaults().Validate(), "url: invalid value \"\": required")
	require.ErrorContains(t, pgclient.Config{URL: someURL, QueryTimeout: 10 * time.Second, StatementTimeout: time.Second}.WithDefaults().Validate(),
		"statement_timeout")
}

func TestConfigFromURLParameters(t *testing.T) {
	t.Parallel()
	url := someURL + "?pool_max_conns=7&pool_min_conns=2&pool_max_conn_lifetime=10m&pool_max_conn_lifetime_jitter=0" +
		"&pool_max_conn_idle_time=1m&pool_health_check_period=5s&statement_cache_capacity=64" +
		"&default_query_exec_mode=cache_describe&application_name=hook-receiver" +
		"&omnibridge_max_queries_per_conn=500&omnibridge_query_timeout=3s&omnibridge_acquire_timeout=2s" +
		"&omnibridge_leak_threshold=0&omnibridge_statement_timeout=off&omnibridge_cancel_grace=250ms" +
		"&omnibridge_role=svc&omnibridge_utilization_warn=0.9&omnibridge_utilization_warn_after=1m" +
		"&omnibridge_health_timeout=1s&omnibridge_health_slow_query=50ms"
	c := pgclient.Config{URL: url}.WithDefaults()
	require.NoError(t, c.Validate())
	require.EqualValues(t, 7, c.MaxConns)
	require.EqualValues(t, 2, c.MinConns)
	require.Equal(t, 10*time.Minute, c.ConnMaxAge)
	require.Negative(t, c.ConnMaxAgeJitter, "0 switches jitter off")
	require.Equal(t, time.Minute, c.ConnMaxIdle)
	require.Equal(t, 5*time.Second, c.HealthCheckPeriod)
	require.Equal(t, 64, c.StatementCacheCapacity)
	require.Equal(t, pgclient.ExecModeCacheDescribe, c.ExecMode)
	require.Equal(t, "hook-receiver", c.ServiceName)
	require.EqualValues(t, 500, c.MaxQueriesPerConn)
	require.Equal(t, 3*time.Second, c.QueryTimeout)
	require.Equal(t, 2*time.Second, c.AcquireTimeout)
	require.Negative(t, c.LeakThreshold, "0 disables leak detection")
	require.Negative(t, c.StatementTimeout)
	require.Equal(t, 250*time.Millisecond, c.CancelGrace)
	require.Equal(t, "svc", c.Role)
	require.Equal(t, 0.9, c.UtilizationWarn)
	require.Equal(t, time.Minute, c.UtilizationWarnAfter)
	require.Equal(t, time.Second, c.HealthTimeout)
	require.Equal(t, 50*time.Millisecond, c.HealthSlowQuery)

	// A field that is set wins over the URL.
	c = pgclient.Config{URL: url, MaxConns: 11, QueryTimeout: time.Second}.WithDefaults()
	require.EqualValues(t, 11, c.MaxConns)
	require.Equal(t, time.Second, c.QueryTimeout)
}

func TestOpenWithURLParameters(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{
		URL:         withParams(t, "pool_max_conns=3&pool_min_conns=2&omnibridge_query_timeout=4s&omnibridge_max_queries_per_conn=100&application_name=from-url"),
		ServiceName: "from-config",
	})
	c, ctx := b.client, ctxT(t)
	cfg := c.Config()
	require.EqualValues(t, 3, cfg.MaxConns)
	require.Equal(t, 4*time.Second, cfg.QueryTimeout)
	require.Contains(t, b.log.String(), "param=application_name", "the overridden URL parameter is logged")

	var app, stmt string
	require.NoError(t, c.QueryRow(ctx, "SELECT current_setting('application_name'), current_setting('statement_timeout')").Scan(&app, &stmt))
	require.Equal(t, "from-config", app)
	require.Equal(t, "5s", stmt)
	require.EqualValues(t, 3, c.Stats().Max)
	require.Equal(t, 2, backends(t, "from-config"))
}
