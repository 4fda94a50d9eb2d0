// Package bench holds the end-to-end benchmarks behind `omnibridge bench`:
// each compares our code with a bare baseline measured in the same run.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnibridge/omnibridge/store"
)

// Defaults of BulkConfig.
var (
	DefaultBulkSizes = []int{10, 100, 1000, 10000, 100000}
)

// Defaults of BulkConfig.
const (
	DefaultBulkMinRows     = 100000
	DefaultBulkMinReps     = 5
	DefaultBulkMaxReps     = 500
	DefaultInsertOneCount  = 2000
	DefaultClaimEvents     = 20000
	DefaultClaimBatch      = 100
	DefaultClaimWorkers    = 4
	bulkTruncateAfterRows  = 300000
	bulkSettleRows         = 10000
	bulkInsertOneWarmup    = 50
	bulkClaimSeedBatchSize = 10000
)

// BulkConfig configures Bulk. Zero fields take their defaults.
type BulkConfig struct {
	// Sizes are the batch sizes to measure, in rows. Defaults to
	// DefaultBulkSizes (10, 100, 1k, 10k, 100k).
	Sizes []int
	// MinRows is how many rows each method inserts at each size at least:
	// small sizes are repeated (between MinReps and DefaultBulkMaxReps times)
	// so that their rates are stable. Defaults to DefaultBulkMinRows.
	MinRows int
	// MinReps is the least number of timed repetitions per size and method.
	// Defaults to DefaultBulkMinReps.
	MinReps int
	// Ours is the database the store runs on. Defaults to the pool itself, so
	// that the comparison is of the store's work alone; pass a
	// *pgclient.Client to include the client library.
	Ours store.DB
	// Bulk tunes the adaptive insert. Defaults to store.BulkOptions{}.
	Bulk store.BulkOptions
	// InsertOne is the number of single-event inserts timed for the latency
	// figures. Defaults to DefaultInsertOneCount; negative skips them.
	InsertOne int
	// ClaimEvents is the number of events drained by claim + complete.
	// Defaults to DefaultClaimEvents; negative skips the measurement.
	ClaimEvents int
	// ClaimBatch is the claim size. Defaults to DefaultClaimBatch.
	ClaimBatch int
	// ClaimWorkers is the number of concurrent claimers. Defaults to
	// DefaultClaimWorkers.
	ClaimWorkers int
	// Progress, when set, is told what is being measured as the run goes.
	Progress func(step string)
}

func (c BulkConfig) withDefaults(pool *pgxpool.Pool) BulkConfig {
	if len(c.Sizes) == 0 {
		c.Sizes = DefaultBulkSizes
	}
	c.MinRows = cmp.Or(c.MinRows, DefaultBulkMinRows)
	c.MinReps = cmp.Or(c.MinReps, DefaultBulkMinReps)
	if c.Ours == nil {
		c.Ours = pool
	}
	c.InsertOne = cmp.Or(c.InsertOne, DefaultInsertOneCount)
	c.ClaimEvents = cmp.Or(c.ClaimEvents, DefaultClaimEvents)
	c.ClaimBatch = cmp.Or(c.ClaimBatch, DefaultClaimBatch)
	c.ClaimWorkers = cmp.Or(c.ClaimWorkers, DefaultClaimWorkers)
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	return c
}

func (c BulkConfig) validate() error {
	var errs []error
	for _, n := range c.Sizes {
		if n < 1 {
			errs = append(errs, fmt.Errorf("bench bulk: size %d must be at least 1", n))
		}
	}
	if c.MinReps < 1 {
		errs = append(errs, fmt.Errorf("bench bulk: MinReps %d must be at least 1", c.MinReps))
	}
	if c.ClaimBatch < 1 || c.ClaimBatch > store.MaxClaim {
		errs = append(errs, fmt.Errorf("bench bulk: ClaimBatch %d must be between 1 and %d", c.ClaimBatch, store.MaxClaim))
	}
	if c.ClaimWorkers < 1 {
		errs = append(errs, fmt.Errorf("bench bulk: ClaimWorkers %d must be at least 1", c.ClaimWorkers))
	}
	return errors.Join(errs...)
}

// BulkReport is the outcome of Bulk.
type BulkReport struct {
	// Sizes has one entry per batch size.
	Sizes []BulkResult `json:"sizes"`
	// InsertOne is the latency of single-event inserts (zero when skipped).
	InsertOne InsertOneResult `json:"insert_one"`
	// ClaimComplete is the claim + complete throughput (zero when skipped).
	ClaimComplete ClaimCompleteResult `json:"claim_complete"`
}

// BulkResult compares the adaptive bulk insert with bare pgx at one size.
type BulkResult struct {
	Rows int `json:"rows"`
	// Method is what the adaptive insert chose at this size.
	Method store.BulkMethod `json:"method"`
	// Rate is our rows per second (Store.BulkInsert into hook_events).
	Rate float64 `json:"rate"`
	// BaselineRate is the better of the two bare rates, Baseline its name.
	BaselineRate float64 `json:"baseline_rate"`
	Baseline     string  `json:"baseline"`
	// Ratio is ours against the better bare method, as the median over the
	// repetitions of each repetition's ratio: the methods of one repetition
	// run back to back, so a burst of load from elsewhere that slows a whole
	// repetition cancels out. It is close to Rate ÷ BaselineRate, and steadier.
	Ratio float64 `json:"ratio"`
	// BatchRate is bare pgx.Batch (one INSERT per row, pipelined); CopyRate is
	// bare pgx CopyFrom.
	BatchRate float64 `json:"pgx_batch_rate"`
	CopyRate  float64 `json:"pgx_copy_rate"`
	// EventsRate is Store.BulkInsertEvents, which also deduplicates deliveries
	// (more work than the others; not part of Ratio).
	EventsRate float64 `json:"events_rate"`
	// Reps is the number of timed repetitions per method; rates come from the
	// median repetition.
	Reps int `json:"reps"`
}

// Bulk measures, in one run on the migrated database behind pool, the
// adaptive bulk insert against bare pgx batch and bare pgx COPY at each size,
// then single-insert latency and claim + complete throughput. All methods
// write the same rows (fresh ids) into omnibridge.hook_events with its indexes
// and partitions; they take turns, in a new random order at every
// repetition, so that load from elsewhere falls on all of them alike. Rates
// come from the median repetition.
//
// It empties the event tables (hook_events, hook_event_deliveries,
// event_metrics) as it goes and at the end, so it refuses to start when
// hook_events holds any row: point it at a scratch database.
func Bulk(ctx context.Context, pool *pgxpool.Pool, cfg BulkConfig) (BulkReport, error) {
	cfg = cfg.withDefaults(pool)
	if err := cfg.validate(); err != nil {
		return BulkReport{}, err
	}
	if err := checkScratch(ctx, pool, "bulk"); err != nil {
		return BulkReport{}, err
	}
	b := &bulkBench{cfg: cfg, pool: pool, store: store.New(cfg.Ours), checkpoint: true}
	defer b.truncate(context.WithoutCancel(ctx))

	var rep BulkReport
	for _, n := range cfg.Sizes {
		cfg.Progress(fmt.Sprintf("bulk insert of %d rows", n))
		r, err := b.size(ctx, n)
		if err != nil {
			return rep, err
		}
		rep.Sizes = append(rep.Sizes, r)
	}
	if cfg.InsertOne > 0 {
		cfg.Progress("single inserts")
		r, err := b.insertOne(ctx)
		if err != nil {
			return rep, err
		}
		rep.InsertOne = r
	}
	if cfg.ClaimEvents > 0 {
		cfg.Progress("claim + complete")
		r, err := b.claimComplete(ctx)
		if err != nil {
			return rep, err
		}
		rep.ClaimComplete = r
	}
	return rep, nil
}

type bulkBench struct {
	cfg        BulkConfig
	pool       *pgxpool.Pool
	store      *store.Store
	inserted   int
	checkpoint bool // whether settle may run CHECKPOINT
}

var (
	eventsTable   = pgx.Identifier{"omnibridge", "hook_events"}
	eventsColumns = []string{"id", "source", "action", "resource", "resource_id", "payload", "metadata", "delivery_id"}
)

const bareInsertSQL = `INSERT INTO omnibridge.hook_events
    (id, source, action, resource, resource_id, payload, metadata, delivery_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

func (b *bulkBench) truncate(ctx context.Context) error {
	b.inserted = 0
	return emptyEvents(ctx, b.pool, "bulk")
}

// settle prepares the table for a timed insert of n rows. Small inserts share
// a table that grows up to bulkTruncateAfterRows; from bulkSettleRows rows,
// every insert starts from an empty table after a checkpoint and a garbage
// collection, so that no method pays for the table size, the WAL or the
// garbage of another (the checkpoint is skipped when the role may not run
// it).
func (b *bulkBench) settle(ctx context.Context, n int) error {
	if n < bulkSettleRows {
		if b.inserted+n > bulkTruncateAfterRows {
			return b.truncate(ctx)
		}
		return nil
	}
	if err := b.truncate(ctx); err != nil {
		return err
	}
	if b.checkpoint {
		if _, err := b.pool.Exec(ctx, `CHECKPOINT`); err != nil {
			b.checkpoint = false
		}
	}
	// Nor for the garbage of another: the rows of a large insert are tens of
	// megabytes.
	runtime.GC()
	return nil
}

// bulkMethod is one way of inserting a batch of events, given both as
// events and as hook_events rows (built before the clock starts).
type bulkMethod struct {
	name string
	run  func(ctx context.Context, events []store.NewEvent, rows [][]any) error
}

func (b *bulkBench) methods() []bulkMethod {
	return []bulkMethod{
		{"adaptive", func(ctx context.Context, _ []store.NewEvent, rows [][]any) error {
			_, err := b.store.BulkInsertWith(ctx, b.cfg.Bulk, eventsTable, eventsColumns, rows)
			return err
		}},
		{"pgx_batch", func(ctx context.Context, _ []store.NewEvent, rows [][]any) error {
			batch := &pgx.Batch{}
			for _, r := range rows {
				batch.Queue(bareInsertSQL, r...)
			}
			return b.pool.SendBatch(ctx, batch).Close()
		}},
		{"pgx_copy", func(ctx context.Context, _ []store.NewEvent, rows [][]any) error {
			_, err := b.pool.CopyFrom(ctx, eventsTable, eventsColumns, pgx.CopyFromRows(rows))
			return err
		}},
		{"events", func(ctx context.Context, events []store.NewEvent, _ [][]any) error {
			_, err := b.store.BulkInsertEventsWith(ctx, b.cfg.Bulk, events)
			return err
		}},
	}
}

// size measures every method at n rows.
func (b *bulkBench) size(ctx context.Context, n int) (BulkResult, error) {
	if err := b.truncate(ctx); err != nil {
		return BulkResult{}, err
	}
	reps := min(max(b.cfg.MinReps, (b.cfg.MinRows+n-1)/n), max(DefaultBulkMaxReps, b.cfg.MinReps))
	methods := b.methods()
	times := make([][]time.Duration, len(methods))
	// One untimed round first: statement preparation, caches.
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	order := make([]int, len(methods))
	for i := range order {
		order[i] = i
	}
	for rep := -1; rep < reps; rep++ {
		template := newEvents(n, rep)
		// A new order every repetition: a fixed rotation would always run each
		// method right after the same other one, and what that one leaves
		// behind (dirty buffers, WAL) would weigh on it alone.
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, m := range order {
			if err := b.settle(ctx, n); err != nil {
				return BulkResult{}, err
			}
			events := freshCopy(template)
			rows := eventRows(events)
			start := time.Now()
			if err := methods[m].run(ctx, events, rows); err != nil {
				return BulkResult{}, fmt.Errorf("bench bulk: %s of %d rows: %w", methods[m].name, n, err)
			}
			d := time.Since(start)
			b.inserted += n
			if rep >= 0 {
				times[m] = append(times[m], d)
			}
		}
	}
	rate := func(m int) float64 { return float64(n) / median(times[m]).Seconds() }
	r := BulkResult{Rows: n, Method: b.cfg.Bulk.Method(n), Rate: rate(0), BatchRate: rate(1), CopyRate: rate(2),
		EventsRate: rate(3), Reps: reps}
	base := 1
	r.Baseline, r.BaselineRate = "pgx_batch", r.BatchRate
	if r.CopyRate > r.BatchRate {
		r.Baseline, r.BaselineRate, base = "pgx_copy", r.CopyRate, 2
	}
	ratios := make([]float64, reps)
	for i := range ratios {
		ratios[i] = times[base][i].Seconds() / times[0][i].Seconds()
	}
	slices.Sort(ratios)
	r.Ratio = ratios[len(ratios)/2]
	return r, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return time.Duration(math.MaxInt64)
	}
	return s[len(s)/2]
}

// newEvents returns n realistic events: GitHub-like push payloads of about
// 500 bytes, each with a delivery id.
func newEvents(n, seed int) []store.NewEvent {
	events := make([]store.NewEvent, n)
	meta := json.RawMessage(`{"remote_addr":"192.0.2.10","user_agent":"GitHub-Hookshot/1a2b3c"}`)
	for i := range events {
		k := seed*n + i
		events[i] = store.NewEvent{
			Source: "github", Action: "push", Resource: "repository",
			ResourceID: fmt.Sprintf("omnibridge/omnibridge#%d", k),
			Payload: json.RawMessage(fmt.Sprintf(`{"ref":"refs/heads/main","before":"9049f1265b7d61be4a8904a9a27120d2064dab3b",`+
				`"after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"id":%d,"name":"omnibridge",`+
				`"full_name":"omnibridge/omnibridge","private":false},"pusher":{"name":"octocat","email":"octo@example.com"},`+
				`"head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Update README (#%d)",`+
				`"timestamp":"2024-05-01T12:00:00Z","added":[],"removed":[],"modified":["README.md"]}}`, 1296269+k, k)),
			Metadata: meta,
		}
	}
	return events
}

// freshCopy returns events with new ids and delivery ids, so that every
// method inserts the same content without conflicts.
func freshCopy(events []store.NewEvent) []store.NewEvent {
	out := slices.Clone(events)
	for i := range out {
		out[i].ID = uuid.Nil
		out[i].DeliveryID = uuid.NewString()
	}
	return out
}

// eventRows turns events into hook_events rows of eventsColumns, with new
// UUIDv7 ids.
func eventRows(events []store.NewEvent) [][]any {
	rows := make([][]any, len(events))
	for i, e := range events {
		rows[i] = []any{uuid.Must(uuid.NewV7()), e.Source, e.Action, e.Resource, e.ResourceID, e.Payload, e.Metadata, e.DeliveryID}
	}
	return rows
}
