package pgclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of RetryConfig. The connect policy is ADR-016's: three retries
// from a one-second base delay.
const (
	DefaultConnectRetries     = 3
	DefaultConnectRetryBase   = time.Second
	DefaultConnectRetryMax    = 10 * time.Second
	DefaultStatementRetries   = 2
	DefaultStatementRetryBase = 50 * time.Millisecond
	DefaultStatementRetryMax  = time.Second
	DefaultTxRetries          = 3
	DefaultTxRetryBase        = 20 * time.Millisecond
	DefaultTxRetryMax         = time.Second
	DefaultRetryMaxElapsed    = 30 * time.Second
)

// retryJitter spreads each delay uniformly over ±50% of its nominal value, so
// that clients failing together do not retry together.
const retryJitter = 0.5

// RetryConfig configures retries with exponential backoff and jitter: the
// n-th retry waits about Base × 2^(n-1), at most Max, ±50%. Every retry loop
// stops at once when the caller's context ends, when the circuit breaker
// refuses the operation, or when the next attempt would start after
// MaxElapsed.
type RetryConfig struct {
	// ConnectRetries is how many times a failed attempt to connect is
	// retried when the failure is transient (the server is down, starting,
	// or out of connections). Authentication and TLS failures are never
	// retried. Applies to Open. Defaults to 3; negative means no retry.
	ConnectRetries int `yaml:"connect_retries"`
	// ConnectRetryBase is the delay before the first connect retry.
	// Defaults to 1s.
	ConnectRetryBase time.Duration `yaml:"connect_retry_base"`
	// ConnectRetryMax caps the delay between connect retries. Defaults to 10s.
	ConnectRetryMax time.Duration `yaml:"connect_retry_max"`

	// StatementRetries is how many times an operation that failed
	// transiently is retried: always when nothing reached the server (no
	// connection could be had, or pgx reports that nothing was sent), and
	// also after the statement was sent when the context is marked with
	// Idempotent. Defaults to 2; negative means no retry.
	StatementRetries int `yaml:"statement_retries"`
	// StatementRetryBase is the delay before the first statement retry.
	// Defaults to 50ms.
	StatementRetryBase time.Duration `yaml:"statement_retry_base"`
	// StatementRetryMax caps the delay between statement retries. Defaults
	// to 1s.
	StatementRetryMax time.Duration `yaml:"statement_retry_max"`

	// TxRetries is how many times InTx runs a transaction again after a
	// serialization failure, a deadlock or a lock timeout (ClassRetryTx).
	// Defaults to 3; negative means no retry.
	TxRetries int `yaml:"tx_retries"`
	// TxRetryBase is the delay before the first transaction retry. Defaults
	// to 20ms.
	TxRetryBase time.Duration `yaml:"tx_retry_base"`
	// TxRetryMax caps the delay between transaction retries. Defaults to 1s.
	TxRetryMax time.Duration `yaml:"tx_retry_max"`

	// MaxElapsed bounds every retry loop: no attempt starts later than this
	// after the first one began. Defaults to 30s.
	MaxElapsed time.Duration `yaml:"max_elapsed"`
}

// WithDefaults returns a copy of r with defaults filling unset fields.
func (r RetryConfig) WithDefaults() RetryConfig {
	set := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	seti := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	seti(&r.ConnectRetries, DefaultConnectRetries)
	set(&r.ConnectRetryBase, DefaultConnectRetryBase)
	set(&r.ConnectRetryMax, DefaultConnectRetryMax)
	seti(&r.StatementRetries, DefaultStatementRetries)
	set(&r.StatementRetryBase, DefaultStatementRetryBase)
	set(&r.StatementRetryMax, DefaultStatementRetryMax)
	seti(&r.TxRetries, DefaultTxRetries)
	set(&r.TxRetryBase, DefaultTxRetryBase)
	set(&r.TxRetryMax, DefaultTxRetryMax)
	set(&r.MaxElapsed, DefaultRetryMaxElapsed)
	return r
}

// Validate reports every invalid field; field names are prefixed with
// "retry.". Call it on the result of WithDefaults.
func (r RetryConfig) Validate() error {
	var errs []error
	for _, p := range []struct {
		name      string
		base, max time.Duration
	}{
		{"connect_retry", r.ConnectRetryBase, r.ConnectRetryMax},
		{"statement_retry", r.StatementRetryBase, r.StatementRetryMax},
		{"tx_retry", r.TxRetryBase, r.TxRetryMax},
	} {
		if p.base <= 0 {
			errs = append(errs, configError("retry."+p.name+"_base", p.base, "must be positive"))
		}
		if p.max < p.base {
			errs = append(errs, configError("retry."+p.name+"_max", p.max, fmt.Sprintf("must not be below retry.%s_base (%s)", p.name, p.base)))
		}
	}
	if r.MaxElapsed <= 0 {
		errs = append(errs, configError("retry.max_elapsed", r.MaxElapsed, "must be positive"))
	}
	return errors.Join(errs...)
}

// retryKind names a retry policy, for metrics and logs.
type retryKind uint8

const (
	retryConnect retryKind = iota
	retryStatement
	retryTx
	numRetryKinds
)

var retryKindNames = [numRetryKinds]string{retryConnect: "connect", retryStatement: "statement", retryTx: "tx"}

// retryPolicy is one retry loop's parameters.
type retryPolicy struct {
	kind       retryKind
	retries    int // ≤ 0: none
	base, max  time.Duration
	maxElapsed time.Duration
}

func (r RetryConfig) policies() [numRetryKinds]retryPolicy {
	return [numRetryKinds]retryPolicy{
		retryConnect:   {kind: retryConnect, retries: r.ConnectRetries, base: r.ConnectRetryBase, max: r.ConnectRetryMax, maxElapsed: r.MaxElapsed},
		retryStatement: {kind: retryStatement, retries: r.StatementRetries, base: r.StatementRetryBase, max: r.StatementRetryMax, maxElapsed: r.MaxElapsed},
		retryTx:        {kind: retryTx, retries: r.TxRetries, base: r.TxRetryBase, max: r.TxRetryMax, maxElapsed: r.MaxElapsed},
	}
}

// retryEvent describes a retry about to happen, for the caller's logging and
// counting.
type retryEvent struct {
	kind    retryKind
	attempt int // the attempt that failed, from 1
	err     error
	wait    time.Duration
}

// do runs op until it succeeds, fails with an error retryable rejects, the
// retries are spent, the next attempt would start after maxElapsed, or ctx
// ends. onRetry (optional) is called before each wait. When ctx ends during a
// wait, the error matches both ctx's error and op's last error. It returns
// the number of attempts made.
func (p retryPolicy) do(ctx context.Context, retryable func(error) bool, onRetry func(retryEvent), op func(attempt int) error) (int, error) {
	if p.retries <= 0 {
		return 1, op(1)
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.base,
		RandomizationFactor: retryJitter,
		Multiplier:          2,
		MaxInterval:         p.max,
	}
	attempts := 0
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempts++
		last = op(attempts)
		if last != nil && !retryable(last) {
			return struct{}{}, backoff.Permanent(last)
		}
		return struct{}{}, last
	},
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(p.retries)+1),
		backoff.WithMaxElapsedTime(p.maxElapsed),
		backoff.WithNotify(func(err error, wait time.Duration) {
			if onRetry != nil {
				onRetry(retryEvent{kind: p.kind, attempt: attempts, err: err, wait: wait})
			}
		}),
	)
	var perm *backoff.PermanentError
	switch {
	case err == nil:
		return attempts, nil
	case errors.As(err, &perm) && perm.Err == last:
		return attempts, last
	case last != nil && err != last:
		// The context ended while waiting to retry.
		return attempts, fmt.Errorf("%w (gave up after %d attempts; last error: %w)", err, attempts, last)
	}
	return attempts, err
}

// idempotentKey marks a context with Idempotent.
type idempotentKey struct{}

// Idempotent returns a context that marks the statements run with it as safe
// to send more than once: reads, and writes whose repetition changes nothing
// (an upsert to a fixed value, a delete by key). The client then retries them
// after a transient failure even when the statement may have reached the
// server (RetryConfig.StatementRetries). Without the mark, a statement is
// retried only when pgx guarantees that nothing was sent
// (pgconn.SafeToRetry) or no connection could be had.
//
// Exec and QueryRow (within Scan) honour the mark; Query honours it when
// Query itself returns the failure, not when reading the rows does (some
// rows may have reached the caller). SendBatch and CopyFrom are never
// retried once sent: their input is consumed as it is sent.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// IsIdempotent reports whether ctx was marked with Idempotent.
func IsIdempotent(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

// notSentError marks an error that happened before anything was sent to the
// server for the operation (the connection could not be had), so that
// pgconn.SafeToRetry reports true for it.
type notSentError struct{ err error }

func (e *notSentError) Error() string     { return e.err.Error() }
func (e *notSentError) Unwrap() error     { return e.err }
func (e *notSentError) SafeToRetry() bool { return true }

// markNotSent wraps err, when not nil, so that pgconn.SafeToRetry is true.
func markNotSent(err error) error {
	if err == nil || pgconn.SafeToRetry(err) {
		return err
	}
	return &notSentError{err: err}
}

// retryableStatement reports whether a statement that failed with err may be
// run again: the failure is transient, it is not the breaker refusing or the
// pool being exhausted (waiting again would only add another acquire
// timeout), and the statement is known not to have been sent or is marked
// idempotent. A statement that ran into a timeout (QueryTimeout, the
// server's statement_timeout, the caller's deadline) is not run again, even
// idempotent: it would most likely run as long again, on a database that is
// slow already.
func retryableStatement(ctx context.Context, err error) bool {
	if Classify(err) != ClassTransient || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPoolExhausted) {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	return IsIdempotent(ctx) && !timedOut(err)
}

// timedOut reports a statement ended by a timeout: the client's query
// timeout, a deadline, or a cancel on the server (57014).
func timedOut(err error) bool {
	if errors.Is(err, ErrQueryTimeout) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "57014"
}

// retryableConnect reports whether a failed attempt to connect may be
// repeated: only transient failures (not authentication, TLS or a missing
// database), and not a refusal by the breaker.
func retryableConnect(err error) bool {
	return Classify(err) == ClassTransient && !errors.Is(err, ErrUnavailable)
}

// txStage says where a transaction attempt failed.
type txStage uint8

const (
	txBegin  txStage = iota // starting it (acquire, BEGIN)
	txBody                  // in the caller's function
	txCommit                // at COMMIT
)

// txFailure is an error of a transaction attempt with where it happened.
type txFailure struct {
	stage txStage
	err   error
}

func (e *txFailure) Error() string { return e.err.Error() }
func (e *txFailure) Unwrap() error { return e.err }

// retryableTx reports whether a transaction attempt that failed may be run
// again as a whole: after a serialization failure, a deadlock or a lock
// timeout at any stage (the server rolled it back), or after a transient
// failure of a statement inside it that was not sent. A transient failure at
// COMMIT is never retried: the transaction may have committed. Failures to
// begin are not retried here: beginning already has the statement policy.
func retryableTx(err error) bool {
	var f *txFailure
	if !errors.As(err, &f) {
		return false
	}
	switch Classify(f.err) {
	case ClassRetryTx:
		return true
	case ClassTransient:
		return f.stage == txBody && pgconn.SafeToRetry(f.err) && !errors.Is(f.err, ErrUnavailable)
	}
	return false
}
