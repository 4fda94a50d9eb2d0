package pgclient

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Types of SecurityEvent.
const (
	// SecurityEventConnectFailed: a connection could not be established for
	// a reason other than authentication or TLS (refused, unreachable, timed
	// out, too many connections, no such database).
	SecurityEventConnectFailed = "database.connect_failed"
	// SecurityEventAuthFailed: the server refused the credentials or the
	// client (pg_hba.conf), or the client refused the authentication the
	// server asked for (require_auth, channel binding).
	SecurityEventAuthFailed = "database.auth_failed"
	// SecurityEventTLSFailed: TLS could not be set up: the server refused
	// it, its certificate did not verify, or no protocol version or cipher
	// suite was common.
	SecurityEventTLSFailed = "database.tls_failed"
	// SecurityEventBreakerOpened: the circuit breaker opened; operations
	// fail fast with ErrUnavailable.
	SecurityEventBreakerOpened = "database.breaker_opened"
	// SecurityEventBreakerClosed: the circuit breaker closed again.
	SecurityEventBreakerClosed = "database.breaker_closed"
)

// SecurityEvent is something the security audit log records about the
// client's connection to the database. It never holds a password.
type SecurityEvent struct {
	// Type is one of the SecurityEvent* constants.
	Type string `json:"event_type"`
	// Success is false for failures and for the breaker opening.
	Success bool `json:"success"`
	// Service is Config.ServiceName.
	Service string `json:"service"`
	// Host, Port, User, Database and Application describe the connection
	// attempted (for breaker events, the configured first host).
	Host        string `json:"host"`
	Port        uint16 `json:"port"`
	User        string `json:"user"`
	Database    string `json:"database"`
	Application string `json:"application_name"`
	// TLSMode is the effective TLSConfig.Mode.
	TLSMode string `json:"tls_mode"`
	// Details is the error or the breaker's reason.
	Details string `json:"details,omitempty"`
	// At is when it happened.
	At time.Time `json:"at"`
}

// ClientInfo returns the event's description of the client, for the
// client_info column of the audit log.
func (e SecurityEvent) ClientInfo() map[string]any {
	return map[string]any{
		"service":          e.Service,
		"host":             e.Host,
		"port":             e.Port,
		"user":             e.User,
		"database":         e.Database,
		"application_name": e.Application,
		"tls_mode":         e.TLSMode,
	}
}

// connectFailureType returns the SecurityEvent type of a failed connection
// attempt. a (nil when unknown) tells how far the last attempt got.
func connectFailureType(a *connectAttempt, err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if strings.HasPrefix(pgErr.Code, "28") { // invalid authorization: password, pg_hba.conf
			return SecurityEventAuthFailed
		}
		return SecurityEventConnectFailed
	}
	switch {
	case IsTLSError(err):
		return SecurityEventTLSFailed
	case isNetworkError(err), a == nil:
		return SecurityEventConnectFailed
	}
	net, auth := a.stage()
	switch {
	case a.tls && !net:
		// pgx reports a server that refuses TLS with an untyped error.
		return SecurityEventTLSFailed
	case net && !auth:
		// Refused by the client during authentication: require_auth,
		// channel binding, or a SCRAM exchange that did not verify.
		return SecurityEventAuthFailed
	}
	return SecurityEventConnectFailed
}

// connectAttempt follows one call to connect through pgconn's hooks, so that
// an untyped failure can be told apart: before the network connection (and
// TLS) was up, during authentication, or after.
type connectAttempt struct {
	cc            *pgconn.Config // what was connected to (set by the tracer)
	tls           bool           // TLS is configured for the host being tried (set by the dialling goroutine)
	netConnected  atomic.Bool    // TCP and TLS established
	authenticated atomic.Bool    // the server accepted the authentication
}

func (a *connectAttempt) stage() (netConnected, authenticated bool) {
	return a.netConnected.Load(), a.authenticated.Load()
}

type connectAttemptKey struct{}

// withConnectAttempt returns ctx carrying a new attempt, for the hooks
// installed by instrumentConnect.
func withConnectAttempt(ctx context.Context) (context.Context, *connectAttempt) {
	a := &connectAttempt{}
	return context.WithValue(ctx, connectAttemptKey{}, a), a
}

func connectAttemptFrom(ctx context.Context) *connectAttempt {
	a, _ := ctx.Value(connectAttemptKey{}).(*connectAttempt)
	return a
}

// instrumentConnect chains hooks onto cc that record, in the connectAttempt
// carried by the connect context, how far each host's attempt got. The hooks
// already set on cc still run. Dials without a connectAttempt (pgconn's
// cancel requests) are left alone.
func instrumentConnect(cc *pgconn.Config) {
	// The client gives every TCP host the same TLS setting (TLSConfig.apply);
	// unix sockets never use TLS.
	tlsOn := cc.TLSConfig != nil
	for _, f := range cc.Fallbacks {
		tlsOn = tlsOn || f.TLSConfig != nil
	}
	dial := cc.DialFunc
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		a := connectAttemptFrom(ctx)
		if a != nil {
			// A new host (or address of it): start over.
			a.netConnected.Store(false)
			a.authenticated.Store(false)
			a.tls = tlsOn && network == "tcp"
		}
		return dial(ctx, network, addr)
	}
	after := cc.AfterNetConnect
	cc.AfterNetConnect = func(ctx context.Context, cfg *pgconn.Config, conn net.Conn) (net.Conn, error) {
		if a := connectAttemptFrom(ctx); a != nil {
			a.netConnected.Store(true)
		}
		if after != nil {
			return after(ctx, cfg, conn)
		}
		return conn, nil
	}
	validate := cc.ValidateConnect
	cc.ValidateConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		if a := connectAttemptFrom(ctx); a != nil {
			a.authenticated.Store(true)
		}
		if validate != nil {
			return validate(ctx, pc)
		}
		return nil
	}
}

// scrubSecret removes secret from text, in case an error quoted it.
func scrubSecret(text, secret string) string {
	if len(secret) < 4 {
		return text
	}
	return strings.ReplaceAll(text, secret, "[redacted]")
}

// eventQueue delivers events to the callbacks on one goroutine, in order,
// without ever blocking the code that raises them: when the queue is full,
// events are dropped and counted.
type eventQueue struct {
	log     *slog.Logger
	ch      chan func()
	done    chan struct{}
	dropped atomic.Int64

	mu     sync.Mutex
	closed bool
}

// eventQueueSize bounds the events waiting for the callbacks.
const eventQueueSize = 256

func newEventQueue(log *slog.Logger) *eventQueue {
	q := &eventQueue{log: log, ch: make(chan func(), eventQueueSize), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *eventQueue) run() {
	defer close(q.done)
	for fn := range q.ch {
		fn()
	}
}

// push queues fn; it reports false (and counts a drop) when the queue is
// full or closed.
func (q *eventQueue) push(fn func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		select {
		case q.ch <- fn:
			return true
		default:
		}
	}
	if n := q.dropped.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th… drop
		q.log.Warn("pgclient: event callback queue full or closed, event dropped", slog.Int64("dropped", n))
	}
	return false
}

// close delivers what is queued and stops the goroutine. It is safe to call
// more than once.
func (q *eventQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	<-q.done
}

var _ pgx.ConnectTracer = (*tracer)(nil)

// TraceConnectStart gives the attempt a connectAttempt for the hooks of
// instrumentConnect, unless the caller (Open's probe) brought one.
func (t *tracer) TraceConnectStart(ctx context.Context, d pgx.TraceConnectStartData) context.Context {
	a := connectAttemptFrom(ctx)
	if a == nil {
		ctx, a = withConnectAttempt(ctx)
	}
	a.cc = &d.ConnConfig.Config
	return ctx
}

// TraceConnectEnd raises the security event of a failed attempt. pgx calls
// it once per ConnectConfig, however many hosts or addresses were tried.
func (t *tracer) TraceConnectEnd(ctx context.Context, d pgx.TraceConnectEndData) {
	if d.Err == nil || t.c.res == nil {
		return
	}
	t.c.res.connectFailed(connectAttemptFrom(ctx), d.Err)
}
