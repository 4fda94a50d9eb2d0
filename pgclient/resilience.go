package pgclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"
)

// resilience is what a Client adds around its operations: the circuit
// breaker, the retry policies, and the ordered delivery of breaker changes
// and security events to the configured callbacks.
type resilience struct {
	service  string
	log      *slog.Logger
	breaker  *breaker // nil when disabled
	policies [numRetryKinds]retryPolicy
	retries  [numRetryKinds]atomic.Int64
	events   *eventQueue

	onBreaker  func(BreakerChange)
	onSecurity func(SecurityEvent)

	// For the client description of security events.
	tlsMode  string
	password string // scrubbed from event details
	target   SecurityEvent
}

// newResilience builds the breaker and policies of c and starts the event
// queue; close stops it.
func newResilience(c Config, cc *pgconn.Config, log *slog.Logger) *resilience {
	r := &resilience{
		service:    c.ServiceName,
		log:        log,
		policies:   c.Retry.policies(),
		events:     newEventQueue(log),
		onBreaker:  c.OnBreakerChange,
		onSecurity: c.OnSecurityEvent,
		tlsMode:    c.TLS.Mode,
		password:   cc.Password,
	}
	r.target = r.describe(cc)
	r.breaker = newBreaker(c.Breaker, c.ServiceName, r.breakerChanged)
	return r
}

func (r *resilience) close() { r.events.close() }

// describe returns an event with the client description of a connection
// to cc's first host.
func (r *resilience) describe(cc *pgconn.Config) SecurityEvent {
	return SecurityEvent{
		Service:     r.service,
		Host:        cc.Host,
		Port:        cc.Port,
		User:        cc.User,
		Database:    cc.Database,
		Application: cc.RuntimeParams["application_name"],
		TLSMode:     r.tlsMode,
	}
}

// breakerChanged runs under the breaker's lock: it only queues.
func (r *resilience) breakerChanged(ch BreakerChange) {
	r.events.push(func() {
		ev := r.target
		ev.At, ev.Details = ch.At, ch.Reason
		switch ch.To {
		case BreakerOpen:
			r.log.Warn("pgclient: circuit breaker opened: failing fast until the database recovers",
				slog.String("from", ch.From.String()), slog.String("reason", ch.Reason),
				slog.Time("retry_at", ch.RetryAt))
			ev.Type, ev.Success = SecurityEventBreakerOpened, false
		case BreakerHalfOpen:
			r.log.Info("pgclient: circuit breaker half-open: probing the database")
		case BreakerClosed:
			r.log.Info("pgclient: circuit breaker closed: the database answers again")
			ev.Type, ev.Success = SecurityEventBreakerClosed, true
		}
		if r.onBreaker != nil {
			r.onBreaker(ch)
		}
		if ev.Type != "" && r.onSecurity != nil {
			r.onSecurity(ev)
		}
	})
}

// connectFailed reports a failed connection attempt (a tells what was
// connected to and how far it got, when known) as a security event, and
// logs it.
func (r *resilience) connectFailed(a *connectAttempt, err error) {
	ev := r.target
	if a != nil && a.cc != nil {
		ev = r.describe(a.cc)
	}
	ev.Type = connectFailureType(a, err)
	ev.At = time.Now()
	ev.Details = scrubSecret(err.Error(), r.password)
	r.log.Warn("pgclient: connection failed", slog.String("event_type", ev.Type),
		slog.String("host", ev.Host), slog.Int("port", int(ev.Port)), slog.String("user", ev.User),
		slog.String("database", ev.Database), slog.String("error", ev.Details))
	if r.onSecurity != nil {
		r.events.push(func() { r.onSecurity(ev) })
	}
}

// retry runs op under the policy of kind, counting and logging retries.
func (r *resilience) retry(ctx context.Context, kind retryKind, retryable func(error) bool, op func(attempt int) error) error {
	_, err := r.policies[kind].do(ctx, retryable, r.onRetry, op)
	return err
}

func (r *resilience) onRetry(ev retryEvent) {
	r.retries[ev.kind].Add(1)
	r.log.Debug("pgclient: retrying after a transient failure", slog.String("kind", retryKindNames[ev.kind]),
		slog.Int("attempt", ev.attempt), slog.Duration("wait", ev.wait), slog.String("error", ev.err.Error()))
}

// retryCount is the number of retries of every kind.
func (r *resilience) retryCount() int64 {
	var n int64
	for i := range r.retries {
		n += r.retries[i].Load()
	}
	return n
}

// guard runs fn through the breaker; fn's error is the operation's
// outcome.
func (r *resilience) guard(fn func() error) error {
	done, err := r.breaker.allow()
	if err != nil {
		return err
	}
	err = fn()
	done(err)
	return err
}

// probe opens one connection with cc (through the breaker, retried under
// the connect policy) and closes it: Open checks that the server can be
// reached and the credentials work before the pool opens its connections,
// so that a wrong password is one failed attempt (one security event)
// rather than one per connection the pool would open.
func (r *resilience) probe(ctx context.Context, cc *pgx.ConnConfig) error {
	return r.retry(ctx, retryConnect, retryableConnect, func(int) error {
		return r.guard(func() error {
			actx, a := withConnectAttempt(ctx)
			conn, err := pgx.ConnectConfig(actx, cc.Copy())
			if err != nil {
				return describeConnectError(a, err)
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			return conn.Close(cctx)
		})
	})
}

// describeConnectError adds what to check to a failed connection's error,
// by what failed (a tells how far the attempt got; nil when unknown).
func describeConnectError(a *connectAttempt, err error) error {
	var hint string
	switch connectFailureType(a, err) {
	case SecurityEventTLSFailed:
		hint = "TLS setup failed (check tls.mode, tls.root_cert, tls.server_name and tls.min_version against the server's certificate and ssl settings)"
	case SecurityEventAuthFailed:
		hint = "authentication failed (check the user, the password and the server's pg_hba.conf)"
	default:
		if errors.Is(err, context.Canceled) || IsPermanent(err) {
			return fmt.Errorf("pgclient: connect: %w", err)
		}
		hint = "the server could not be reached or refused the connection"
	}
	return fmt.Errorf("pgclient: connect: %s: %w", hint, err)
}

// configureConnect applies the TLS, authentication and connect timeout
// settings to cc (the pool's connection configuration), and installs the
// hooks that tell how far a failed connection attempt got.
func (c *Client) configureConnect(cc *pgconn.Config) {
	c.tls.apply(cc)
	cc.RequireAuth = c.cfg.RequireAuth
	cc.ChannelBinding = c.cfg.ChannelBinding
	cc.ConnectTimeout = c.cfg.ConnectTimeout
	instrumentConnect(cc)
}

// beforeConnect keeps the pool from opening connections (its background
// top-ups included) while the breaker is open.
func (c *Client) beforeConnect(context.Context, *pgx.ConnConfig) error {
	if b := c.res.breaker; b.status().State == BreakerOpen {
		return b.unavailable(gobreaker.ErrOpenState)
	}
	return nil
}

// BreakerStatus returns the circuit breaker's state; a disabled breaker is
// always closed.
func (c *Client) BreakerStatus() BreakerStatus { return c.res.breaker.status() }

// rescan runs a QueryRow statement again after its Scan failed with first,
// under the statement retry policy, scanning into dest.
func (c *Client) rescan(ctx context.Context, sql string, args []any, dest []any, first error) error {
	return c.res.retry(ctx, retryStatement, func(err error) bool { return retryableStatement(ctx, err) }, func(n int) error {
		if n == 1 {
			return first
		}
		l, err := c.admit(ctx)
		if err != nil {
			return err
		}
		r := c.queryRow(ctx, l.st, l.at, l.pc.Conn(), l.pc, sql, args)
		r.done = l.done
		return r.Scan(dest...) // releases the connection and reports to the breaker
	})
}
