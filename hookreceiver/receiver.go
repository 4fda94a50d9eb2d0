package hookreceiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

// ServiceName is the receiver's service name: its session, its pool's
// application_name and its metrics' service label.
const ServiceName = "hook_receiver"

// ErrNoStore is returned by New without Deps.Store.
var ErrNoStore = errors.New("hook receiver: Deps.Store is required (pass the service runtime's Store)")

// ErrAlreadyRunning is returned by a second call of Run.
var ErrAlreadyRunning = errors.New("hook receiver: Run was already called (a Receiver runs once; build a new one)")

// Deps are what a Receiver runs on.
type Deps struct {
	// Store writes the events. Required.
	Store *store.Store
	// Audit receives a rate-limited security audit event for every
	// authentication failure. Optional: without it failures are only
	// counted and logged. The receiver does not close it.
	Audit *store.AuditWriter
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer gets the receiver's metrics. Optional.
	Registerer prometheus.Registerer
}

// Receiver is the HookReceiver: an http.Handler for POST /hooks/{source} and
// the group-commit writers behind it. A request is answered 2xx only after
// its event is committed; see the package documentation and
// docs/hookreceiver.md.
type Receiver struct {
	cfg        Config
	sources    map[string]*sourceState
	store      *store.Store
	audit      *store.AuditWriter
	log        *slog.Logger
	metrics    *metrics
	queue      *queue
	retryAfter int // seconds
	handler    http.Handler

	// downUntil is when the database's circuit breaker lets requests
	// through again (unix nanoseconds); until then requests are answered 503
	// at once.
	downUntil atomic.Int64
	// committing counts the inserts in flight; a writer waits for its batch
	// to fill only while another one commits.
	committing atomic.Int32

	notify   chan struct{} // a commit stored new events; capacity 1 coalesces
	draining chan struct{} // closed by Drain: writers flush and stop
	drainOne sync.Once
	stopped  chan struct{} // closed when Run has returned
}

// sourceState is a source with what the handler keeps for it.
type sourceState struct {
	*Source
	bodyLimit  int64
	limiter    *rate.Limiter // nil: unlimited
	retryAfter int           // seconds, for 429

	// The source's most frequent metrics, looked up once.
	accepted, duplicates prometheus.Counter
	duration             prometheus.Observer
}

// New validates cfg (after filling its defaults) and builds the receiver.
// It refuses to build when any source is invalid, including a source without
// a verifier (ErrNoVerifier): unsigned events are accepted only from sources
// that say verifier: none with allow_unsigned: true. Call Run to start the
// writers; until then requests are answered 503.
func New(cfg Config, d Deps) (*Receiver, error) {
	if d.Store == nil {
		return nil, ErrNoStore
	}
	cfg = cfg.WithDefaults()
	srcs, err := cfg.build()
	if err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	q := newQueue(cfg.Batch.QueueSize, cfg.Batch.QueueBytes)
	r := &Receiver{
		cfg:        cfg,
		sources:    make(map[string]*sourceState, len(srcs)),
		store:      d.Store,
		audit:      d.Audit,
		log:        log.With("component", "hookreceiver"),
		metrics:    newMetrics(q),
		queue:      q,
		retryAfter: retryAfterSeconds(cfg.RetryAfter),
		notify:     make(chan struct{}, 1),
		draining:   make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	for name, s := range srcs {
		sc := s.Config()
		st := &sourceState{Source: s, bodyLimit: sc.BodyLimit,
			accepted:   r.metrics.requests.WithLabelValues(name, "202"),
			duplicates: r.metrics.requests.WithLabelValues(name, "200"),
			duration:   r.metrics.duration.WithLabelValues(name),
		}
		if rl := sc.RateLimit; !rl.Unlimited() {
			st.limiter = rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst)
			st.retryAfter = max(1, int(math.Ceil(1/rl.PerSecond)))
		}
		r.sources[name] = st
	}
	if len(r.sources) == 0 {
		r.log.Warn("hookreceiver: no sources configured: every webhook will be answered 404")
	}
	if d.Registerer != nil {
		if err := r.metrics.register(d.Registerer); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/{source}", r.serveHook)
	mux.HandleFunc("/hooks/", r.serveUnknown)
	r.handler = mux
	return r, nil
}

// Handler returns the HTTP handler of POST /hooks/{source}. Mount it at the
// root of the server's mux under "/hooks/": other methods are answered 405,
// unknown sources and paths under /hooks/ 404, all with JSON bodies.
func (r *Receiver) Handler() http.Handler { return r.handler }

// Mount adds the receiver to a service runtime: the handler under /hooks/,
// Run as background work, Drain as a shutdown step and Ready as the
// readiness check "hook_receiver_queue". The runtime's shutdown stops the
// HTTP server first (in-flight requests are answered as their batches
// commit), then ends Run, which commits whatever is still queued, then
// calls Drain.
func (r *Receiver) Mount(rt *service.Runtime) {
	rt.Mux.Handle("/hooks/", r.Handler())
	rt.Go(r.Run)
	rt.OnDrain(r.Drain)
	rt.AddReadyCheck("hook_receiver_queue", r.Ready)
}

// Run starts the writers and the notifier and returns when ctx ends or Drain
// is called, after every event accepted into the queue has been committed
// and answered (or answered 503 when the database is unavailable; the last
// batches still get CommitTimeout each). It returns ErrAlreadyRunning when
// called twice, and nil at once when Drain came first.
func (r *Receiver) Run(ctx context.Context) error {
	switch r.queue.start() {
	case queueRunning:
		return ErrAlreadyRunning
	case queueClosed:
		return nil
	}
	defer close(r.stopped)
	r.log.Info("hookreceiver: started", "sources", len(r.sources), "writers", r.cfg.Batch.Writers,
		"batch_max_size", r.cfg.Batch.MaxSize, "batch_max_wait", r.cfg.Batch.MaxWait, "queue_size", r.cfg.Batch.QueueSize)

	r.checkDurability(ctx)

	var writers sync.WaitGroup
	for range r.cfg.Batch.Writers {
		w := newWriter(r)
		writers.Go(func() { w.loop(ctx) })
	}
	writersDone := make(chan struct{})
	var notifier sync.WaitGroup
	notifier.Go(func() { r.notifyLoop(writersDone) })
	writers.Wait()
	close(writersDone)
	notifier.Wait()
	r.log.Info("hookreceiver: stopped")
	return nil
}

// Drain stops accepting events (new requests are answered 503 with
// Retry-After) and waits until the writers have committed and answered every
// queued event and Run has returned, or until ctx ends (then it returns an
// error wrapping ctx's; the writers still answer what they hold). It is the
// SIGTERM path; calling it more than once, or without Run, is harmless.
func (r *Receiver) Drain(ctx context.Context) error {
	ran := r.queue.close()
	r.drainOne.Do(func() { close(r.draining) })
	if !ran {
		return nil
	}
	select {
	case <-r.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hook receiver: drain: %d events still queued: %w", len(r.queue.ch), ctx.Err())
	}
}

// markDown records that the database refuses requests for d (its circuit
// breaker is open).
func (r *Receiver) markDown(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := r.downUntil.Load()
		if cur >= until || r.downUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// downFor returns how much longer the database refuses requests, or 0.
func (r *Receiver) downFor(now time.Time) time.Duration {
	return max(0, time.Duration(r.downUntil.Load()-now.UnixNano()))
}

// saturatedShare is the queue fill (by count or bytes) from which Ready
// reports not ready, so that a load balancer sends webhooks elsewhere before
// the queue refuses them.
const saturatedShare = 0.9

// Ready returns nil when the receiver accepts webhooks: Run is running, Drain
// has not been called and the queue is less than 90% full (by events and by
// bytes). Otherwise it says why.
func (r *Receiver) Ready(context.Context) error {
	switch r.queue.current() {
	case queueIdle:
		return errors.New("hook receiver not started")
	case queueClosed:
		return errors.New("hook receiver draining")
	}
	if d := r.downFor(time.Now()); d > 0 {
		return fmt.Errorf("database unavailable (circuit breaker open) for another %s", d.Round(time.Millisecond))
	}
	q := r.queue
	if n, c := len(q.ch), cap(q.ch); float64(n) >= saturatedShare*float64(c) {
		return fmt.Errorf("hook receiver queue saturated: %d of %d events", n, c)
	}
	if b := q.bytes.Load(); float64(b) >= saturatedShare*float64(q.maxBytes) {
		return fmt.Errorf("hook receiver queue saturated: %d of %d bytes", b, q.maxBytes)
	}
	return nil
}

// Sources returns the names of the configured sources, sorted.
func (r *Receiver) Sources() []string {
	return slices.Sorted(maps.Keys(r.sources))
}

// Source returns the configured source of that name, or nil: for instance to
// sign a development request with Source.SignRequest.
func (r *Receiver) Source(name string) *Source {
	if s := r.sources[name]; s != nil {
		return s.Source
	}
	return nil
}

// checkDurability warns when the database does not flush commits before
// acknowledging them (synchronous_commit off): a 2xx then no longer survives
// a database crash. It does not stop the receiver; a failed check is logged.
func (r *Receiver) checkDurability(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	setting, err := r.store.SynchronousCommit(ctx)
	if err != nil {
		r.log.Warn("hookreceiver: could not check synchronous_commit", "err", err)
		return
	}
	if setting == "off" {
		r.log.Error("hookreceiver: synchronous_commit is off: an acknowledged webhook can be lost if PostgreSQL crashes; set synchronous_commit = on for the receiver's role")
	}
}
