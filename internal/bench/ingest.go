package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnibridge/omnibridge/hookreceiver"
)

// Defaults of IngestOptions.
const (
	DefaultIngestConcurrency = 64
	DefaultIngestDuration    = 10 * time.Second
	DefaultIngestBodySize    = 500
	DefaultIngestWarmup      = time.Second
	DefaultIngestNaiveConns  = 32
	DefaultIngestOurConns    = 8
	DefaultIngestSlice       = time.Second
	ingestSliceCount         = 1000
)

// IngestOptions configures Ingest. Zero fields take their defaults.
type IngestOptions struct {
	// Concurrency is the number of senders, each sending its next webhook
	// when the previous one is answered. Defaults to 64.
	Concurrency int
	// Duration is how long each server is measured, after Warmup. Defaults
	// to 10s unless Count is set.
	Duration time.Duration
	// Count, when set, measures each server over this many acknowledged
	// webhooks instead of for Duration (after the warm-up).
	Count int
	// BodySize is the size of each webhook body in bytes (a GitHub issues
	// event padded to it). Defaults to 500; at least 200.
	BodySize int
	// Warmup is sent to each server before the measurement and not counted
	// in its figures (its rows are in the loss check). Defaults to 1s, or to
	// a tenth of Count (at most 2000 webhooks) when Count is set; negative
	// means none.
	Warmup time.Duration
	// Slice is how long each server is measured at a time: the servers take
	// turns, in alternating order, so that load from elsewhere on the
	// machine falls on both alike. With Count, each turn is at most 1000
	// webhooks. Defaults to 1s.
	Slice time.Duration
	// NaiveConns is the naive server's pool size. Defaults to 32, which
	// measured best among 16, 32 and 64 here.
	NaiveConns int32
	// OurConns is the receiver's pool size (its writers use one each).
	// Defaults to 8.
	OurConns int32
	// Batch tunes the receiver's group commit. Defaults to
	// hookreceiver's defaults.
	Batch hookreceiver.BatchConfig
	// Logger receives the servers' logs. Defaults to discarding.
	Logger *slog.Logger
	// Progress, when set, is told what is being measured as the run goes.
	Progress func(step string)
}

func (o IngestOptions) withDefaults() IngestOptions {
	o.Concurrency = cmp.Or(o.Concurrency, DefaultIngestConcurrency)
	if o.Count == 0 {
		o.Duration = cmp.Or(o.Duration, DefaultIngestDuration)
	}
	o.BodySize = cmp.Or(o.BodySize, DefaultIngestBodySize)
	if o.Count == 0 {
		o.Warmup = cmp.Or(o.Warmup, DefaultIngestWarmup)
	}
	o.Slice = cmp.Or(o.Slice, DefaultIngestSlice)
	o.NaiveConns = cmp.Or(o.NaiveConns, DefaultIngestNaiveConns)
	o.OurConns = cmp.Or(o.OurConns, DefaultIngestOurConns)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	return o
}

func (o IngestOptions) validate() error {
	var errs []error
	if o.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("bench ingest: Concurrency %d must be at least 1", o.Concurrency))
	}
	if o.Count < 0 || o.Duration < 0 {
		errs = append(errs, fmt.Errorf("bench ingest: Count %d and Duration %s must not be negative", o.Count, o.Duration))
	}
	if o.BodySize < MinIngestBodySize || o.BodySize > hookreceiver.BodyLimitDefault {
		errs = append(errs, fmt.Errorf("bench ingest: BodySize %d must be between %d and %d", o.BodySize, MinIngestBodySize, hookreceiver.BodyLimitDefault))
	}
	if o.Slice <= 0 {
		errs = append(errs, fmt.Errorf("bench ingest: Slice %s must be positive", o.Slice))
	}
	if o.NaiveConns < 1 || o.OurConns < 1 {
		errs = append(errs, fmt.Errorf("bench ingest: NaiveConns %d and OurConns %d must be at least 1", o.NaiveConns, o.OurConns))
	}
	return errors.Join(errs...)
}

// IngestResult compares the HookReceiver with a naive server, measured in the
// same run on the same database.
type IngestResult struct {
	// Ours is the receiver (group commit), wired as `omnibridge serve` wires
	// it: service runtime, pgclient pool, audit, metrics.
	Ours IngestRun `json:"ours"`
	// Baseline is the naive server: the same verification and mapping, then
	// one INSERT (Store.InsertEvent, deduplicated) per request on a bare
	// pgxpool.
	Baseline IngestRun `json:"baseline"`
	// Rate and BaselineRate are acknowledged events per second; Ratio is
	// Rate ÷ BaselineRate.
	Rate         float64 `json:"rate"`
	BaselineRate float64 `json:"baseline_rate"`
	Ratio        float64 `json:"ratio"`
	Concurrency  int     `json:"concurrency"`
	BodySize     int     `json:"body_size"`
}

// IngestRun is the measurement of one server.
type IngestRun struct {
	Name string `json:"name"`
	// Acknowledged counts the 2xx answers of the measured phase; Seconds is
	// its length and Rate their quotient.
	Acknowledged int64   `json:"acknowledged"`
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"rate"`
	// P50Ms, P99Ms and MaxMs are the latencies of the acknowledged requests
	// as the senders saw them (send to answer read), in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Refused counts non-2xx answers and transport errors (whole run).
	Refused int64 `json:"refused"`
	// Sent counts the 2xx answers of the whole run, warm-up included; Stored
	// is the number of the server's rows in hook_events afterwards; Lost is
	// Sent - Stored (acknowledged but missing) and must be 0; Unacked is
	// Stored - Sent when more rows than answers were found.
	Sent    int64 `json:"sent"`
	Stored  int64 `json:"stored"`
	Lost    int64 `json:"lost"`
	Unacked int64 `json:"unacked"`
	// PeakRSSBytes is the process's peak resident set while this server was
	// measured: VmHWM of /proc/self/status, reset before each of its turns
	// by writing 5 to /proc/self/clear_refs (PeakRSSReset says whether that
	// worked; without it the figure is the peak of the whole run). It covers
	// the whole process: both servers (the other one idle) and the senders.
	// -1 where /proc is unavailable.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	PeakRSSReset bool  `json:"peak_rss_reset"`
	// ProcessCPUPerEventUs is this process's CPU time per acknowledged event
	// during this server's turns, in microseconds: the server, its senders
	// and the idle other server. PostgresCPUPerEventUs is the CPU time of the
	// database's server processes per acknowledged event in the same turns,
	// read from /proc; -1 when the database is not on this machine. Together
	// they show where the difference comes from.
	ProcessCPUPerEventUs  float64 `json:"process_cpu_us_per_event"`
	PostgresCPUPerEventUs float64 `json:"postgres_cpu_us_per_event"`
	// AvgBatch is the receiver's mean group-commit batch size (ours only).
	AvgBatch float64 `json:"avg_batch,omitempty"`
}

// MinIngestBodySize is the smallest BodySize: a body that holds the webhook's
// fields.
const MinIngestBodySize = 200

// Ingest measures, in one run on the migrated database at dbURL, the
// HookReceiver against a naive one-INSERT-per-request server: Concurrency
// senders post GitHub-signed webhooks of BodySize bytes over HTTP on
// 127.0.0.1. Both servers run side by side; after a warm-up of each they take
// turns (see Slice). Afterwards it counts each server's rows to check that
// every acknowledged event was stored.
//
// It empties the event tables (hook_events, hook_event_deliveries) at the
// start of the measurement and at the end, so it refuses to start when
// hook_events holds any row: point it at a scratch database.
func Ingest(ctx context.Context, dbURL string, opts IngestOptions) (res IngestResult, err error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return IngestResult{}, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return IngestResult{}, fmt.Errorf("bench ingest: connect: %w", err)
	}
	defer pool.Close()
	if err := checkScratch(ctx, pool, "ingest"); err != nil {
		return IngestResult{}, err
	}
	defer func() { err = errors.Join(err, emptyEvents(context.WithoutCancel(ctx), pool, "ingest")) }()

	opts.Progress("starting both servers")
	naive, err := startNaive(ctx, dbURL, opts)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, naive.stop()) }()
	ours, err := startReceiver(ctx, dbURL, opts)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, ours.stop()) }()

	targets := []*target{newTarget(naive, opts), newTarget(ours, opts)}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	if err := rotate(ctx, pool, targets, opts); err != nil {
		return res, err
	}
	res = IngestResult{Concurrency: opts.Concurrency, BodySize: opts.BodySize,
		Baseline: targets[0].run(), Ours: targets[1].run()}
	res.Ours.AvgBatch = ours.avgBatch()
	for _, r := range []*IngestRun{&res.Baseline, &res.Ours} {
		src := targets[0].srv.source
		if r == &res.Ours {
			src = targets[1].srv.source
		}
		if err := checkStored(ctx, pool, src, r); err != nil {
			return res, err
		}
	}
	res.Rate, res.BaselineRate = res.Ours.Rate, res.Baseline.Rate
	if res.BaselineRate > 0 {
		res.Ratio = res.Rate / res.BaselineRate
	}
	return res, nil
}

// checkStored fills the loss figures of run from the source's rows.
func checkStored(ctx context.Context, pool *pgxpool.Pool, source string, run *IngestRun) error {
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM omnibridge.hook_events WHERE source = $1`, source).Scan(&run.Stored); err != nil {
		return fmt.Errorf("bench ingest: count stored events: %w", err)
	}
	run.Lost = max(0, run.Sent-run.Stored)
	run.Unacked = max(0, run.Stored-run.Sent)
	return nil
}
