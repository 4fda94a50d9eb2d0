package hookreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// writerBundle is a Receiver whose writers run on a bare pool, fed directly
// through its queue (no HTTP): for the writer's own tests and benchmarks.
type writerBundle struct {
	r    *Receiver
	pool *pgxpool.Pool
	reg  *prometheus.Registry
}

func startWriters(tb testing.TB, batch BatchConfig, maxConns int32) *writerBundle {
	tb.Helper()
	return startWritersOn(tb, batch, maxConns, func(db store.DB) store.DB { return db })
}

// startWritersOn is startWriters with the store's DB wrapped by wrap.
func startWritersOn(tb testing.TB, batch BatchConfig, maxConns int32, wrap func(store.DB) store.DB) *writerBundle {
	tb.Helper()
	ctx := context.Background()
	pcfg, err := pgxpool.ParseConfig(testdb.New(tb))
	require.NoError(tb, err)
	pcfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(tb, err)
	reg := prometheus.NewRegistry()
	r, err := New(Config{Batch: batch}, Deps{Store: store.New(wrap(pool)), Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	require.NoError(tb, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	require.Eventually(tb, func() bool { return r.Ready(ctx) == nil }, 10*time.Second, time.Millisecond)
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-done)
		pool.Close()
	})
	return &writerBundle{r: r, pool: pool, reg: reg}
}

// submit queues ev and returns its pending entry, retrying while the queue
// is full.
func (wb *writerBundle) submit(tb testing.TB, ev store.NewEvent) *pending {
	p := &pending{ev: ev, size: int64(len(ev.Payload)) + pendingOverhead, done: make(chan outcome, 1), enqueued: time.Now()}
	for {
		err := wb.r.queue.offer(p)
		if err == nil {
			return p
		}
		if err != errQueueFull {
			tb.Fatalf("offer: %v", err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// hold makes the (single) writer wait in the commit of a first event, with
// the queue empty, until release is called: what is submitted meanwhile is
// its next batch. release lets the first event commit and checks it did.
func (wb *writerBundle) hold(tb testing.TB) (release func()) {
	tb.Helper()
	ctx := context.Background()
	tx, err := wb.pool.Begin(ctx)
	require.NoError(tb, err)
	_, err = tx.Exec(ctx, `LOCK TABLE omnibridge.hook_event_deliveries IN SHARE MODE`)
	require.NoError(tb, err)
	blocker := wb.submit(tb, writerEvent("w-blocker"))
	require.Eventually(tb, func() bool { return wb.r.committing.Load() == 1 && len(wb.r.queue.ch) == 0 },
		30*time.Second, time.Millisecond)
	return func() {
		require.NoError(tb, tx.Rollback(ctx))
		require.Nil(tb, (<-blocker.done).err)
	}
}

func writerEvent(delivery string) store.NewEvent {
	return store.NewEvent{Source: "writer", Action: "a", Resource: "r", ResourceID: "1", DeliveryID: delivery,
		Payload: json.RawMessage(`{"n":1}`)}
}

func TestWriterIsolatesRowsTheStoreRefuses(t *testing.T) {
	t.Parallel()
	wb := startWriters(t, BatchConfig{MaxSize: 8, Writers: 1}, 4)
	// Hold the writer on a first event, so that the eight below are queued
	// when it comes back for its next batch.
	release := wb.hold(t)

	events := make([]store.NewEvent, 8)
	for i := range events {
		events[i] = writerEvent("w-" + strconv.Itoa(i))
	}
	events[2].Payload = json.RawMessage(`[1]`) // not an object
	events[5].Action = ""                      // missing
	events[6].DeliveryID = "w-1"               // a duplicate within the batch
	var ps []*pending
	for _, ev := range events {
		ps = append(ps, wb.submit(t, ev))
	}
	release()
	var outs []outcome
	for _, p := range ps {
		outs = append(outs, <-p.done)
	}
	count, sum := histogram(t, wb.reg, metricsPrefix+"batch_size")
	require.Equal(t, []float64{2, 9}, []float64{count, sum}, "the blocker's batch, then all eight in one")
	for i, o := range outs {
		switch i {
		case 2:
			require.NotNil(t, o.err)
			require.Equal(t, kindInvalid, o.err.kind)
			require.Equal(t, string(store.CodeNotAnObject), o.err.code)
		case 5:
			require.NotNil(t, o.err)
			require.Equal(t, string(store.CodeMissingField), o.err.code)
		case 6:
			require.Nil(t, o.err)
			require.True(t, o.res.Duplicate)
			require.Equal(t, outs[1].res.ID, o.res.ID)
		default:
			require.Nil(t, o.err, "event %d", i)
			require.False(t, o.res.Duplicate)
		}
	}
	var n int
	require.NoError(t, wb.pool.QueryRow(context.Background(), `SELECT count(*) FROM omnibridge.hook_events`).Scan(&n))
	require.Equal(t, 6, n, "the blocker and five of the eight")
	require.Equal(t, 2.0, counterValue(t, wb.reg, metricsPrefix+"rejected_rows_total"))
	require.Zero(t, wb.r.queue.bytes.Load(), "every answered event gave its bytes back")
}

func TestWriterAnswersEverythingQueuedAtShutdown(t *testing.T) {
	t.Parallel()
	wb := startWriters(t, BatchConfig{MaxSize: 4, MaxWait: -1, Writers: 2, QueueSize: 200}, 4)
	var ps []*pending
	for i := range 150 {
		ps = append(ps, wb.submit(t, writerEvent("sd-"+strconv.Itoa(i))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, wb.r.Drain(ctx))
	for i, p := range ps {
		select {
		case o := <-p.done:
			require.Nil(t, o.err, "event %d", i)
		default:
			t.Fatalf("event %d not answered when Drain returned", i)
		}
	}
	late := &pending{ev: writerEvent("late"), size: 1, done: make(chan outcome, 1)}
	require.Equal(t, errShuttingDown, wb.r.queue.offer(late))
	require.Error(t, wb.r.Ready(ctx))
}

func histogram(t testing.TB, reg *prometheus.Registry, name string) (count, sum float64) {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return float64(h.GetSampleCount()), h.GetSampleSum()
		}
	}
	return 0, 0
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// BenchmarkGroupCommit measures the writers alone (no HTTP): 64 submitters,
// each queueing an event and waiting for its commit before the next, against
// the same 64 submitters each calling Store.InsertEvent (one INSERT per
// event) on a pool of the same size:
//
//	go test -run '^$' -bench GroupCommit -benchtime 20000x ./hookreceiver/
func BenchmarkGroupCommit(b *testing.B) {
	const submitters = 64
	for _, writers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			wb := startWriters(b, BatchConfig{Writers: writers}, 16)
			var seq atomic.Int64
			runClosedLoop(b, submitters, func() {
				p := wb.submit(b, writerEvent("g-"+strconv.FormatInt(seq.Add(1), 10)))
				if o := <-p.done; o.err != nil {
					b.Fatal(o.err)
				}
			})
			count, sum := histogram(b, wb.reg, metricsPrefix+"batch_size")
			b.ReportMetric(sum/count, "events/batch")
		})
	}
	b.Run("insert_one", func(b *testing.B) {
		wb := startWriters(b, BatchConfig{}, 16)
		st := store.New(wb.pool)
		var seq atomic.Int64
		runClosedLoop(b, submitters, func() {
			if _, _, err := st.InsertEvent(context.Background(), writerEvent("o-"+strconv.FormatInt(seq.Add(1), 10))); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// runClosedLoop runs op b.N times from n goroutines, each starting its next
// op when the previous one returned, and reports events/s.
func runClosedLoop(b *testing.B, n int, op func()) {
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for range jobs {
				op()
			}
		})
	}
	start := time.Now()
	for b.Loop() {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
