package hookreceiver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Verifier checks that a request was sent by someone who holds one of the
// source's secrets. It sees the raw body exactly as received, before any
// parsing, and compares in constant time.
//
// Verify returns nil when the request is authentic. Otherwise it returns an
// error wrapping one of the ErrMissingSignature, ErrMalformedSignature,
// ErrBadSignature, ErrTimestampOutOfRange, ErrMissingToken or ErrBadToken
// sentinels (all *AuthError), which a server answers with 401 and records in
// the security audit log under AuthError.Code. now is the receive time; only
// verifiers with a timestamp use it.
//
// Verifiers are safe for concurrent use. They never panic on hostile headers.
type Verifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// AuthError is a reason a request failed authentication. Each sentinel below is
// an *AuthError; verifiers wrap one with detail, so errors.Is(err, ErrBadSignature)
// and errors.As(err, &*AuthError) both work.
type AuthError struct {
	// Code is a stable machine name for the reason, suitable for a JSON error
	// body, a metric label and the audit log.
	Code string
	msg  string
}

func (e *AuthError) Error() string { return e.msg }

// Authentication failure reasons. None of them includes a secret or the
// expected signature in its text.
var (
	// ErrMissingSignature: the signature header (or one of the headers a
	// signature needs) is absent or empty. The sender must sign every request.
	ErrMissingSignature = &AuthError{Code: "missing_signature", msg: "missing signature: the sender must sign the request with the source's secret"}

	// ErrMalformedSignature: a signature header is present but cannot be parsed
	// (wrong prefix, wrong encoding or length, bad timestamp).
	ErrMalformedSignature = &AuthError{Code: "malformed_signature", msg: "malformed signature header: check the sender's signature format against the source's verifier"}

	// ErrBadSignature: the signature is well formed but no configured secret
	// produces it for this body. Either the body was altered or the sender uses
	// a secret this source does not know.
	ErrBadSignature = &AuthError{Code: "bad_signature", msg: "signature does not match: the body was altered or the sender uses a different secret"}

	// ErrTimestampOutOfRange: the signed timestamp is further from the receive
	// time than the tolerance allows (a replay, or a clock that is off).
	ErrTimestampOutOfRange = &AuthError{Code: "timestamp_out_of_range", msg: "signature timestamp outside the tolerance: replayed request or sender clock skew"}

	// ErrMissingToken: no "Authorization: Bearer <token>" header.
	ErrMissingToken = &AuthError{Code: "missing_token", msg: "missing bearer token: send Authorization: Bearer <token>"}

	// ErrBadToken: the bearer token matches none of the configured secrets.
	ErrBadToken = &AuthError{Code: "bad_token", msg: "bearer token does not match"}
)

// authErr wraps a sentinel with detail that is safe to log.
func authErr(sentinel *AuthError, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// AuthCode returns the AuthError code carried by err, or "" when err is not an
// authentication failure.
func AuthCode(err error) string {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// NewVerifier builds the verifier named by cfg.Verifier from cfg's secrets and
// settings, after filling defaults. It returns the same validation errors as
// SourceConfig.Validate for the verifier's fields; for verifier none it refuses
// unless AllowUnsigned is set.
func NewVerifier(cfg SourceConfig) (Verifier, error) {
	cfg = cfg.WithDefaults()
	if errs := cfg.validateVerifier(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return newVerifier(cfg)
}

// newVerifier builds a verifier from a validated config.
func newVerifier(cfg SourceConfig) (Verifier, error) {
	switch cfg.Verifier {
	case VerifierGitHub:
		return newGitHubVerifier(cfg.Secrets), nil
	case VerifierStandardWebhooks:
		return newStandardWebhooksVerifier(cfg.Secrets, cfg.Tolerance)
	case VerifierHMACSHA256:
		return newHMACVerifier(cfg.Secrets, cfg.Header, cfg.Prefix, cfg.Encoding), nil
	case VerifierBearer:
		return newBearerVerifier(cfg.Secrets), nil
	case VerifierNone:
		return noneVerifier{}, nil
	}
	return nil, fmt.Errorf("source %s has %w", cfg.Name, ErrNoVerifier)
}

// bearerVerifier accepts "Authorization: Bearer <token>" when the token equals
// one of the secrets. It compares SHA-256 digests so that neither the content
// nor the length of a secret leaks through timing.
type bearerVerifier struct {
	digests [][sha256.Size]byte
}

func newBearerVerifier(secrets []string) *bearerVerifier {
	v := &bearerVerifier{digests: make([][sha256.Size]byte, len(secrets))}
	for i, s := range secrets {
		v.digests[i] = sha256.Sum256([]byte(s))
	}
	return v
}

func (v *bearerVerifier) Verify(h http.Header, _ []byte, _ time.Time) error {
	auth := h.Get("Authorization")
	if auth == "" {
		return authErr(ErrMissingToken, "no Authorization header")
	}
	token, ok := bearerToken(auth)
	if !ok {
		return authErr(ErrMissingToken, "Authorization header does not carry a Bearer token")
	}
	got := sha256.Sum256([]byte(token))
	match := 0
	for i := range v.digests {
		match |= subtle.ConstantTimeCompare(got[:], v.digests[i][:])
	}
	if match != 1 {
		return authErr(ErrBadToken, "token matches none of %d configured secrets", len(v.digests))
	}
	return nil
}

// bearerToken returns the token of an Authorization header value of the form
// "Bearer <token>" (scheme case-insensitive, RFC 7235), or false.
func bearerToken(auth string) (string, bool) {
	const scheme = "bearer"
	if len(auth) <= len(scheme) || auth[len(scheme)] != ' ' {
		return "", false
	}
	for i := range len(scheme) {
		c := auth[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return "", false
		}
	}
	token := auth[len(scheme)+1:]
	for len(token) > 0 && token[0] == ' ' {
		token = token[1:]
	}
	if token == "" {
		return "", false
	}
	return token, true
}

// noneVerifier accepts everything. SourceConfig.Validate only allows it with
// AllowUnsigned set explicitly.
type noneVerifier struct{}

func (noneVerifier) Verify(http.Header, []byte, time.Time) error { return nil }
