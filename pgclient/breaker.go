package pgclient

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// halfOpenRetryAfter is what RetryAfter says while the breaker is half-open
// and its probes are all in flight: they finish within a query timeout, but
// the breaker usually knows much sooner.
const halfOpenRetryAfter = time.Second

// BreakerState is the state of the circuit breaker. Its numeric value is the
// one exported in the breaker_state metric.
type BreakerState int

// Breaker states.
const (
	// BreakerClosed lets every operation through.
	BreakerClosed BreakerState = 0
	// BreakerHalfOpen lets HalfOpenProbes operations through to find out
	// whether the database is back.
	BreakerHalfOpen BreakerState = 1
	// BreakerOpen fails every operation at once with ErrUnavailable.
	BreakerOpen BreakerState = 2
)

// String returns "closed", "half-open" or "open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

func fromGobreaker(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// ErrUnavailable is wrapped (in an *UnavailableError) by the error of every
// operation refused by an open circuit breaker: the database failed
// repeatedly and the client is not sending it anything for a while. Nothing
// was sent to the server. Answer 503 with the Retry-After that RetryAfter
// returns; the breaker lets probes through by itself once its open timeout
// has passed.
var ErrUnavailable = errors.New("pgclient: database unavailable: the circuit breaker is open after repeated connection failures or timeouts (retry later; pgclient.RetryAfter says when)")

// UnavailableError is the error of an operation refused by the circuit
// breaker. It matches ErrUnavailable with errors.Is.
type UnavailableError struct {
	// State is BreakerOpen, or BreakerHalfOpen when the probes the half-open
	// breaker allows are all in flight.
	State BreakerState
	// Since is when the breaker opened.
	Since time.Time
	// RetryAfter is how long until the breaker lets probes through (at least
	// one millisecond).
	RetryAfter time.Duration
	// Cause is the message of the transient failure that opened the breaker.
	Cause string
}

func (e *UnavailableError) Error() string {
	if e.State == BreakerHalfOpen {
		return fmt.Sprintf("%v: half-open, probes in flight; retry in %s", ErrUnavailable, e.RetryAfter.Round(time.Millisecond))
	}
	msg := fmt.Sprintf("%v: open since %s, next probe in %s", ErrUnavailable,
		e.Since.Format(time.RFC3339), e.RetryAfter.Round(time.Millisecond))
	if e.Cause != "" {
		msg += "; last failure: " + e.Cause
	}
	return msg
}

// Unwrap returns ErrUnavailable.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// RetryAfter returns how long the caller should wait before trying again when
// err was refused by the circuit breaker (it wraps an *UnavailableError); ok
// is false for every other error. Services send it as Retry-After, rounded up
// to whole seconds.
func RetryAfter(err error) (d time.Duration, ok bool) {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue.RetryAfter, true
	}
	return 0, false
}

// BreakerChange reports a transition of the circuit breaker.
type BreakerChange struct {
	// Service is Config.ServiceName.
	Service string       `json:"service"`
	From    BreakerState `json:"from"`
	To      BreakerState `json:"to"`
	// At is when the transition happened.
	At time.Time `json:"at"`
	// Reason is the last transient failure when the breaker opens, and what
	// closed it otherwise.
	Reason string `json:"reason"`
	// RetryAt is when an open breaker lets probes through; zero otherwise.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// BreakerStatus is a snapshot of the circuit breaker, for Health.
type BreakerStatus struct {
	State BreakerState `json:"state"`
	// Since is when the breaker entered State (zero for a breaker that has
	// always been closed).
	Since time.Time `json:"since,omitzero"`
	// RetryAt is when an open breaker lets probes through.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Reason is the failure that opened the breaker, when not closed.
	Reason string `json:"reason,omitempty"`
}

// breaker wraps gobreaker's two-step breaker: operations whose outcome is
// known only later (rows read to the end, a row scanned) report it when it
// is.
//
// Fast path: while the breaker is closed and has counted no failure since
// the last success ("clean"), a success changes nothing in consecutive-
// failure mode, so operations skip gobreaker (its mutex, two clock reads and
// two allocations) and only a transient failure goes through it. An
// operation admitted while clean that succeeds after another one failed does
// not reset the failure count: under concurrency the breaker may open a
// little early, never late. With FailureRatio on, every outcome counts and
// there is no fast path.
type breaker struct {
	cb          *gobreaker.TwoStepCircuitBreaker[struct{}]
	openTimeout time.Duration
	service     string
	notify      func(BreakerChange) // must not block: called under gobreaker's lock

	fast     bool        // the fast path is allowed (FailureRatio off)
	clean    atomic.Bool // closed, no failure counted since the last success
	fastDone func(error)

	lastFailure atomic.Pointer[string] // message of the latest transient failure

	mu      sync.Mutex
	since   time.Time // when the current state began
	retryAt time.Time // when an open breaker lets probes through
	reason  string    // why it opened

	transitions [3]atomic.Int64 // by the state entered
	rejected    atomic.Int64
}

// newBreaker returns nil when the breaker is disabled. notify receives every
// transition; it runs under the breaker's lock, so it must only hand the
// change over (it must not call back into the breaker).
func newBreaker(cfg BreakerConfig, service string, notify func(BreakerChange)) *breaker {
	if cfg.FailureThreshold < 0 {
		return nil
	}
	b := &breaker{openTimeout: cfg.OpenTimeout, service: service, notify: notify}
	threshold := uint32(cfg.FailureThreshold)
	ratio, minRequests := cfg.FailureRatio, uint32(cfg.MinRequests)
	st := gobreaker.Settings{
		Name:        service,
		MaxRequests: uint32(cfg.HalfOpenProbes),
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= threshold {
				return true
			}
			finished := c.TotalSuccesses + c.TotalFailures
			return ratio > 0 && finished >= minRequests && float64(c.TotalFailures) >= ratio*float64(finished)
		},
		IsSuccessful:  func(err error) bool { return Classify(err) != ClassTransient },
		IsExcluded:    func(err error) bool { return Classify(err) == ClassCanceled },
		OnStateChange: b.onStateChange,
	}
	if ratio > 0 {
		st.Interval = cfg.Window
		st.BucketPeriod = max(cfg.Window/10, time.Millisecond)
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	b.fast = ratio <= 0
	b.clean.Store(b.fast)
	b.fastDone = b.reportFast
	return b
}

// allow admits an operation. It returns a function to call exactly once with
// the operation's outcome, or an *UnavailableError when the breaker refuses
// it. A nil breaker admits everything.
func (b *breaker) allow() (done func(error), err error) {
	if b == nil {
		return noReport, nil
	}
	if b.clean.Load() {
		return b.fastDone, nil
	}
	report, err := b.cb.Allow()
	if err != nil {
		b.rejected.Add(1)
		return nil, b.unavailable(err)
	}
	return func(err error) {
		transient := err != nil && Classify(err) == ClassTransient
		if transient {
			b.noteFailure(err)
		}
		report(err)
		if b.fast && !transient && Classify(err) != ClassCanceled && b.cb.State() == gobreaker.StateClosed {
			b.clean.Store(true)
		}
	}, nil
}

// reportFast is the outcome report of an operation admitted on the fast
// path: only a transient failure is passed on, as one failed request, unless
// the breaker has left the closed state since (the outcome is stale then).
func (b *breaker) reportFast(err error) {
	if err == nil || Classify(err) != ClassTransient {
		return
	}
	b.clean.Store(false)
	if b.cb.State() != gobreaker.StateClosed {
		return
	}
	report, aerr := b.cb.Allow()
	if aerr != nil {
		return
	}
	b.noteFailure(err)
	report(err)
}

func (b *breaker) noteFailure(err error) {
	msg := err.Error()
	b.lastFailure.Store(&msg)
}

func noReport(error) {}

// unavailable builds the error for a refusal by gobreaker.
func (b *breaker) unavailable(err error) *UnavailableError {
	b.mu.Lock()
	defer b.mu.Unlock()
	ue := &UnavailableError{State: BreakerOpen, Since: b.since, Cause: b.reason}
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		ue.State = BreakerHalfOpen
		ue.RetryAfter = halfOpenRetryAfter
		return ue
	}
	ue.RetryAfter = max(time.Until(b.retryAt), time.Millisecond)
	return ue
}

// onStateChange runs under gobreaker's lock.
func (b *breaker) onStateChange(_ string, from, to gobreaker.State) {
	now := time.Now()
	ch := BreakerChange{Service: b.service, From: fromGobreaker(from), To: fromGobreaker(to), At: now}
	b.clean.Store(b.fast && ch.To == BreakerClosed)
	b.mu.Lock()
	b.since = now
	switch ch.To {
	case BreakerOpen:
		if p := b.lastFailure.Load(); p != nil {
			b.reason = *p
		}
		b.retryAt = now.Add(b.openTimeout)
		ch.Reason, ch.RetryAt = b.reason, b.retryAt
		if ch.From == BreakerHalfOpen {
			ch.Reason = "a probe failed: " + b.reason
		}
	case BreakerHalfOpen:
		ch.Reason = "open timeout passed: letting probes through"
	case BreakerClosed:
		ch.Reason = "probes succeeded"
		b.reason, b.retryAt = "", time.Time{}
	}
	b.mu.Unlock()
	b.transitions[ch.To].Add(1)
	if b.notify != nil {
		b.notify(ch)
	}
}

// status returns the breaker's state; a nil breaker is always closed.
func (b *breaker) status() BreakerStatus {
	if b == nil {
		return BreakerStatus{State: BreakerClosed}
	}
	state := fromGobreaker(b.cb.State()) // may move open → half-open first
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BreakerStatus{State: state, Since: b.since}
	if state != BreakerClosed {
		s.Reason = b.reason
	}
	if state == BreakerOpen {
		s.RetryAt = b.retryAt
	}
	return s
}

// rejections is the number of operations refused; 0 for a nil breaker.
func (b *breaker) rejections() int64 {
	if b == nil {
		return 0
	}
	return b.rejected.Load()
}

// transitionCount is the number of transitions into state; 0 for a nil
// breaker.
func (b *breaker) transitionCount(state BreakerState) int64 {
	if b == nil {
		return 0
	}
	return b.transitions[state].Load()
}
