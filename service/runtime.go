package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// Options describe one service to New.
type Options struct {
	// Name is the service name ("hook_receiver"), used for the session, the
	// pool's application_name and the metrics' service label.
	Name string
	// Version is recorded in the session's metadata.
	Version string
	// Config is the service's runtime configuration (defaults filled).
	Config Config
	// Database is the shared database configuration; Config.Database
	// overrides parts of it for this service's own pool.
	Database pgclient.Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Listener, when set, is served instead of listening on Config.Addr
	// (tests pass a listener on 127.0.0.1:0).
	Listener net.Listener
}

// Runtime is a running service's shared machinery. Services add their routes to
// Mux, their readiness checks with AddReadyCheck, and their background work with
// Go; Run serves until its context ends and then shuts down in order.
type Runtime struct {
	Name       string
	InstanceID string
	Log        *slog.Logger
	DB         *pgclient.Client
	Store      *store.Store
	Registry   *prometheus.Registry
	Mux        *http.ServeMux
	// Audit writes security audit rows without blocking the request path
	// (bounded queue; drops are counted in omnibridge_audit_dropped_total).
	Audit *store.AuditWriter

	cfg      Config
	version  string
	listener net.Listener
	server   *http.Server
	// session is the id of the current service session; the heartbeat
	// replaces it when the reaper has closed the previous one.
	session  atomic.Pointer[uuid.UUID]
	sessMeta map[string]any

	mu      sync.Mutex
	ready   []namedCheck
	workers []func(context.Context) error
	drains  []func(context.Context) error
}

type namedCheck struct {
	name string
	fn   func(context.Context) error
}

// New opens the service's own pool, registers its session and prepares its HTTP
// server. The caller adds routes and work, then calls Run.
func New(ctx context.Context, o Options) (*Runtime, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", o.Name)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	dbc := o.Database
	dbc.ServiceName = o.Name
	if o.Config.Database.URL != "" {
		dbc.URL = o.Config.Database.URL
	}
	if o.Config.Database.Role != "" {
		dbc.Role = o.Config.Database.Role
	}
	if o.Config.Database.MinConns > 0 {
		dbc.MinConns = o.Config.Database.MinConns
	}
	if o.Config.Database.MaxConns > 0 {
		dbc.MaxConns = o.Config.Database.MaxConns
	}
	dbc.Logger = log
	dbc.Registerer = reg
	// Degradations of the pool go to the audit log through the audit writer:
	// it queues without blocking and retries, so a degradation of the pool
	// itself (no connection free) is written once one is. The writer exists
	// only once the pool is open, hence the pointer.
	// A hook the caller set on Options.Database is called as well.
	var auditor atomic.Pointer[store.AuditWriter]
	callerDegradation, callerSecurity := dbc.OnDegradation, dbc.OnSecurityEvent
	dbc.OnDegradation = func(ev pgclient.DegradationEvent) {
		if callerDegradation != nil {
			callerDegradation(ev)
		}
		if w := auditor.Load(); w != nil {
			d := degradation(ev)
			w.WriteLimited(d.Key(), d.AuditEvent())
		}
	}
	// Failed connections (authentication, TLS) and the circuit breaker
	// opening and closing go there too, rate-limited per event type, user
	// and host (the writer bounds the number of keys). Those raised while
	// the pool cannot connect are written once it can; those raised while
	// Open is still connecting have no writer yet; pgclient logs every one.
	dbc.OnSecurityEvent = func(ev pgclient.SecurityEvent) {
		if callerSecurity != nil {
			callerSecurity(ev)
		}
		if w := auditor.Load(); w != nil {
			w.WriteLimited(ev.Type+" "+ev.User+"@"+ev.Host, store.AuditEvent{
				Type: ev.Type, ClientInfo: ev.ClientInfo(), Success: ev.Success,
				ErrorDetails: ev.Details, CreatedAt: ev.At,
			})
		}
	}

	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", o.Config.Addr); err != nil {
			return nil, fmt.Errorf("%s: listen on %s: %w", o.Name, o.Config.Addr, err)
		}
	}
	client, err := pgclient.Open(ctx, dbc)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s: open database: %w", o.Name, err)
	}
	st := store.New(client, store.WithLogger(log))
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnibridge_audit_dropped_total",
		Help: "Security audit events dropped instead of blocking a request, by reason.",
	}, []string{"reason"})
	reg.MustRegister(dropped)
	for _, r := range store.DropReasons() {
		// Every reason is exported from the start, at 0: an alert on
		// increase() would miss the drop that created a series.
		dropped.WithLabelValues(string(r))
	}
	audit, err := store.NewAuditWriter(st, store.AuditWriterConfig{
		Logger:      log,
		OnDrop:      func(r store.DropReason, n int) { dropped.WithLabelValues(string(r)).Add(float64(n)) },
		Unavailable: notSentForNow,
	})
	if err != nil {
		client.Close()
		ln.Close()
		return nil, err
	}
	auditor.Store(audit)
	host, _ := os.Hostname()
	r := &Runtime{
		Name:       o.Name,
		InstanceID: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8]),
		Log:        log,
		DB:         client,
		Store:      st,
		Registry:   reg,
		Mux:        http.NewServeMux(),
		Audit:      audit,
		cfg:        o.Config,
		version:    o.Version,
		listener:   ln,
	}
	r.Mux.HandleFunc("GET /healthz", r.healthz)
	r.Mux.HandleFunc("GET /readyz", r.readyz)
	r.Mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	r.AddReadyCheck("database", func(ctx context.Context) error {
		h := client.Health(ctx)
		if h.Status == pgclient.StatusUnhealthy {
			return fmt.Errorf("database unhealthy: %v", h.Reasons)
		}
		return nil
	})
	r.server = &http.Server{
		Handler:           r.Mux,
		ReadHeaderTimeout: o.Config.ReadHeaderTimeout,
		ReadTimeout:       o.Config.ReadTimeout,
		WriteTimeout:      o.Config.WriteTimeout,
		IdleTimeout:       o.Config.IdleTimeout,
		MaxHeaderBytes:    o.Config.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	r.sessMeta = map[string]any{"version": o.Version, "address": ln.Addr().String(), "pid": os.Getpid()}
	if err := r.registerSession(ctx); err != nil {
		_ = audit.Close(ctx)
		client.Close()
		ln.Close()
		return nil, fmt.Errorf("%s: register session: %w", o.Name, err)
	}
	return r, nil
}

// registerSession creates a new active session for this instance and makes
// it the current one.
func (r *Runtime) registerSession(ctx context.Context) error {
	s, err := r.Store.CreateSession(ctx, store.Session{
		ServiceName: r.Name, InstanceID: r.InstanceID, Metadata: r.sessMeta,
	})
	if err != nil {
		return err
	}
	r.session.Store(&s.ID)
	return nil
}

// SessionID is the id of the instance's current service session. It changes
// when the session was closed by the reaper (after missed heartbeats, say
// during a database outage) and the heartbeat registered a new one.
func (r *Runtime) SessionID() uuid.UUID { return *r.session.Load() }

// Addr is the address the HTTP server listens on.
func (r *Runtime) Addr() string { return r.listener.Addr().String() }

// AddReadyCheck adds a check that /readyz runs; any failure answers 503.
func (r *Runtime) AddReadyCheck(name string, fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = append(r.ready, namedCheck{name, fn})
}

// Go adds background work that runs while the service runs. It must return
// when its context ends; an error from it stops the service.
func (r *Runtime) Go(fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workers = append(r.workers, fn)
}

// OnDrain adds a step run at shutdown after the HTTP server stopped taking
// requests and before the pool closes (flush queues, release claims), in the
// order added, within the shutdown timeout.
func (r *Runtime) OnDrain(fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drains = append(r.drains, fn)
}

func (r *Runtime) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "service": r.Name, "instance_id": r.InstanceID})
}

func (r *Runtime) readyz(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
	defer cancel()
	r.mu.Lock()
	checks := append([]namedCheck(nil), r.ready...)
	r.mu.Unlock()
	res := map[string]string{}
	status := http.StatusOK
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			res[c.name] = err.Error()
			status = http.StatusServiceUnavailable
		} else {
			res[c.name] = "ok"
		}
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": res})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Run serves HTTP, heartbeats the session, records pool snapshots and runs the
// service's work until ctx ends or something fails. Then it shuts down in
// order: stop taking requests and finish those in flight, stop the work, run
// the drain steps, end the session, close the pool. It returns the first
// failure, or nil after a clean shutdown.
func (r *Runtime) Run(ctx context.Context) error {
	workCtx, stopWork := context.WithCancelCause(context.Background())
	defer stopWork(nil)
	var wg sync.WaitGroup
	fail := make(chan error, 1)
	start := func(fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(workCtx); err != nil && !errors.Is(err, context.Canceled) {
				select {
				case fail <- err:
				default:
				}
			}
		})
	}
	r.mu.Lock()
	work := append([]func(context.Context) error{r.heartbeat, r.recordPool}, r.workers...)
	r.mu.Unlock()
	for _, fn := range work {
		start(fn)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- r.server.Serve(r.listener) }()
	r.Log.Info("service: started", "addr", r.Addr(), "instance_id", r.InstanceID, "session_id", r.SessionID())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("%s: http server: %w", r.Name, err)
		}
	case runErr = <-fail:
	}
	return errors.Join(runErr, r.shutdown(stopWork, &wg, runErr))
}

func (r *Runtime) shutdown(stopWork context.CancelCauseFunc, wg *sync.WaitGroup, cause error) error {
	r.Log.Info("service: shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := r.server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	stopWork(errors.New("service shutting down"))
	wg.Wait()
	r.mu.Lock()
	drains := append([]func(context.Context) error(nil), r.drains...)
	r.mu.Unlock()
	for _, d := range drains {
		if err := d(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	status := store.SessionEnded
	if cause != nil {
		status = store.SessionFailed
	}
	if err := r.endSession(ctx, status); err != nil {
		errs = append(errs, fmt.Errorf("end session: %w", err))
	}
	if err := r.Audit.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flush audit log: %w", err))
	}
	r.DB.Close()
	r.Log.Info("service: stopped")
	return errors.Join(errs...)
}

// endSession records the end of the session, trying again while the attempt
// fails before reaching the database (right after an outage the circuit
// breaker may still admit only its probes), for at most half of what is left
// of ctx: the audit log is flushed after it. A session left active would be
// reaped later as terminated.
func (r *Runtime) endSession(ctx context.Context, status store.SessionStatus) error {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		defer cancel()
	}
	for {
		err := r.Store.EndSession(ctx, r.SessionID(), status)
		if err == nil || !notSentForNow(err) {
			return err
		}
		wait, ok := pgclient.RetryAfter(err)
		if !ok {
			wait = 100 * time.Millisecond
		}
		t := time.NewTimer(min(max(wait, 10*time.Millisecond), time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// notSentForNow reports a failure that left the database untouched and may
// pass: a connection that could not be opened for now (not a refused
// password), the circuit breaker refusing, the pool exhausted. Sending the
// same statement again cannot apply it twice. The audit writer keeps a batch
// that failed so until the database is back, since the events raised during
// an outage (the breaker opening, failed connections) would otherwise be
// dropped while the breaker refuses every attempt; a batch that may have
// reached the database (a connection lost under it, a timeout) counts
// against its attempts instead.
func notSentForNow(err error) bool {
	if pgclient.Classify(err) != pgclient.ClassTransient {
		return false
	}
	_, refused := errors.AsType[*pgconn.ConnectError](err)
	return refused || errors.Is(err, pgclient.ErrUnavailable) || errors.Is(err, pgclient.ErrPoolExhausted) ||
		pgconn.SafeToRetry(err)
}

// degradation turns a pool degradation into the store's record of one.
func degradation(ev pgclient.DegradationEvent) store.Degradation {
	return store.Degradation{
		Component: ev.Component,
		Kind:      ev.Kind,
		Recovered: ev.Recovered,
		At:        ev.At,
		Details: map[string]any{
			"service":             ev.Service,
			"utilization_percent": ev.UtilizationPercent,
			"threshold_percent":   ev.ThresholdPercent,
			"since":               ev.Since,
		},
	}
}

func (r *Runtime) heartbeat(ctx context.Context) error {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, r.cfg.HeartbeatInterval)
			if err := r.beat(hctx); err != nil && ctx.Err() == nil {
				r.Log.Warn("service: heartbeat failed", "err", err)
			}
			cancel()
		}
	}
}

// beat moves the session's last_seen. A session that is no longer active was
// closed by the reaper while this instance could not heartbeat (a database
// outage, a long pause): the instance is alive, so it registers a new session
// rather than running on without one.
func (r *Runtime) beat(ctx context.Context) error {
	old := r.SessionID()
	err := r.Store.Heartbeat(ctx, old)
	if !errors.Is(err, store.ErrSessionNotActive) && !errors.Is(err, store.ErrSessionNotFound) {
		return err
	}
	if err := r.registerSession(ctx); err != nil {
		return fmt.Errorf("session %s was closed; register a new one: %w", old, err)
	}
	r.Log.Warn("service: session was closed after missed heartbeats; registered a new one",
		"old_session_id", old, "session_id", r.SessionID())
	return nil
}

func (r *Runtime) recordPool(ctx context.Context) error {
	return r.Store.RunConnectionMetrics(ctx, r.cfg.MetricsInterval, func() store.ConnectionSnapshot {
		s := r.DB.Snapshot()
		return store.ConnectionSnapshot{
			ServiceName:        r.Name,
			InstanceID:         r.InstanceID,
			PoolSize:           int(r.DB.Config().MaxConns),
			Active:             int(s.ActiveConnections),
			Idle:               int(s.IdleConnections),
			Waiting:            int(s.WaitingConnections),
			TotalQueries:       s.TotalQueries,
			FailedQueries:      s.FailedQueries,
			AvgQueryTimeMS:     s.AvgQueryTimeMS,
			PotentialLeaks:     int(s.PotentialLeaks),
			UtilizationPercent: s.UtilizationPercent,
			RecordedAt:         s.RecordedAt,
		}
	})
}
