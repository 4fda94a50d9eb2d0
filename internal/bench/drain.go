package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// Defaults of Drain.
const (
	DefaultDrainEvents          = 100_000
	DefaultDrainLatencyDuration = 10 * time.Second
	DefaultDrainLatencyWarmup   = time.Second
	drainSeedChunk              = 10_000
	drainPollEvery              = 10 * time.Millisecond
)

// DrainConfig configures Drain. Zero fields take their defaults.
type DrainConfig struct {
	// Coordinator is the coordinator's configuration. Defaults to the
	// production defaults (coordinator.Config{}.WithDefaults()).
	Coordinator coordinator.Config
	// Kafka tunes the producer; Brokers and Topic are those of the
	// in-process broker. Defaults to the production defaults.
	Kafka kafka.Config
	// Partitions is the topic's partition count. Defaults to
	// kafka.DefaultBrokerPartitions.
	Partitions int32
	// IngestRate is the ingest rate of `bench ingest` on the same machine,
	// in events per second, for DrainResult.Ratio. Zero leaves Ratio 0.
	IngestRate float64
	// NoStoreBaseline skips the store-only drain (DrainResult.StoreRate).
	NoStoreBaseline bool
	// LatencyRate is the steady ingest rate, in events per second, at which
	// the end-to-end latency is measured (the issue asks for half the
	// maximum ingest load). Zero skips the latency measurement.
	LatencyRate float64
	// LatencyDuration is how long events are ingested at LatencyRate.
	// Defaults to 10s.
	LatencyDuration time.Duration
	// LatencyWarmup is the start of that period whose events are not
	// counted. Defaults to 1s.
	LatencyWarmup time.Duration
	// Logger receives the coordinator's log. Defaults to discarding.
	Logger *slog.Logger
	// Progress, when set, is told what is being measured as the run goes.
	Progress func(step string)
}

func (c DrainConfig) withDefaults() DrainConfig {
	c.Coordinator = c.Coordinator.WithDefaults()
	c.Partitions = cmp.Or(c.Partitions, kafka.DefaultBrokerPartitions)
	c.LatencyDuration = cmp.Or(c.LatencyDuration, DefaultDrainLatencyDuration)
	c.LatencyWarmup = cmp.Or(c.LatencyWarmup, DefaultDrainLatencyWarmup)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	return c
}

// DrainResult is the outcome of Drain.
type DrainResult struct {
	// Events is the backlog drained, Seconds how long it took from starting
	// the coordinator until every event was marked processed, and Rate the
	// events per second.
	Events  int     `json:"events"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	// IngestRate is DrainConfig.IngestRate, the baseline; Ratio is Rate ÷
	// IngestRate (0 without one). The target is at least 1.2.
	IngestRate float64 `json:"ingest_rate"`
	Ratio      float64 `json:"ratio"`
	// StoreRate is the events per second of a bare store.Claim +
	// store.Complete loop (no Kafka, one worker, the same batch size) on an
	// identical backlog in the same run: the database's share of the work,
	// which bounds Rate. StoreRatio is Rate ÷ StoreRate. Both 0 when skipped.
	StoreRate  float64 `json:"store_rate"`
	StoreRatio float64 `json:"store_ratio"`
	// BatchSize is the coordinator's batch size.
	BatchSize int `json:"batch_size"`
	// Latency is the end-to-end latency at a steady ingest rate; nil when
	// not measured.
	Latency *DrainLatency `json:"latency,omitempty"`
}

// DrainLatency is the latency from an event's receipt (its created_at, the
// start of the transaction that stored it) to Kafka acknowledging its record
// (the return of the Publish call that carried it), at a steady ingest rate.
type DrainLatency struct {
	// TargetRate is the ingest rate asked for, Rate the one achieved.
	TargetRate float64 `json:"target_rate"`
	Rate       float64 `json:"rate"`
	// Events is how many events were measured (after the warm-up).
	Events int     `json:"events"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Drain measures the WorkflowCoordinator on the migrated database at dbURL,
// through pgclient and the production Kafka producer, against an in-process
// Kafka broker: first how fast a bare store.Claim + store.Complete loop
// drains a backlog of n pending events (about 500 bytes each, stored
// beforehand with the bulk COPY path), the database's share of the work;
// then how fast the coordinator drains the same backlog; then,
// if cfg.LatencyRate is set, the end-to-end latency while events are
// ingested at that steady rate (each batch NOTIFYing, as the HookReceiver
// does).
//
// It empties the event tables at the end, and refuses to start when
// hook_events holds any row: point it at a scratch database.
func Drain(ctx context.Context, dbURL string, n int, cfg DrainConfig) (DrainResult, error) {
	cfg = cfg.withDefaults()
	n = cmp.Or(n, DefaultDrainEvents)
	if err := cfg.validate(n); err != nil {
		return DrainResult{}, err
	}
	db, err := pgclient.Open(ctx, pgclient.Config{URL: dbURL, ServiceName: "bench_drain", Logger: cfg.Logger})
	if err != nil {
		return DrainResult{}, fmt.Errorf("bench drain: %w", err)
	}
	defer db.Close()
	if err := checkScratch(ctx, db, "drain"); err != nil {
		return DrainResult{}, err
	}

	broker, err := kafka.StartBroker(kafka.WithPartitions(cfg.Partitions))
	if err != nil {
		return DrainResult{}, fmt.Errorf("bench drain: %w", err)
	}
	defer broker.Close()
	kc := cfg.Kafka
	kc.Brokers, kc.Topic = broker.Addrs(), broker.Topics()[0]
	producer, err := kafka.NewProducer(ctx, kc, cfg.Logger, nil)
	if err != nil {
		return DrainResult{}, fmt.Errorf("bench drain: %w", err)
	}
	defer producer.Close()

	r := &drainRun{cfg: cfg, db: db, st: store.New(db), pub: &ackRecorder{Publisher: producer}}
	defer func() { _ = r.truncate(context.WithoutCancel(ctx)) }()
	var storeRate float64
	if !cfg.NoStoreBaseline {
		cfg.Progress(fmt.Sprintf("store-only claim + complete of %d events", n))
		if storeRate, err = r.storeBaseline(ctx, n); err != nil {
			return DrainResult{}, err
		}
	}
	cfg.Progress(fmt.Sprintf("storing %d pending events", n))
	if err := r.seed(ctx, n); err != nil {
		return DrainResult{}, err
	}
	c, err := coordinator.New(cfg.Coordinator, coordinator.Deps{
		Store:     r.st,
		Publisher: r.pub,
		Logger:    cfg.Logger,
		Listen:    func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, dbURL) },
	})
	if err != nil {
		return DrainResult{}, fmt.Errorf("bench drain: %w", err)
	}

	cfg.Progress(fmt.Sprintf("draining %d events to Kafka", n))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	if err := r.waitDrained(ctx, int64(n)); err != nil {
		return DrainResult{}, err
	}
	took := time.Since(began)
	res := DrainResult{
		Events: n, Seconds: took.Seconds(), Rate: float64(n) / took.Seconds(),
		IngestRate: cfg.IngestRate, BatchSize: cfg.Coordinator.BatchSize,
	}
	if cfg.IngestRate > 0 {
		res.Ratio = res.Rate / cfg.IngestRate
	}
	if storeRate > 0 {
		res.StoreRate, res.StoreRatio = storeRate, res.Rate/storeRate
	}
	if cfg.LatencyRate > 0 {
		cfg.Progress(fmt.Sprintf("end-to-end latency at %.0f events/s for %s", cfg.LatencyRate, cfg.LatencyDuration))
		lat, err := r.latency(ctx, int64(n))
		if err != nil {
			return res, err
		}
		res.Latency = &lat
	}
	return res, nil
}

func (c DrainConfig) validate(n int) error {
	var errs []error
	if n < 1 {
		errs = append(errs, fmt.Errorf("bench drain: %d events: must be at least 1", n))
	}
	if c.LatencyRate < 0 {
		errs = append(errs, fmt.Errorf("bench drain: latency rate %v: must not be negative", c.LatencyRate))
	}
	if c.LatencyWarmup >= c.LatencyDuration {
		errs = append(errs, fmt.Errorf("bench drain: latency warm-up %s must be shorter than the latency duration %s",
			c.LatencyWarmup, c.LatencyDuration))
	}
	if err := c.Coordinator.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("bench drain: coordinator config: %w", err))
	}
	return errors.Join(errs...)
}

// drainRun is one run of Drain.
type drainRun struct {
	cfg DrainConfig
	db  *pgclient.Client
	st  *store.Store
	pub *ackRecorder
}

// seed stores n pending events through the bulk (COPY) path.
func (r *drainRun) seed(ctx context.Context, n int) error {
	for done := 0; done < n; done += drainSeedChunk {
		events := freshCopy(newEvents(min(drainSeedChunk, n-done), done/drainSeedChunk))
		if _, err := r.st.BulkInsertEvents(ctx, events); err != nil {
			return fmt.Errorf("bench drain: store pending events: %w", err)
		}
	}
	if _, err := r.db.Exec(ctx, `ANALYZE omnibridge.hook_events`); err != nil {
		return fmt.Errorf("bench drain: analyze: %w", err)
	}
	return nil
}

// storeBaseline drains n seeded events with a bare Claim + Complete loop and
// returns its rate, leaving the event tables empty.
func (r *drainRun) storeBaseline(ctx context.Context, n int) (float64, error) {
	if err := r.seed(ctx, n); err != nil {
		return 0, err
	}
	start := time.Now()
	done := 0
	for {
		events, claimID, err := r.st.Claim(ctx, r.cfg.Coordinator.BatchSize)
		if err != nil {
			return 0, fmt.Errorf("bench drain: store baseline: %w", err)
		}
		if len(events) == 0 {
			break
		}
		completions := make([]store.Completion, len(events))
		for i, e := range events {
			completions[i] = store.Completion{ID: e.ID, CreatedAt: e.CreatedAt, ProcessingTimeMS: 1}
		}
		k, err := r.st.Complete(ctx, claimID, completions)
		if err != nil {
			return 0, fmt.Errorf("bench drain: store baseline: %w", err)
		}
		done += k
	}
	took := time.Since(start)
	if done != n {
		return 0, fmt.Errorf("bench drain: store baseline completed %d events of %d", done, n)
	}
	if err := r.truncate(ctx); err != nil {
		return 0, err
	}
	return float64(n) / took.Seconds(), nil
}

func (r *drainRun) truncate(ctx context.Context) error {
	return emptyEvents(ctx, r.db, "drain")
}

// waitDrained waits until Kafka acknowledged acked records in all, then
// until no event is pending or processing any more.
func (r *drainRun) waitDrained(ctx context.Context, acked int64) error {
	t := time.NewTicker(drainPollEvery)
	defer t.Stop()
	for r.pub.acked.Load() < acked {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench drain: %d of %d records acknowledged: %w", r.pub.acked.Load(), acked, ctx.Err())
		case <-t.C:
		}
	}
	for {
		var left bool
		err := r.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM omnibridge.hook_events WHERE status IN ('pending', 'processing'))`).Scan(&left)
		if err != nil {
			return fmt.Errorf("bench drain: %w", err)
		}
		if !left {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench drain: waiting for the last completions: %w", ctx.Err())
		case <-t.C:
		}
	}
}
