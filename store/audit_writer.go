package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DropReason says why an AuditWriter did not write an event.
type DropReason string

// The drop reasons, as passed to AuditWriterConfig.OnDrop.
const (
	// DropQueueFull: the queue was full (the database is slow or down).
	DropQueueFull DropReason = "queue_full"
	// DropWriteFailed: every attempt to write the event's batch failed.
	DropWriteFailed DropReason = "write_failed"
	// DropClosed: Write came after Close, or Close ran out of time.
	DropClosed DropReason = "closed"
	// DropInvalid: the event cannot be stored (see AuditEvent.Type).
	DropInvalid DropReason = "invalid"
	// DropRateLimited: WriteLimited suppressed it; the key's next row counts it.
	DropRateLimited DropReason = "rate_limited"
)

// Defaults of AuditWriterConfig.
const (
	DefaultAuditCapacity      = 4096
	DefaultAuditBatchSize     = 256
	DefaultAuditWriteTimeout  = 5 * time.Second
	DefaultAuditMaxAttempts   = 3
	DefaultAuditRetryDelay    = 200 * time.Millisecond
	DefaultAuditMaxRetryDelay = 5 * time.Second
	DefaultAuditLimitEvery    = 10 * time.Second
	DefaultAuditLimitBurst    = 10
	DefaultAuditMaxLimitKeys  = 10000
)

// AuditWriterConfig configures an AuditWriter.
type AuditWriterConfig struct {
	// Capacity is the most events waiting to be written; Write drops events
	// beyond it. Defaults to DefaultAuditCapacity.
	Capacity int
	// BatchSize is the most events one write carries. Defaults to
	// DefaultAuditBatchSize.
	BatchSize int
	// WriteTimeout bounds one attempt to write a batch. Defaults to
	// DefaultAuditWriteTimeout.
	WriteTimeout time.Duration
	// MaxAttempts is how often a batch is tried before it is dropped. Defaults
	// to DefaultAuditMaxAttempts.
	MaxAttempts int
	// RetryDelay is the pause after a failed attempt; it doubles with each
	// further failure of the batch, up to MaxRetryDelay. Defaults to
	// DefaultAuditRetryDelay.
	RetryDelay time.Duration
	// MaxRetryDelay caps the pause between attempts. Defaults to
	// DefaultAuditMaxRetryDelay.
	MaxRetryDelay time.Duration
	// Unavailable, when set, reports failures that say the database cannot
	// be reached for now (a lost or refused connection, an open circuit
	// breaker) rather than that the batch cannot be stored. A batch that
	// fails so is not dropped after MaxAttempts: it is tried again until it
	// is written, so that events raised during an outage (the breaker
	// opening, say) reach the audit log once it is over. The queue stays
	// bounded meanwhile (Write drops beyond Capacity, DropQueueFull). Once
	// Close is called the attempts are counted again: a batch gets one more,
	// or up to MaxAttempts in all if it had fewer. Without Unavailable every
	// failure counts against MaxAttempts. Only failures where nothing reached
	// the database should be reported: a batch sent again after its reply was
	// lost would be stored twice.
	Unavailable func(error) bool
	// LimitEvery and LimitBurst bound WriteLimited: per key, LimitBurst events
	// at once, then one per LimitEvery. Default to DefaultAuditLimitEvery and
	// DefaultAuditLimitBurst.
	LimitEvery time.Duration
	LimitBurst int
	// MaxLimitKeys is the most keys WriteLimited tracks; further keys share
	// one bucket until idle keys are forgotten. Defaults to
	// DefaultAuditMaxLimitKeys.
	MaxLimitKeys int
	// Logger logs failed writes and drops (drops at most once per 10 s).
	// Defaults to the store's logger.
	Logger *slog.Logger
	// OnDrop, when set, is called with every drop, from the goroutine that
	// dropped: it must not block. Wire it to a counter, e.g.
	//
	//	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
	//		Name: "omnibridge_audit_dropped_total"}, []string{"reason"})
	//	cfg.OnDrop = func(r store.DropReason, n int) { dropped.WithLabelValues(string(r)).Add(float64(n)) }
	OnDrop func(reason DropReason, n int)
}

// WithDefaults returns c with every zero field set to its default.
func (c AuditWriterConfig) WithDefaults() AuditWriterConfig {
	c.Capacity = cmp.Or(c.Capacity, DefaultAuditCapacity)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultAuditBatchSize)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultAuditWriteTimeout)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultAuditMaxAttempts)
	c.RetryDelay = cmp.Or(c.RetryDelay, DefaultAuditRetryDelay)
	c.MaxRetryDelay = cmp.Or(c.MaxRetryDelay, DefaultAuditMaxRetryDelay)
	c.LimitEvery = cmp.Or(c.LimitEvery, DefaultAuditLimitEvery)
	c.LimitBurst = cmp.Or(c.LimitBurst, DefaultAuditLimitBurst)
	c.MaxLimitKeys = cmp.Or(c.MaxLimitKeys, DefaultAuditMaxLimitKeys)
	return c
}

// Validate reports every invalid field at once.
func (c AuditWriterConfig) Validate() error {
	var errs []error
	positive := func(field string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("audit writer: %s: %d must be positive", field, v))
		}
	}
	positiveDur := func(field string, v time.Duration) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("audit writer: %s: %s must be positive", field, v))
		}
	}
	positive("capacity", c.Capacity)
	positive("batch_size", c.BatchSize)
	positive("max_attempts", c.MaxAttempts)
	positive("limit_burst", c.LimitBurst)
	positive("max_limit_keys", c.MaxLimitKeys)
	positiveDur("write_timeout", c.WriteTimeout)
	positiveDur("retry_delay", c.RetryDelay)
	positiveDur("max_retry_delay", c.MaxRetryDelay)
	positiveDur("limit_every", c.LimitEvery)
	return errors.Join(errs...)
}

// AuditWriterStats counts what an AuditWriter did.
type AuditWriterStats struct {
	// Queued is the number of events waiting now.
	Queued int
	// Written counts the events committed to the audit log.
	Written uint64
	// Dropped counts the events not written, by reason.
	Dropped map[DropReason]uint64
}

// AuditWriter writes audit events in the background, so that a request never
// waits on the audit log: Write puts the event in a bounded queue or, when the
// queue is full, drops it and counts the drop. One goroutine writes what is
// queued in batches (AppendAudits), retrying a failed batch a few times.
// Close flushes the queue within a bound. It is safe for concurrent use.
type AuditWriter struct {
	store   *Store
	cfg     AuditWriterConfig
	log     *slog.Logger
	limiter *auditLimiter

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan auditRow

	stop    chan struct{} // closed by Close: flush and exit
	done    chan struct{} // closed when the goroutine has exited
	ctx     context.Context
	abandon context.CancelFunc // cancels writes when Close runs out of time

	written  atomic.Uint64
	drops    [5]atomic.Uint64 // by dropReasons index
	lastWarn atomic.Int64     // unix nanoseconds of the last drop warning
}

var dropReasons = [...]DropReason{DropQueueFull, DropWriteFailed, DropClosed, DropInvalid, DropRateLimited}

// DropReasons lists every DropReason, for creating a metric's series up
// front.
func DropReasons() []DropReason { return slices.Clone(dropReasons[:]) }

// NewAuditWriter starts a writer on s. Call Close to flush and stop it. An
// invalid configuration returns an error naming every bad field.
func NewAuditWriter(s *Store, cfg AuditWriterConfig) (*AuditWriter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &AuditWriter{
		store:   s,
		cfg:     cfg,
		log:     cmp.Or(cfg.Logger, s.log),
		limiter: newAuditLimiter(cfg.LimitEvery, cfg.LimitBurst, cfg.MaxLimitKeys),
		queue:   make(chan auditRow, cfg.Capacity),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		ctx:     ctx,
		abandon: cancel,
	}
	go w.run()
	return w, nil
}

// Write queues ev and returns at once: true when it was queued, false when it
// was dropped (queue full, writer closed, or an event that cannot be stored),
// which is counted and reported to OnDrop. It never waits for the database.
// A zero CreatedAt is set to the time of the call.
func (w *AuditWriter) Write(ev AuditEvent) bool {
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = w.store.now()
	}
	r, e := ev.row()
	if e != nil {
		w.drop(DropInvalid, 1, e)
		return false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.drop(DropClosed, 1, nil)
		return false
	}
	select {
	case w.queue <- r:
		return true
	default:
		w.drop(DropQueueFull, 1, nil)
		return false
	}
}

// WriteLimited is Write under a rate limit per key (say "hook.signature_invalid
// 203.0.113.7"): per key, LimitBurst events pass at once and then one per
// LimitEvery, so a flood of identical failures writes a bounded number of
// rows. Suppressed events are counted (DropRateLimited); the key's next row
// carries their number in client_info under SuppressedKey, and when a flood
// stops, a summary row (the last suppressed event, with the count of the
// others) is written once the key's bucket refills, or at Close.
func (w *AuditWriter) WriteLimited(key string, ev AuditEvent) bool {
	now := w.store.now()
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now
	}
	ev, ok := w.limiter.admit(key, ev, now)
	if !ok {
		w.drop(DropRateLimited, 1, nil)
		return false
	}
	return w.Write(ev)
}

// Stats returns what the writer did so far.
func (w *AuditWriter) Stats() AuditWriterStats {
	st := AuditWriterStats{Queued: len(w.queue), Written: w.written.Load(), Dropped: make(map[DropReason]uint64)}
	for i, r := range dropReasons {
		if n := w.drops[i].Load(); n > 0 {
			st.Dropped[r] = n
		}
	}
	return st
}

// Close stops accepting events, writes the summaries of rate-limited keys and
// everything queued, and returns when done or when ctx ends; then it abandons
// what is left (counted as DropClosed) and returns an error wrapping ctx's.
// Calling it again returns nil once the first call has finished.
func (w *AuditWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.stop)
	}
	select {
	case <-w.done:
		w.abandon()
		return nil
	case <-ctx.Done():
		w.abandon()
		<-w.done
		return fmt.Errorf("store: audit writer: close before everything was written: %w", ctx.Err())
	}
}

func (w *AuditWriter) drop(reason DropReason, n int, cause error) {
	for i, r := range dropReasons {
		if r == reason {
			w.drops[i].Add(uint64(n))
		}
	}
	if w.cfg.OnDrop != nil {
		w.cfg.OnDrop(reason, n)
	}
	if reason == DropRateLimited {
		return // expected under a flood; the rows carry the counts
	}
	now := time.Now().UnixNano()
	last := w.lastWarn.Load()
	if now-last < int64(10*time.Second) || !w.lastWarn.CompareAndSwap(last, now) {
		return
	}
	args := []any{slog.String("reason", string(reason)), slog.Int("events", n)}
	for i, r := range dropReasons {
		args = append(args, slog.Uint64("dropped_"+string(r), w.drops[i].Load()))
	}
	if cause != nil {
		args = append(args, slog.String("error", cause.Error()))
	}
	w.log.Warn("store: audit writer: events dropped", args...)
}

// run is the writer goroutine.
func (w *AuditWriter) run() {
	defer close(w.done)
	batch := make([]auditRow, 0, w.cfg.BatchSize)
	tick := time.NewTicker(w.cfg.LimitEvery)
	defer tick.Stop()
	for {
		select {
		case r := <-w.queue:
			w.write(w.fill(append(batch[:0], r)))
		case <-tick.C:
			w.writeSummaries(w.limiter.pending(w.store.now()))
		case <-w.stop:
			w.writeSummaries(w.limiter.drain())
			for {
				b := w.fill(batch[:0])
				if len(b) == 0 {
					return
				}
				w.write(b)
			}
		}
	}
}

// fill adds queued events to b without waiting, up to the batch size.
func (w *AuditWriter) fill(b []auditRow) []auditRow {
	for len(b) < w.cfg.BatchSize {
		select {
		case r := <-w.queue:
			b = append(b, r)
		default:
			return b
		}
	}
	return b
}

func (w *AuditWriter) writeSummaries(evs []AuditEvent) {
	var rows []auditRow
	for i := range evs {
		if r, e := evs[i].row(); e == nil {
			rows = append(rows, r)
		}
	}
	for len(rows) > 0 {
		n := min(len(rows), w.cfg.BatchSize)
		w.write(rows[:n])
		rows = rows[n:]
	}
}

// write commits b, trying up to MaxAttempts times, or for as long as the
// database is unavailable (AuditWriterConfig.Unavailable) until Close; it
// drops b when the attempts ran out or when Close abandoned the writer.
func (w *AuditWriter) write(b []auditRow) {
	delay := min(w.cfg.RetryDelay, w.cfg.MaxRetryDelay)
	stop := w.stop // nil once Close was seen: the attempts are counted again
	var err error
	for attempt := 1; ; attempt++ {
		if w.ctx.Err() != nil {
			w.drop(DropClosed, len(b), nil)
			return
		}
		ctx, cancel := context.WithTimeout(w.ctx, w.cfg.WriteTimeout)
		err = w.store.appendAuditRows(ctx, b)
		cancel()
		if err == nil {
			w.written.Add(uint64(len(b)))
			return
		}
		w.log.Warn("store: audit writer: write failed",
			slog.Int("events", len(b)), slog.Int("attempt", attempt), slog.String("error", err.Error()))
		select {
		case <-stop:
			stop = nil
		default:
		}
		waits := stop != nil && w.cfg.Unavailable != nil && w.cfg.Unavailable(err)
		if !waits && attempt >= w.cfg.MaxAttempts {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-w.ctx.Done():
		case <-stop:
		}
		t.Stop()
		delay = min(delay*2, w.cfg.MaxRetryDelay)
	}
	if w.ctx.Err() != nil {
		w.drop(DropClosed, len(b), nil)
		return
	}
	w.drop(DropWriteFailed, len(b), err)
}
