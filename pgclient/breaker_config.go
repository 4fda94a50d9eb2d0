package pgclient

import (
	"errors"
	"time"
)

// Defaults of BreakerConfig.
const (
	DefaultBreakerFailureThreshold = 5
	DefaultBreakerWindow           = 10 * time.Second
	DefaultBreakerMinRequests      = 20
	DefaultBreakerOpenTimeout      = 10 * time.Second
	DefaultBreakerHalfOpenProbes   = 3
)

// BreakerConfig configures the circuit breaker around every operation of a
// Client and around connecting. Only transient errors (see Classify) count as
// failures; permanent errors count as successes (the server answered) and
// the caller's cancellations do not count at all.
type BreakerConfig struct {
	// FailureThreshold consecutive transient failures open the breaker.
	// Defaults to 5; negative disables the breaker altogether.
	FailureThreshold int `yaml:"failure_threshold"`

	// FailureRatio, when positive, also opens the breaker when at least this
	// share (0 < x ≤ 1) of the operations that finished within the last
	// Window failed transiently, once at least MinRequests finished. It
	// catches a database that fails often without ever failing
	// FailureThreshold times in a row. Defaults to 0: off.
	FailureRatio float64 `yaml:"failure_ratio"`

	// Window is the rolling window (in ten buckets) for FailureRatio.
	// Defaults to 10s. Unused when FailureRatio is off.
	Window time.Duration `yaml:"window"`

	// MinRequests is how many operations must have finished within Window
	// before FailureRatio applies. Defaults to 20.
	MinRequests int `yaml:"min_requests"`

	// OpenTimeout is how long the breaker stays open, failing every operation
	// at once with ErrUnavailable, before it lets probes through. Defaults
	// to 10s.
	OpenTimeout time.Duration `yaml:"open_timeout"`

	// HalfOpenProbes is how many operations a half-open breaker lets through
	// at once; that many successes in a row close it, and one transient
	// failure opens it again. Defaults to 3.
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// WithDefaults returns a copy of b with defaults filling unset fields.
func (b BreakerConfig) WithDefaults() BreakerConfig {
	if b.FailureThreshold == 0 {
		b.FailureThreshold = DefaultBreakerFailureThreshold
	}
	if b.Window == 0 {
		b.Window = DefaultBreakerWindow
	}
	if b.MinRequests == 0 {
		b.MinRequests = DefaultBreakerMinRequests
	}
	if b.OpenTimeout == 0 {
		b.OpenTimeout = DefaultBreakerOpenTimeout
	}
	if b.HalfOpenProbes == 0 {
		b.HalfOpenProbes = DefaultBreakerHalfOpenProbes
	}
	return b
}

// Validate reports every invalid field; field names are prefixed with
// "breaker.". Call it on the result of WithDefaults.
func (b BreakerConfig) Validate() error {
	if b.FailureThreshold < 0 {
		return nil // disabled: the rest does not matter
	}
	var errs []error
	if b.FailureRatio < 0 || b.FailureRatio > 1 {
		errs = append(errs, configError("breaker.failure_ratio", b.FailureRatio, "must be in [0, 1] (0: off)"))
	}
	if b.Window < 10*time.Millisecond {
		errs = append(errs, configError("breaker.window", b.Window, "must be at least 10ms"))
	}
	if b.MinRequests < 1 {
		errs = append(errs, configError("breaker.min_requests", b.MinRequests, "must be at least 1"))
	}
	if b.OpenTimeout <= 0 {
		errs = append(errs, configError("breaker.open_timeout", b.OpenTimeout, "must be positive"))
	}
	if b.HalfOpenProbes < 1 || b.HalfOpenProbes > 1<<16 {
		errs = append(errs, configError("breaker.half_open_probes", b.HalfOpenProbes, "must be between 1 and 65536"))
	}
	return errors.Join(errs...)
}
