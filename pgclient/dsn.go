package pgclient

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// urlOption is a connection-string parameter that sets a Config field.
type urlOption struct {
	key   string // parameter name in the URL
	field string // YAML key of the field it sets
	// set parses v and stores it into c unless the field is already set. It
	// reports whether the field was set (to a different value) before.
	set func(c *Config, v string) (overridden bool, err error)
}

// ownPrefix marks parameters that only pgclient understands. They are removed
// from the runtime parameters before pgx connects, since the server would
// refuse them.
const ownPrefix = "omnibridge_"

// urlOptions lists every URL parameter that fills a Config field. pgxpool's
// and pgx's own parameters keep their names; ours carry ownPrefix.
var urlOptions = []urlOption{
	intOption("pool_min_conns", "min_conns", func(c *Config) *int32 { return &c.MinConns }, true),
	intOption("pool_max_conns", "max_conns", func(c *Config) *int32 { return &c.MaxConns }, false),
	durationOption("pool_max_conn_lifetime", "conn_max_age", func(c *Config) *time.Duration { return &c.ConnMaxAge }, true),
	durationOption("pool_max_conn_lifetime_jitter", "conn_max_age_jitter", func(c *Config) *time.Duration { return &c.ConnMaxAgeJitter }, true),
	durationOption("pool_max_conn_idle_time", "conn_max_idle", func(c *Config) *time.Duration { return &c.ConnMaxIdle }, true),
	durationOption("pool_health_check_period", "health_check_period", func(c *Config) *time.Duration { return &c.HealthCheckPeriod }, false),
	intOption("statement_cache_capacity", "statement_cache_capacity", func(c *Config) *int { return &c.StatementCacheCapacity }, false),
	stringOption("default_query_exec_mode", "exec_mode", func(c *Config) *string { return &c.ExecMode }, normalizeExecMode),
	stringOption("application_name", "service_name", func(c *Config) *string { return &c.ServiceName }, nil),
	stringOption(ownPrefix+"role", "role", func(c *Config) *string { return &c.Role }, nil),
	intOption(ownPrefix+"max_queries_per_conn", "max_queries_per_conn", func(c *Config) *int64 { return &c.MaxQueriesPerConn }, true),
	durationOption(ownPrefix+"query_timeout", "query_timeout", func(c *Config) *time.Duration { return &c.QueryTimeout }, false),
	durationOption(ownPrefix+"statement_timeout", "statement_timeout", func(c *Config) *time.Duration { return &c.StatementTimeout }, true),
	durationOption(ownPrefix+"cancel_grace", "cancel_grace", func(c *Config) *time.Duration { return &c.CancelGrace }, true),
	durationOption(ownPrefix+"acquire_timeout", "acquire_timeout", func(c *Config) *time.Duration { return &c.AcquireTimeout }, false),
	durationOption(ownPrefix+"leak_threshold", "leak_threshold", func(c *Config) *time.Duration { return &c.LeakThreshold }, true),
	floatOption(ownPrefix+"utilization_warn", "utilization_warn", func(c *Config) *float64 { return &c.UtilizationWarn }),
	durationOption(ownPrefix+"utilization_warn_after", "utilization_warn_after", func(c *Config) *time.Duration { return &c.UtilizationWarnAfter }, false),
	durationOption(ownPrefix+"health_timeout", "health_timeout", func(c *Config) *time.Duration { return &c.HealthTimeout }, false),
	durationOption(ownPrefix+"health_slow_query", "health_slow_query", func(c *Config) *time.Duration { return &c.HealthSlowQuery }, false),
}

// urlParams returns the parameters of a connection string that are not
// connection settings (pool_*, statement_cache_capacity, application_name,
// omnibridge_*, server settings), as pgconn parses them. Environment variables
// such as PGAPPNAME count as if they were in the URL.
func urlParams(connString string) (map[string]string, error) {
	cc, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	return cc.RuntimeParams, nil
}

// applyURLParams fills c's unset fields from params. It returns the keys of
// parameters that a set field overrode, and an error per unparseable or
// unknown omnibridge_ parameter.
func applyURLParams(c Config, params map[string]string) (Config, []string, []error) {
	var overridden []string
	var errs []error
	known := make(map[string]bool, len(urlOptions))
	for _, o := range urlOptions {
		known[o.key] = true
		v, ok := params[o.key]
		if !ok {
			continue
		}
		over, err := o.set(&c, v)
		if err != nil {
			errs = append(errs, configError("url", o.key+"="+v, fmt.Sprintf("sets %s: %v", o.field, err)))
			continue
		}
		if over {
			overridden = append(overridden, o.key)
		}
	}
	for k, v := range params {
		if strings.HasPrefix(k, ownPrefix) && !known[k] {
			errs = append(errs, configError("url", k+"="+v, "unknown "+ownPrefix+" parameter"))
		}
	}
	return c, overridden, errs
}

// disabledValue is how a URL says "off" for fields where negative disables.
func disabledValue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "0", "off", "none", "disabled", "-1":
		return true
	}
	return false
}

func durationOption(key, field string, p func(*Config) *time.Duration, canDisable bool) urlOption {
	return urlOption{key: key, field: field, set: func(c *Config, v string) (bool, error) {
		var d time.Duration
		if canDisable && disabledValue(v) {
			d = -1
		} else {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				return false, err
			}
			if d <= 0 {
				return false, fmt.Errorf("must be positive")
			}
		}
		return setIfZero(p(c), d), nil
	}}
}

func intOption[T int | int32 | int64](key, field string, p func(*Config) *T, canDisable bool) urlOption {
	return urlOption{key: key, field: field, set: func(c *Config, v string) (bool, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return false, err
		}
		if int64(T(n)) != n {
			return false, fmt.Errorf("out of range")
		}
		switch {
		case n < 0 || (n == 0 && !canDisable):
			return false, fmt.Errorf("must be positive")
		case n == 0:
			n = -1
		}
		return setIfZero(p(c), T(n)), nil
	}}
}

func floatOption(key, field string, p func(*Config) *float64) urlOption {
	return urlOption{key: key, field: field, set: func(c *Config, v string) (bool, error) {
		var f float64
		if disabledValue(v) {
			f = -1
		} else {
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
				return false, err
			}
		}
		return setIfZero(p(c), f), nil
	}}
}

func stringOption(key, field string, p func(*Config) *string, norm func(string) string) urlOption {
	return urlOption{key: key, field: field, set: func(c *Config, v string) (bool, error) {
		if norm != nil {
			v = norm(v)
		}
		return setIfZero(p(c), v), nil
	}}
}

// setIfZero stores v into *dst when *dst is unset and reports whether *dst held
// a different value.
func setIfZero[T comparable](dst *T, v T) (overridden bool) {
	var zero T
	if *dst == zero {
		*dst = v
		return false
	}
	return *dst != v
}
