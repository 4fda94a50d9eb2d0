package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// publishBackstop is how long past kafka.delivery_timeout a Publish call may
// take at most (kafka.Producer's own grace plus its backstop), with slack.
const publishBackstop = 3 * time.Second

// Publisher sends records to Kafka. *kafka.Producer implements it.
type Publisher interface {
	// Publish sends msgs and returns one error per message, nil when the
	// broker acknowledged it, within the delivery timeout.
	Publish(ctx context.Context, msgs []kafka.Message) []error
	// Ping checks that the cluster answers and has the topic.
	Ping(ctx context.Context) error
	// Config returns the producer's configuration, defaults filled in.
	Config() kafka.Config
}

// Deps are what a Coordinator works with.
type Deps struct {
	// Store is the data layer on the service's pool. Required.
	Store *store.Store
	// Publisher publishes to the topic. Required; the wiring passes a
	// *kafka.Producer.
	Publisher Publisher
	// Listen opens a dedicated connection (not from the pool) on which the
	// coordinator LISTENs for new events; the wiring passes pgx.Connect on
	// the service's DSN. Config.ListenURL, when set, replaces it. Nil (and
	// no ListenURL) means polling only.
	Listen func(ctx context.Context) (*pgx.Conn, error)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registerer receives the coordinator's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
}

// Errors of New, Run and Ready.
var (
	// ErrMissingStore is returned by New without Deps.Store.
	ErrMissingStore = errors.New("coordinator: Deps.Store is required (pass store.New on the service's pool)")
	// ErrMissingPublisher is returned by New without Deps.Publisher.
	ErrMissingPublisher = errors.New("coordinator: Deps.Publisher is required (pass a *kafka.Producer)")
	// ErrAlreadyRunning is returned by a second call of Run.
	ErrAlreadyRunning = errors.New("coordinator: Run was already called (create another Coordinator to run another worker)")
	// ErrBrokerBackoff is returned by Ready while the coordinator backs off
	// from a Kafka outage.
	ErrBrokerBackoff = errors.New("coordinator: backing off from a Kafka outage (check the brokers; publishing resumes by itself)")
)

// Coordinator delivers pending hook events to Kafka. Create it with New and
// start it with Run.
type Coordinator struct {
	cfg    Config
	st     *store.Store
	pub    Publisher
	listen func(ctx context.Context) (*pgx.Conn, error)
	log    *slog.Logger
	m      *metrics
	retry  store.RetryPolicy
	topic  string

	wake    chan struct{} // poked by LISTEN and the reaper; buffered 1
	outage  outage
	running atomic.Bool

	// listenIdleCheck is how long the LISTEN connection may stay silent
	// before it is pinged (defaultListenIdleCheck; shorter in tests).
	listenIdleCheck time.Duration
}

// New checks cfg (after WithDefaults) and d, and returns a Coordinator whose
// metrics are registered on d.Registerer. It fails with every invalid field
// of cfg (see Config.Validate), with ErrMissingStore or ErrMissingPublisher,
// when LeaseTimeout does not exceed the longest a Publish can take (the
// producer's delivery timeout plus 3s), or when the Registerer already holds
// a coordinator's metrics. It does not touch the database or Kafka.
func New(cfg Config, d Deps) (*Coordinator, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if d.Store == nil {
		errs = append(errs, ErrMissingStore)
	}
	if d.Publisher == nil {
		errs = append(errs, ErrMissingPublisher)
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var topic string
	if d.Publisher != nil {
		kc := d.Publisher.Config()
		topic = kc.Topic
		longest := kc.DeliveryTimeout + publishBackstop
		if cfg.LeaseTimeout > 0 && cfg.LeaseTimeout <= longest {
			errs = append(errs, fieldError("lease_timeout", cfg.LeaseTimeout,
				"must exceed the longest Publish, kafka.delivery_timeout (%s) plus %s, or every slow publication is delivered twice",
				kc.DeliveryTimeout, publishBackstop))
		} else if rec := recommendedLease(kc.DeliveryTimeout, cfg.DatabaseTimeout); cfg.LeaseTimeout < rec {
			log.Warn("coordinator: lease_timeout is shorter than a claim can be held when Kafka is slow; events may be published twice",
				"lease_timeout", cfg.LeaseTimeout, "recommended", rec)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	listen := d.Listen
	if u := cfg.ListenURL; u != "" {
		listen = func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, u) }
	}
	c := &Coordinator{
		cfg:    cfg,
		st:     d.Store,
		pub:    d.Publisher,
		listen: listen,
		log:    log,
		m:      newMetrics(),
		retry:  cfg.Retry.Policy(),
		topic:  topic,
		wake:   make(chan struct{}, 1),

		listenIdleCheck: defaultListenIdleCheck,
	}
	c.outage.init(cfg.BrokerBackoff)
	if err := c.m.register(d.Registerer); err != nil {
		return nil, err
	}
	return c, nil
}

// recommendedLease is the longest a claim is held when nothing fails but
// Kafka is slow: the batch claimed ahead waits for the publication before
// it, is published itself, and then finished.
func recommendedLease(delivery, dbTimeout time.Duration) time.Duration {
	return 2*(delivery+publishBackstop) + 2*dbTimeout
}

// Config returns the coordinator's configuration.
func (c *Coordinator) Config() Config { return c.cfg }

// Run delivers events until ctx ends: the claim → publish → finish pipeline,
// the LISTEN wake-up (when Deps.Listen is set), the polling fallback, the
// lease reaper and the lag gauge. It keeps going through database and Kafka
// outages, logging them, and returns nil once ctx has ended and the pipeline
// has drained: the Publish in flight finished (or canceled after DrainTimeout,
// its events released), its outcome recorded, every other claimed event
// released. That takes at most DrainTimeout plus DatabaseTimeout, plus a
// little. A second call returns ErrAlreadyRunning.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	c.log.Info("coordinator: started", "topic", c.topic, "batch_size", c.cfg.BatchSize,
		"lease_timeout", c.cfg.LeaseTimeout, "listen", c.listen != nil)

	var wg sync.WaitGroup
	wg.Go(func() { c.listenLoop(ctx) })
	wg.Go(func() { c.reapLoop(ctx) })
	wg.Go(func() { c.lagLoop(ctx) })
	c.runPipeline(ctx)
	wg.Wait()
	c.log.Info("coordinator: stopped")
	return nil
}

// Ready reports whether the coordinator can publish: nil when the Kafka
// cluster answers and has the topic (Publisher.Ping) and the coordinator is
// not backing off from an outage, else an error saying which. Database
// readiness is the service runtime's check.
func (c *Coordinator) Ready(ctx context.Context) error {
	if c.outage.active() {
		return ErrBrokerBackoff
	}
	if err := c.pub.Ping(ctx); err != nil {
		return fmt.Errorf("coordinator: kafka: %w", err)
	}
	return nil
}

// Lag returns the age of the oldest pending event (how far delivery is
// behind), or 0 when nothing is pending. It queries the database, bounded by
// ctx and DatabaseTimeout.
func (c *Coordinator) Lag(ctx context.Context) (time.Duration, error) {
	p, err := c.backlog(ctx)
	if err != nil {
		return 0, err
	}
	return p.OldestPendingAge, nil
}

// poke wakes the claimer without blocking; one pending wake-up is enough.
func (c *Coordinator) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
