package metricsapi

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/omnibridge/omnibridge/internal/fielderr"
	"github.com/omnibridge/omnibridge/store"
)

// Defaults and limits of Config.
const (
	// DefaultWindow is the window of /api/v1/performance without ?window=.
	DefaultWindow = time.Hour
	// MaxWindowLimit is the longest MaxWindow accepted: the store's longest
	// performance window.
	MaxWindowLimit = store.MaxPerformanceWindow
	// DefaultPageSize is the page size of the listings without ?limit=.
	DefaultPageSize = 100
	// MaxPageSizeLimit is the largest MaxPageSize accepted: the store's
	// largest page.
	MaxPageSizeLimit = 1000
	// DefaultQueryTimeout bounds the database work of one request.
	DefaultQueryTimeout = 10 * time.Second
	// DefaultRefreshInterval is how often the dashboard reloads its data.
	DefaultRefreshInterval = 10 * time.Second
	// MinRefreshInterval is the shortest RefreshInterval accepted.
	MinRefreshInterval = time.Second
	// DefaultSeriesPoints is the number of buckets of a performance series
	// without ?step=.
	DefaultSeriesPoints = 60
	// MaxSeriesPoints is the most buckets one performance series has.
	MaxSeriesPoints = 1000
	// DefaultCacheTTL is how long a performance report or series is reused.
	DefaultCacheTTL = 5 * time.Second
	// MinTokenLength is the shortest token accepted, in bytes: a token is a
	// password that cannot be rate limited per user, so it must be long
	// enough not to be guessed (e.g. `openssl rand -hex 32`).
	MinTokenLength = 16
)

// ErrNoToken is returned by New when Config.Token is empty and AllowNoToken is
// not set: an API without a token would serve the audit log to anyone.
var ErrNoToken = errors.New("metricsapi: no token configured: set services.model_metrics.token " +
	"(or OMNIBRIDGE_SERVICES_MODEL_METRICS_TOKEN) to a random string of at least 16 characters, " +
	"e.g. the output of `openssl rand -hex 32`; only `omnibridge dev` runs without one")

// Config configures the ModelMetrics API. It sits under services.model_metrics
// in the omnibridge configuration (YAML keys in snake_case); fill defaults
// with WithDefaults, then Validate.
type Config struct {
	// Token is the bearer token every /api/v1 request must present
	// (Authorization: Bearer <token>), at least MinTokenLength bytes.
	// Required: New refuses an empty token unless AllowNoToken is set.
	Token string `yaml:"token" secret:"true"`

	// AllowNoToken lets the API run without a token, serving every request
	// unauthenticated. Only `omnibridge dev` sets it; it cannot be set from
	// YAML or the environment. It has no effect when Token is set.
	AllowNoToken bool `yaml:"-"`

	// DefaultWindow is the window of the performance endpoints without
	// ?window=. Defaults to 1h.
	DefaultWindow time.Duration `yaml:"default_window"`

	// MaxWindow is the longest ?window= accepted, at most MaxWindowLimit
	// (31 days, the longest calendar month; processed events are kept 30
	// days by default, so the oldest day of the longest windows may be
	// incomplete). Defaults to MaxWindowLimit.
	MaxWindow time.Duration `yaml:"max_window"`

	// DefaultPageSize is the page size of the listings without ?limit=.
	// Defaults to 100.
	DefaultPageSize int `yaml:"default_page_size"`

	// MaxPageSize is the largest ?limit= accepted, at most MaxPageSizeLimit.
	// Defaults to MaxPageSizeLimit (1000).
	MaxPageSize int `yaml:"max_page_size"`

	// QueryTimeout bounds the database work of one request; a request that
	// runs out of it answers 503. Defaults to 10s.
	QueryTimeout time.Duration `yaml:"query_timeout"`

	// CacheTTL is how long a computed performance report or series is
	// reused for the same parameters. Their cost grows with the rows in the
	// window, so this bounds the database work to one report per window per
	// CacheTTL however many dashboards are open; concurrent identical
	// requests share one computation in any case. A negative value turns the
	// reuse off. Defaults to 5s.
	CacheTTL time.Duration `yaml:"cache_ttl"`

	// RefreshInterval is how often the dashboard reloads its data, at least
	// MinRefreshInterval. Defaults to 10s.
	RefreshInterval time.Duration `yaml:"refresh_interval"`

	// SeriesPoints is the number of buckets of a performance series without
	// ?step=, at most MaxSeriesPoints. Defaults to 60.
	SeriesPoints int `yaml:"series_points"`
}

// WithDefaults returns c with every unset (zero) field set to its default.
func (c Config) WithDefaults() Config {
	c.DefaultWindow = cmp.Or(c.DefaultWindow, DefaultWindow)
	c.MaxWindow = cmp.Or(c.MaxWindow, MaxWindowLimit)
	c.DefaultPageSize = cmp.Or(c.DefaultPageSize, DefaultPageSize)
	c.MaxPageSize = cmp.Or(c.MaxPageSize, MaxPageSizeLimit)
	c.QueryTimeout = cmp.Or(c.QueryTimeout, DefaultQueryTimeout)
	c.CacheTTL = cmp.Or(c.CacheTTL, DefaultCacheTTL)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, DefaultRefreshInterval)
	c.SeriesPoints = cmp.Or(c.SeriesPoints, DefaultSeriesPoints)
	return c
}

// FieldError names an invalid configuration field (by its YAML key) and its
// value.
type FieldError = fielderr.Error

// Validate reports every invalid field at once, as *FieldError values joined
// with errors.Join. It does not check for a missing token (New does, since
// AllowNoToken may permit it); a token that is set must be long enough.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Token != "" && len(c.Token) < MinTokenLength {
		bad("token", "REDACTED", "is %d bytes, want at least %d (e.g. `openssl rand -hex 32`)", len(c.Token), MinTokenLength)
	}
	if c.MaxWindow <= 0 || c.MaxWindow > MaxWindowLimit {
		bad("max_window", c.MaxWindow, "must be in (0, %s]", MaxWindowLimit)
	}
	if c.DefaultWindow <= 0 || (c.MaxWindow > 0 && c.DefaultWindow > c.MaxWindow) {
		bad("default_window", c.DefaultWindow, "must be positive and at most max_window (%s)", c.MaxWindow)
	}
	if c.MaxPageSize < 1 || c.MaxPageSize > MaxPageSizeLimit {
		bad("max_page_size", c.MaxPageSize, "must be between 1 and %d", MaxPageSizeLimit)
	}
	if c.DefaultPageSize < 1 || (c.MaxPageSize > 0 && c.DefaultPageSize > c.MaxPageSize) {
		bad("default_page_size", c.DefaultPageSize, "must be between 1 and max_page_size (%d)", c.MaxPageSize)
	}
	if c.QueryTimeout <= 0 {
		bad("query_timeout", c.QueryTimeout, "must be positive")
	}
	if c.CacheTTL > time.Hour {
		bad("cache_ttl", c.CacheTTL, "must be at most 1h (negative turns the cache off)")
	}
	if c.RefreshInterval < MinRefreshInterval {
		bad("refresh_interval", c.RefreshInterval, "must be at least %s", MinRefreshInterval)
	}
	if c.SeriesPoints < 1 || c.SeriesPoints > MaxSeriesPoints {
		bad("series_points", c.SeriesPoints, "must be between 1 and %d", MaxSeriesPoints)
	}
	return errors.Join(errs...)
}
