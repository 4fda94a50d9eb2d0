package pgclient

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// stateKey is where a connection's connState lives in pgconn's CustomData.
const stateKey = "omnibridge.pgclient"

// connState is what the client tracks per pooled connection. Apart from hold,
// its fields are only touched by the goroutine that holds the connection (the
// pool hands a connection over under a mutex, which orders the accesses).
type connState struct {
	createdAt time.Time
	pid       uint32

	queries int64 // statements run on this connection
	opStart int64 // start of the traced operation in progress (monotonic, see Client.monotonic)
	batchN  int64 // statements read so far in the batch in progress
	batchEr int64 // of which failed

	// lookup is set while a statement that consults the statement cache is
	// running; a prepare under it is a cache miss.
	lookup bool

	pg         *pgconn.PgConn
	stmt       atomic.Int64  // start of the timed statement (see startStatement), or a stmt state
	cancelDone chan struct{} // receives when a statement cancellation has finished
	discard    bool          // close instead of returning to the pool
	cancelSent atomic.Bool   // pgx sent a cancel request for the statement in progress (cancelWatcher)
	permit     bool          // the holder has a permit (see permits), given back after release

	hold hold         // the current holder, when leak detection is on
	ctr  connCounters // this connection's share of Stats
}

func stateOf(conn *pgx.Conn) *connState {
	st, _ := conn.PgConn().CustomData()[stateKey].(*connState)
	return st
}

// registry is the set of open connections, for the supervisor and Stats.
type registry struct {
	mu      sync.Mutex
	m       map[*connState]struct{}
	retired counterTotals // counters of closed connections
}

func (r *registry) add(st *connState) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[*connState]struct{})
	}
	r.m[st] = struct{}{}
	r.mu.Unlock()
}

// remove forgets a closed connection, keeping its counts.
func (r *registry) remove(st *connState) {
	r.mu.Lock()
	if _, ok := r.m[st]; ok {
		delete(r.m, st)
		r.retired.add(&st.ctr)
	}
	r.mu.Unlock()
}

// totals sums the counters of all connections, open and closed.
func (r *registry) totals() counterTotals {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.retired
	for st := range r.m {
		t.add(&st.ctr)
	}
	return t
}

func (r *registry) each(fn func(*connState)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for st := range r.m {
		fn(st)
	}
}

// tracer hooks the client into pgx and pgxpool. Counting at this level, rather
// than in the Client's methods, covers every statement on a pooled connection:
// transactions, acquired Conns and direct use of Pool() included.
type tracer struct{ c *Client }

var (
	_ pgx.QueryTracer       = (*tracer)(nil)
	_ pgx.BatchTracer       = (*tracer)(nil)
	_ pgx.CopyFromTracer    = (*tracer)(nil)
	_ pgx.PrepareTracer     = (*tracer)(nil)
	_ pgxpool.AcquireTracer = (*tracer)(nil)
	_ pgxpool.ReleaseTracer = (*tracer)(nil)
)

func (t *tracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return ctx
}

func (t *tracer) TraceAcquireEnd(_ context.Context, _ *pgxpool.Pool, d pgxpool.TraceAcquireEndData) {
	if d.Err != nil || d.Conn == nil {
		return
	}
	st := stateOf(d.Conn)
	if st == nil {
		return
	}
	add(&st.ctr.acquired, 1)
	if t.c.leakThreshold > 0 {
		t.c.beginHold(st)
	}
}

// TraceRelease ends the hold and enforces MaxQueriesPerConn. Closing the
// connection here makes pgxpool destroy it and top the pool up to MinConns
// right away; pgxpool's AfterRelease hook would cost a goroutine per release.
func (t *tracer) TraceRelease(_ *pgxpool.Pool, d pgxpool.TraceReleaseData) {
	c := t.c
	st := stateOf(d.Conn)
	if st == nil {
		return
	}
	add(&st.ctr.released, 1)
	c.endHold(st, "released")
	if d.Conn.IsClosed() {
		return
	}
	recycle := c.maxQueries > 0 && st.queries >= c.maxQueries
	if recycle {
		c.stats.recycledByQueries.Add(1)
	}
	if recycle || st.discard {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = d.Conn.Close(ctx)
		cancel()
	}
}

func (t *tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	st := stateOf(conn)
	if st == nil {
		return ctx
	}
	st.queries++
	st.cancelSent.Store(false)
	st.lookup = t.c.usesStatementCache(d.SQL, d.Args)
	if st.lookup {
		add(&st.ctr.cacheLookups, 1)
	}
	// The client's own statements have just read the clock: reuse it.
	if start := st.stmt.Load(); start > 0 {
		st.opStart = start
	} else {
		st.opStart = t.c.monotonic()
	}
	return ctx
}

// cancelWatcher is pgx's cancel-request handler for a cancelled context,
// noting on the connection that a cancel request went out.
type cancelWatcher struct {
	pgconn.CancelRequestContextWatcherHandler
}

func (h *cancelWatcher) HandleCancel(ctx context.Context) {
	if st, _ := h.Conn.CustomData()[stateKey].(*connState); st != nil {
		st.cancelSent.Store(true)
	}
	h.CancelRequestContextWatcherHandler.HandleCancel(ctx)
}

// strayCancel marks the connection to be closed on release when pgx sent a
// cancel request for the statement that just ended (the caller's context
// ended) but the statement did not end cancelled: it finished on its own as
// the request went out, and the request may reach the backend only later
// (pgx's 100 ms wait is not enough on a loaded machine) and cancel whatever
// the connection's next holder runs. A statement that the cancel did end
// (57014) used it up, and the connection is kept.
func strayCancel(st *connState, err error) {
	if st.cancelSent.Swap(false) && !isQueryCanceled(err) {
		st.discard = true
	}
}

func (t *tracer) TraceQueryEnd(_ context.Context, conn *pgx.Conn, d pgx.TraceQueryEndData) {
	st := stateOf(conn)
	if st == nil {
		return
	}
	strayCancel(st, d.Err)
	st.lookup = false
	var failed int64
	if d.Err != nil {
		failed = 1
	}
	t.c.recordStatements(st, kindQuery, 1, failed, t.c.since(st.opStart))
}

func (t *tracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	if st := stateOf(conn); st != nil {
		st.opStart, st.batchN, st.batchEr = t.c.monotonic(), 0, 0
		st.cancelSent.Store(false)
	}
	return ctx
}

func (t *tracer) TraceBatchQuery(_ context.Context, conn *pgx.Conn, d pgx.TraceBatchQueryData) {
	if st := stateOf(conn); st != nil {
		st.queries++
		st.batchN++
		if d.Err != nil {
			st.batchEr++
		}
	}
}

func (t *tracer) TraceBatchEnd(_ context.Context, conn *pgx.Conn, d pgx.TraceBatchEndData) {
	st := stateOf(conn)
	if st == nil {
		return
	}
	strayCancel(st, d.Err)
	n, failed := st.batchN, st.batchEr
	if d.Err != nil && failed == 0 {
		failed = 1 // the batch failed as a whole
		n = max(n, 1)
	}
	t.c.recordStatements(st, kindBatch, n, failed, t.c.since(st.opStart))
}

func (t *tracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	if st := stateOf(conn); st != nil {
		st.queries++
		st.opStart = t.c.monotonic()
		st.cancelSent.Store(false)
	}
	return ctx
}

func (t *tracer) TraceCopyFromEnd(_ context.Context, conn *pgx.Conn, d pgx.TraceCopyFromEndData) {
	st := stateOf(conn)
	if st == nil {
		return
	}
	strayCancel(st, d.Err)
	var failed int64
	if d.Err != nil {
		failed = 1
	}
	t.c.recordStatements(st, kindCopy, 1, failed, t.c.since(st.opStart))
}

// TracePrepareStart counts statement cache misses: pgx prepares a statement
// inside a query exactly when the cache did not hold it.
func (t *tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	if st := stateOf(conn); st != nil && st.lookup {
		st.lookup = false
		add(&st.ctr.cacheMisses, 1)
	}
	return ctx
}

func (t *tracer) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// usesStatementCache reports whether pgx will look sql up in a per-connection
// cache (statement or description cache) when running it with args. It
// mirrors the decision in pgx.Conn.Query; for Exec, pgx uses the simple
// protocol when there are no arguments, which the tracer cannot tell from a
// Query without arguments, so those are not counted.
func (c *Client) usesStatementCache(sql string, args []any) bool {
	if sql == "" || len(args) == 0 || c.prepared[sql] {
		return false
	}
	mode := c.execMode
	for _, a := range args {
		switch a := a.(type) {
		case pgx.QueryExecMode:
			mode = a
		case pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		case pgx.QueryRewriter: // named arguments: there are arguments after rewriting
			return cachedMode(mode)
		default:
			return cachedMode(mode)
		}
	}
	return false
}

func cachedMode(m pgx.QueryExecMode) bool {
	return m == pgx.QueryExecModeCacheStatement || m == pgx.QueryExecModeCacheDescribe
}
