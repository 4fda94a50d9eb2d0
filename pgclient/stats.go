package pgclient

import (
	"sync/atomic"
	"time"
)

// kind is the kind of traced operation, for the query duration histogram.
type kind uint8

const (
	kindQuery kind = iota // Exec, Query, QueryRow
	kindBatch
	kindCopy
	numKinds
)

var kindNames = [numKinds]string{kindQuery: "query", kindBatch: "batch", kindCopy: "copy"}

// counters are the client's counters that are not per connection, and its
// gauges.
type counters struct {
	failedAcquires    atomic.Int64
	queryTimeouts     atomic.Int64
	potentialLeaks    atomic.Int64
	currentLeaks      atomic.Int64
	recycledByQueries atomic.Int64
	failedAcquireHist hist // acquisitions that failed; successful ones are per connection
	permitWaits       atomic.Int64
	permitWaitNanos   atomic.Int64

	_       [64]byte     // waiting changes whenever a caller queues for admission:
	waiting atomic.Int32 // keep it off the cache lines read on every operation
	_       [60]byte
}

// connCounters count per connection what happens on every operation, so the
// hot path touches no cache line shared between connections. They are
// written by the goroutine holding the connection and summed by Stats and the
// metrics collector; the registry keeps the sums of closed connections.
type connCounters struct {
	acquired      atomic.Int64
	released      atomic.Int64
	queries       atomic.Int64
	failedQueries atomic.Int64
	queryNanos    atomic.Int64
	cacheLookups  atomic.Int64
	cacheMisses   atomic.Int64
	queryHist     [numKinds]hist
	acquireHist   hist
}

// add adds n to a per-connection counter. Only the connection's holder
// writes its counters (the pool orders successive holders), so a load and a
// store do, without the locked read-modify-write of Add; readers still load
// atomically.
func add[T int64 | uint64, A interface {
	Load() T
	Store(T)
}](a A, n T) {
	a.Store(a.Load() + n)
}

// counterTotals is a plain sum of connCounters.
type counterTotals struct {
	acquired, released, queries, failedQueries, queryNanos, cacheLookups, cacheMisses int64
	queryHist                                                                         [numKinds]histTotals
	acquireHist                                                                       histTotals
}

func (t *counterTotals) add(c *connCounters) {
	t.acquired += c.acquired.Load()
	t.released += c.released.Load()
	t.queries += c.queries.Load()
	t.failedQueries += c.failedQueries.Load()
	t.queryNanos += c.queryNanos.Load()
	t.cacheLookups += c.cacheLookups.Load()
	t.cacheMisses += c.cacheMisses.Load()
	for k := range numKinds {
		t.queryHist[k].add(&c.queryHist[k])
	}
	t.acquireHist.add(&c.acquireHist)
}

// Histogram bucket bounds (upper, inclusive) of query and acquire durations.
var (
	queryBuckets   = bucketBounds(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
	acquireBuckets = bucketBounds(.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .1, .5, 1, 5, 10)
)

// maxBuckets bounds the number of buckets of a hist.
const maxBuckets = 16

func bucketBounds(seconds ...float64) []time.Duration {
	if len(seconds) > maxBuckets {
		panic("pgclient: too many histogram buckets")
	}
	b := make([]time.Duration, len(seconds))
	for i, s := range seconds {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}

// hist is a duration histogram with fixed buckets. Like connCounters, each
// connection has its own, written only by its holder (no contended cache line
// on the hot path, unlike one shared Prometheus histogram), and the collector
// sums them at scrape time.
type hist struct {
	counts [maxBuckets + 1]atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	nanos  atomic.Int64
}

// observe records d in a connection's histogram: its holder is the only
// writer.
func (h *hist) observe(bounds []time.Duration, d time.Duration) {
	i := bucketOf(bounds, d)
	add(&h.counts[i], 1)
	add(&h.nanos, int64(d))
}

// observeShared records d in a histogram that any goroutine may write.
func (h *hist) observeShared(bounds []time.Duration, d time.Duration) {
	h.counts[bucketOf(bounds, d)].Add(1)
	h.nanos.Add(int64(d))
}

func bucketOf(bounds []time.Duration, d time.Duration) int {
	i := 0
	for i < len(bounds) && d > bounds[i] {
		i++
	}
	if i == len(bounds) {
		i = maxBuckets
	}
	return i
}

// histTotals is a plain sum of hists.
type histTotals struct {
	counts [maxBuckets + 1]uint64
	nanos  int64
}

func (t *histTotals) add(h *hist) {
	for i := range h.counts {
		t.counts[i] += h.counts[i].Load()
	}
	t.nanos += h.nanos.Load()
}

// cumulative returns the count and the cumulative bucket counts keyed by
// upper bound in seconds, as Prometheus wants them.
func (t *histTotals) cumulative(bounds []time.Duration) (uint64, map[float64]uint64) {
	buckets := make(map[float64]uint64, len(bounds))
	var n uint64
	for i, b := range bounds {
		n += t.counts[i]
		buckets[b.Seconds()] = n
	}
	return n + t.counts[maxBuckets], buckets
}

// recordStatements accounts n statements on st (failed of them failing) that
// took d in all.
func (c *Client) recordStatements(st *connState, k kind, n, failed int64, d time.Duration) {
	add(&st.ctr.queries, n)
	add(&st.ctr.queryNanos, int64(d))
	if failed > 0 {
		add(&st.ctr.failedQueries, failed)
	}
	st.ctr.queryHist[k].observe(queryBuckets, d)
}

// Stats is a point-in-time view of the client. The first seven fields are
// ADR-016's connection metrics. Counters are cumulative since Open.
type Stats struct {
	// AcquiredConnections counts successful acquisitions.
	AcquiredConnections int64 `json:"acquired_connections"`
	// ReleasedConnections counts releases.
	ReleasedConnections int64 `json:"released_connections"`
	// FailedAcquisitions counts acquisitions that failed on their own: the
	// pool was exhausted for AcquireTimeout, or a new connection could not be
	// opened. A caller giving up (its context ending) is not counted.
	FailedAcquisitions int64 `json:"failed_acquisitions"`
	// QueryCount counts statements (each statement of a batch, a COPY as one).
	QueryCount int64 `json:"query_count"`
	// AvgQueryTimeMS is the mean time per statement, in milliseconds.
	AvgQueryTimeMS float64 `json:"avg_query_time_ms"`
	// PoolUtilizationPercent is connections in use ÷ MaxConns × 100.
	PoolUtilizationPercent float64 `json:"pool_utilization_percent"`
	// PotentialLeaks counts connections ever reported as held past
	// LeakThreshold.
	PotentialLeaks int64 `json:"potential_leaks"`

	// FailedQueries counts statements that returned an error.
	FailedQueries int64 `json:"failed_queries"`
	// QueryTimeouts counts statements ended by QueryTimeout.
	QueryTimeouts int64 `json:"query_timeouts"`
	// CurrentLeaks is the number of reported connections not yet returned.
	CurrentLeaks int64 `json:"current_leaks"`

	// Size is the number of open connections (including ones being opened).
	Size int32 `json:"size"`
	// Idle is the number of open connections not in use.
	Idle int32 `json:"idle"`
	// InUse is the number of connections acquired.
	InUse int32 `json:"in_use"`
	// Waiting is the number of callers queued for admission right now (all
	// MaxConns connections held by the client's callers; see permits).
	Waiting int32 `json:"waiting"`
	// Max is MaxConns.
	Max int32 `json:"max"`
	// Min is MinConns.
	Min int32 `json:"min"`

	// NewConnections counts connections opened.
	NewConnections int64 `json:"new_connections"`
	// RecycledByAge counts connections closed for reaching ConnMaxAge.
	RecycledByAge int64 `json:"recycled_by_age"`
	// RecycledByQueries counts connections closed for reaching
	// MaxQueriesPerConn.
	RecycledByQueries int64 `json:"recycled_by_queries"`
	// RecycledByIdle counts connections closed for idling past ConnMaxIdle.
	RecycledByIdle int64 `json:"recycled_by_idle"`

	// AcquireWaits counts acquisitions that had to wait: for a connection
	// to be released (all MaxConns in use), or for one to be opened (none
	// was idle).
	AcquireWaits int64 `json:"acquire_waits"`
	// AcquireWaitMS is the total time those acquisitions waited, in
	// milliseconds.
	AcquireWaitMS float64 `json:"acquire_wait_ms"`
	// AvgAcquireWaitMS is AcquireWaitMS ÷ AcquireWaits.
	AvgAcquireWaitMS float64 `json:"avg_acquire_wait_ms"`

	// StatementCacheHits and StatementCacheMisses count lookups of single
	// statements with arguments in the per-connection statement (or
	// description) cache; a miss prepares the statement. Batches and
	// statements without arguments are not counted: pgx gives no hook to see
	// their lookups.
	StatementCacheHits   int64 `json:"statement_cache_hits"`
	StatementCacheMisses int64 `json:"statement_cache_misses"`

	// Retries counts operations attempted again after a transient failure
	// (connect, statement and transaction retries; see RetryConfig).
	Retries int64 `json:"retries"`
	// BreakerState is the circuit breaker's state: closed, half-open or open.
	BreakerState string `json:"breaker_state"`
	// BreakerRejections counts operations the circuit breaker refused with
	// ErrUnavailable.
	BreakerRejections int64 `json:"breaker_rejections"`
}

// Stats returns the current statistics. It takes the pool's lock briefly.
func (c *Client) Stats() Stats {
	s, _ := c.statsAndTotals()
	return s
}

// statsAndTotals returns Stats and the counter totals it was computed from.
func (c *Client) statsAndTotals() (Stats, counterTotals) {
	ps := c.pool.Stat()
	t := c.conns.totals()
	s := Stats{
		AcquiredConnections: t.acquired,
		ReleasedConnections: t.released,
		FailedAcquisitions:  c.stats.failedAcquires.Load(),
		QueryCount:          t.queries,
		PotentialLeaks:      c.stats.potentialLeaks.Load(),
		FailedQueries:       t.failedQueries,
		QueryTimeouts:       c.stats.queryTimeouts.Load(),
		CurrentLeaks:        c.stats.currentLeaks.Load(),

		Size:    ps.TotalConns(),
		Idle:    ps.IdleConns(),
		InUse:   ps.AcquiredConns(),
		Waiting: c.stats.waiting.Load(),
		Max:     ps.MaxConns(),
		Min:     max(c.cfg.MinConns, 0),

		NewConnections:    ps.NewConnsCount(),
		RecycledByAge:     ps.MaxLifetimeDestroyCount(),
		RecycledByQueries: c.stats.recycledByQueries.Load(),
		RecycledByIdle:    ps.MaxIdleDestroyCount(),

		AcquireWaits:  c.stats.permitWaits.Load() + ps.EmptyAcquireCount(),
		AcquireWaitMS: ms(time.Duration(c.stats.permitWaitNanos.Load()) + ps.EmptyAcquireWaitTime()),
	}
	if s.QueryCount > 0 {
		s.AvgQueryTimeMS = ms(time.Duration(t.queryNanos)) / float64(s.QueryCount)
	}
	if s.AcquireWaits > 0 {
		s.AvgAcquireWaitMS = s.AcquireWaitMS / float64(s.AcquireWaits)
	}
	if s.Max > 0 {
		s.PoolUtilizationPercent = float64(s.InUse) / float64(s.Max) * 100
	}
	lookups, misses := t.cacheLookups, t.cacheMisses
	s.StatementCacheMisses = misses
	s.StatementCacheHits = max(lookups-misses, 0)
	s.Retries = c.res.retryCount()
	s.BreakerState = c.BreakerStatus().State.String()
	s.BreakerRejections = c.res.breaker.rejections()
	return s, t
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ConnectionSnapshot is one row of ADR-016's connection_metrics table: the
// pool's state at RecordedAt. The data layer adds the instance id.
type ConnectionSnapshot struct {
	ServiceName        string    `json:"service_name"`
	PoolSize           int32     `json:"pool_size"`
	ActiveConnections  int32     `json:"active_connections"`
	IdleConnections    int32     `json:"idle_connections"`
	WaitingConnections int32     `json:"waiting_connections"`
	TotalQueries       int64     `json:"total_queries"`
	FailedQueries      int64     `json:"failed_queries"`
	AvgQueryTimeMS     float64   `json:"avg_query_time_ms"`
	PotentialLeaks     int64     `json:"potential_leaks"`
	UtilizationPercent float64   `json:"utilization_percent"`
	RecordedAt         time.Time `json:"recorded_at"`
}

// Snapshot returns the current connection metrics, for storing periodically in
// connection_metrics. Counters are cumulative since Open.
func (c *Client) Snapshot() ConnectionSnapshot {
	s := c.Stats()
	return ConnectionSnapshot{
		ServiceName:        c.cfg.ServiceName,
		PoolSize:           s.Size,
		ActiveConnections:  s.InUse,
		IdleConnections:    s.Idle,
		WaitingConnections: s.Waiting,
		TotalQueries:       s.QueryCount,
		FailedQueries:      s.FailedQueries,
		AvgQueryTimeMS:     s.AvgQueryTimeMS,
		PotentialLeaks:     s.PotentialLeaks,
		UtilizationPercent: s.PoolUtilizationPercent,
		RecordedAt:         time.Now(),
	}
}
