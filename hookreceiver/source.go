// Package hookreceiver is the HTTP ingest service: configured sources, their
// signature verifiers, and the mapping of a verified body to an Event.
//
// A request to a source goes through two steps, in this order:
//
//  1. Source.Verify checks the signature (or bearer token) over the raw body,
//     before anything parses it, comparing in constant time. Failures are
//     *AuthError values with a stable Code (401).
//  2. Source.Extract checks that the whole body is JSON that PostgreSQL jsonb
//     stores without error or ambiguity, then takes action, resource,
//     resource_id and the delivery id as the source's mapping says. Failures
//     are *PayloadError values with a stable Code (400).
//
// Bodies that jsonb would refuse are caught here, with the reason: invalid
// UTF-8, \u0000 in any string or key, unpaired surrogate escapes, numbers
// outside the range of numeric, and nesting deeper than the source allows.
// Objects with a repeated key are refused too (duplicate_key): jsonb would
// keep the last value while other JSON readers keep the first, so the stored
// event could differ from what a consumer of the signed body sees.
package hookreceiver

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Verifier names accepted by SourceConfig.Verifier.
const (
	VerifierGitHub           = "github"
	VerifierStandardWebhooks = "standard-webhooks"
	VerifierHMACSHA256       = "hmac-sha256"
	VerifierBearer           = "bearer"
	VerifierNone             = "none"
)

// Limits and defaults of a source.
const (
	// BodyLimitDefault is the default SourceConfig.BodyLimit: 1 MiB.
	BodyLimitDefault = 1 << 20
	// BodyLimitMax is the largest accepted SourceConfig.BodyLimit: 64 MiB.
	BodyLimitMax = 64 << 20
	// MaxDepthDefault is the default SourceConfig.MaxDepth.
	MaxDepthDefault = 64
	// MaxDepthMax is the largest accepted SourceConfig.MaxDepth.
	MaxDepthMax = 1000
	// ToleranceDefault is the default SourceConfig.Tolerance (Standard Webhooks).
	ToleranceDefault = 5 * time.Minute
	// ToleranceMax is the largest accepted SourceConfig.Tolerance.
	ToleranceMax = time.Hour
	// HMACHeaderDefault is the default SourceConfig.Header for hmac-sha256.
	HMACHeaderDefault = "X-Signature"
	// MinSecretLen is the shortest accepted secret in bytes (for
	// standard-webhooks, of the decoded key). Shorter secrets can be guessed.
	MinSecretLen = 16
)

// ErrNoVerifier is reported for a source without a verifier. A receiver must
// refuse to start rather than accept unsigned events silently.
var ErrNoVerifier = errors.New("no verifier: set verifier (github, standard-webhooks, hmac-sha256, bearer) or verifier: none with allow_unsigned: true")

var sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// SourceConfig configures one webhook source, reached at POST /hooks/{name}.
type SourceConfig struct {
	// Name is the source's path segment and the events' source column:
	// lower-case letters, digits, '_' and '-', starting with a letter or
	// digit, at most 63 characters. Required.
	Name string `yaml:"name"`

	// Verifier is github, standard-webhooks, hmac-sha256, bearer or none.
	// Required: there is no default, and none is accepted only together with
	// AllowUnsigned.
	Verifier string `yaml:"verifier"`

	// Secrets are the keys (or bearer tokens) of the source. Several secrets
	// allow rotation: a request verified by any of them passes. Required for
	// every verifier but none, each at least MinSecretLen bytes. For
	// standard-webhooks each is "whsec_<base64>" or the base64 alone.
	Secrets []string `yaml:"secrets" secret:"true"`

	// Header carries the signature for hmac-sha256. Defaults to "X-Signature".
	// Only for hmac-sha256.
	Header string `yaml:"header"`

	// Encoding of the hmac-sha256 signature: hex or base64 (standard alphabet,
	// padding optional). Defaults to "hex". Only for hmac-sha256.
	Encoding string `yaml:"encoding"`

	// Prefix precedes the encoded hmac-sha256 signature, e.g. "sha256=".
	// Defaults to none. Only for hmac-sha256.
	Prefix string `yaml:"prefix"`

	// Tolerance is how far webhook-timestamp may be from the receive time, in
	// the past or the future. Defaults to 5 minutes, at most 1 hour. Only for
	// standard-webhooks.
	Tolerance time.Duration `yaml:"tolerance"`

	// AllowUnsigned must be true for verifier none, and only for it. Defaults
	// to false.
	AllowUnsigned bool `yaml:"allow_unsigned"`

	// Mapping says how action, resource, resource_id and the delivery id are
	// taken from the request. Defaults to the preset of the verifier.
	Mapping MappingConfig `yaml:"mapping"`

	// RateLimit limits the source's requests. Defaults to unlimited.
	RateLimit RateLimitConfig `yaml:"rate_limit"`

	// BodyLimit is the largest accepted body in bytes; larger bodies are
	// answered 413. Defaults to 1 MiB, at most 64 MiB.
	BodyLimit int64 `yaml:"body_limit"`

	// MaxDepth is the deepest accepted nesting of JSON objects and arrays
	// (the top-level object is depth 1). Defaults to 64, at most 1000.
	MaxDepth int `yaml:"max_depth"`
}

// RateLimitConfig is a token bucket: PerSecond tokens are added each second up
// to Burst; a request without a token is answered 429.
type RateLimitConfig struct {
	// PerSecond is the sustained request rate. Defaults to 0: unlimited.
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket size. Defaults to PerSecond rounded up (at least 1)
	// when PerSecond is set; ignored when unlimited.
	Burst int `yaml:"burst"`
}

// Unlimited reports whether the rate limit is off.
func (r RateLimitConfig) Unlimited() bool { return r.PerSecond == 0 }

// WithDefaults returns a copy of c with every unset field given its default.
// Settings that apply only to another verifier stay unset.
func (c SourceConfig) WithDefaults() SourceConfig {
	c.Secrets = slices.Clone(c.Secrets)
	switch c.Verifier {
	case VerifierHMACSHA256:
		c.Header = cmp.Or(c.Header, HMACHeaderDefault)
		c.Encoding = cmp.Or(c.Encoding, EncodingHex)
	case VerifierStandardWebhooks:
		c.Tolerance = cmp.Or(c.Tolerance, ToleranceDefault)
	}
	c.Mapping = c.Mapping.withDefaults(c.Verifier)
	if c.RateLimit.PerSecond > 0 && c.RateLimit.Burst == 0 {
		c.RateLimit.Burst = max(1, int(math.Ceil(min(c.RateLimit.PerSecond, 1<<30))))
	}
	c.BodyLimit = cmp.Or(c.BodyLimit, BodyLimitDefault)
	c.MaxDepth = cmp.Or(c.MaxDepth, MaxDepthDefault)
	return c
}

// Validate reports every invalid field of c at once (errors.Join), each as a
// *ConfigError naming the source, the field and the value; secrets are never
// printed. It expects defaults to be filled (WithDefaults).
func (c SourceConfig) Validate() error {
	var errs []error
	if !sourceNameRE.MatchString(c.Name) {
		errs = append(errs, c.fieldErr("name", c.Name, "must match [a-z0-9][a-z0-9_-]{0,62}"))
	}
	errs = append(errs, c.validateVerifier()...)
	if ps := c.RateLimit.PerSecond; ps < 0 || math.IsNaN(ps) || math.IsInf(ps, 0) {
		errs = append(errs, c.fieldErr("rate_limit.per_second", ps, "must be 0 (unlimited) or a positive number"))
	}
	if c.RateLimit.Burst < 0 {
		errs = append(errs, c.fieldErr("rate_limit.burst", c.RateLimit.Burst, "must not be negative"))
	}
	if c.BodyLimit < 1 || c.BodyLimit > BodyLimitMax {
		errs = append(errs, c.fieldErr("body_limit", c.BodyLimit, fmt.Sprintf("must be between 1 and %d bytes", BodyLimitMax)))
	}
	if c.MaxDepth < 1 || c.MaxDepth > MaxDepthMax {
		errs = append(errs, c.fieldErr("max_depth", c.MaxDepth, fmt.Sprintf("must be between 1 and %d", MaxDepthMax)))
	}
	errs = append(errs, c.Mapping.validate(c)...)
	return errors.Join(errs...)
}

// validateVerifier checks the verifier and the settings that belong to it.
func (c SourceConfig) validateVerifier() []error {
	var errs []error
	signed := true
	switch c.Verifier {
	case VerifierGitHub, VerifierStandardWebhooks, VerifierHMACSHA256, VerifierBearer:
	case VerifierNone:
		signed = false
		if !c.AllowUnsigned {
			errs = append(errs, c.fieldErr("allow_unsigned", false, "verifier none accepts unsigned requests from anyone: set allow_unsigned: true to confirm"))
		}
	case "":
		return []error{&ConfigError{Source: c.Name, Field: "verifier", Value: "", Reason: ErrNoVerifier.Error(),
			err: fmt.Errorf("source %s has %w", c.displayName(), ErrNoVerifier)}}
	default:
		return []error{c.fieldErr("verifier", c.Verifier, "must be github, standard-webhooks, hmac-sha256, bearer or none")}
	}
	if c.AllowUnsigned && c.Verifier != VerifierNone {
		errs = append(errs, c.fieldErr("allow_unsigned", true, "applies only to verifier none"))
	}
	switch {
	case signed && len(c.Secrets) == 0:
		errs = append(errs, c.fieldErr("secrets", "", "verifier "+c.Verifier+" needs at least one secret"))
	case !signed && len(c.Secrets) > 0:
		errs = append(errs, c.fieldErr("secrets", redactedValue, "verifier none uses no secrets: remove them or choose a verifier"))
	}
	if signed {
		for i, s := range c.Secrets {
			if reason := c.secretProblem(s); reason != "" {
				errs = append(errs, c.fieldErr(fmt.Sprintf("secrets[%d]", i), redactedValue, reason))
			}
		}
	}
	if c.Verifier == VerifierHMACSHA256 {
		if !validHeaderName(c.Header) {
			errs = append(errs, c.fieldErr("header", c.Header, "must be an HTTP header name"))
		}
		if c.Encoding != EncodingHex && c.Encoding != EncodingBase64 {
			errs = append(errs, c.fieldErr("encoding", c.Encoding, "must be hex or base64"))
		}
		if strings.ContainsFunc(c.Prefix, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			errs = append(errs, c.fieldErr("prefix", c.Prefix, "must be printable ASCII without spaces"))
		}
	} else {
		for _, f := range []struct{ name, value string }{{"header", c.Header}, {"encoding", c.Encoding}, {"prefix", c.Prefix}} {
			if f.value != "" {
				errs = append(errs, c.fieldErr(f.name, f.value, "applies only to verifier hmac-sha256"))
			}
		}
	}
	if c.Verifier == VerifierStandardWebhooks {
		if c.Tolerance <= 0 || c.Tolerance > ToleranceMax {
			errs = append(errs, c.fieldErr("tolerance", c.Tolerance, fmt.Sprintf("must be positive and at most %s", ToleranceMax)))
		}
	} else if c.Tolerance != 0 {
		errs = append(errs, c.fieldErr("tolerance", c.Tolerance, "applies only to verifier standard-webhooks"))
	}
	return errs
}

// secretProblem says what is wrong with one secret, or "".
func (c SourceConfig) secretProblem(s string) string {
	if strings.TrimSpace(s) != s {
		return "has leading or trailing white space"
	}
	n := len(s)
	if c.Verifier == VerifierStandardWebhooks {
		key, err := decodeStandardWebhooksSecret(s)
		if err != nil {
			return err.Error()
		}
		n = len(key)
	}
	if n < MinSecretLen {
		return fmt.Sprintf("is %d bytes; use at least %d random bytes", n, MinSecretLen)
	}
	return ""
}

func (c SourceConfig) displayName() string {
	if c.Name == "" {
		return "(unnamed)"
	}
	return c.Name
}

func (c SourceConfig) fieldErr(field string, value any, reason string) error {
	return &ConfigError{Source: c.Name, Field: field, Value: value, Reason: reason}
}

// redactedValue stands in for a secret in error messages.
const redactedValue = "REDACTED"

// ConfigError names an invalid field of a source, its value and why it is
// invalid. Secrets appear as REDACTED.
type ConfigError struct {
	// Source is the source's name ("" when the name itself is missing).
	Source string
	// Field is the YAML path inside the source, e.g. "mapping.action.pointer".
	Field string
	// Value is the offending value.
	Value any
	// Reason says what a valid value looks like.
	Reason string

	err error // replaces the standard message when set
}

func (e *ConfigError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	name := e.Source
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("source %s: %s: invalid value %q: %s", name, e.Field, fmt.Sprint(e.Value), e.Reason)
}

// Unwrap returns the sentinel behind the error, such as ErrNoVerifier.
func (e *ConfigError) Unwrap() error { return e.err }

// Source is a configured, validated webhook source: its verifier and mapping.
// It is safe for concurrent use.
type Source struct {
	cfg      SourceConfig
	verifier Verifier
	mapper   *mapper
}

// NewSource fills cfg's defaults, validates it and builds the source.
func NewSource(cfg SourceConfig) (*Source, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	m, err := newMapper(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, verifier: v, mapper: m}, nil
}

// NewSources builds every source, keyed by name. It reports all invalid
// sources and duplicate names at once and returns no sources if any is
// invalid. An empty list is valid and yields an empty map.
func NewSources(cfgs []SourceConfig) (map[string]*Source, error) {
	out := make(map[string]*Source, len(cfgs))
	first := make(map[string]int, len(cfgs))
	var errs []error
	for i, cfg := range cfgs {
		if j, dup := first[cfg.Name]; dup && cfg.Name != "" {
			errs = append(errs, &ConfigError{Source: cfg.Name, Field: "name", Value: cfg.Name,
				Reason: fmt.Sprintf("sources[%d] repeats the name of sources[%d]; names must be unique", i, j)})
			continue
		}
		first[cfg.Name] = i
		s, err := NewSource(cfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[cfg.Name] = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Name returns the source's name.
func (s *Source) Name() string { return s.cfg.Name }

// Config returns the source's configuration with defaults filled in,
// including its secrets; redact before printing.
func (s *Source) Config() SourceConfig {
	c := s.cfg
	c.Secrets = slices.Clone(c.Secrets)
	c.Mapping.Headers = slices.Clone(c.Mapping.Headers)
	return c
}

// Verify checks the request's signature or token against the raw body; see
// Verifier. Call it before Extract.
func (s *Source) Verify(h http.Header, body []byte, now time.Time) error {
	return s.verifier.Verify(h, body, now)
}

// validHeaderName reports whether s is an HTTP field name (an RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
