package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	testdb.Main(m)
}

// testTimeout bounds what tests wait for: generous, for a shared and noisy
// machine. It is a correctness bound, not a performance assertion.
const testTimeout = 90 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs through t (shown for failing or verbose tests) and goes
// quiet once the test is over, since the pipeline may log while it stops.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	level := slog.LevelInfo
	if os.Getenv("COORDINATOR_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// bundle is what a test works with: its own database and Kafka.
type bundle struct {
	url    string
	db     *pgclient.Client
	st     *store.Store
	broker *kafka.Broker
	log    *slog.Logger
}

func setup(t *testing.T, opts ...kafka.BrokerOption) *bundle {
	t.Helper()
	log := testLogger(t)
	url := testdb.New(t)
	db, err := pgclient.Open(testContext(t), pgclient.Config{URL: url, ServiceName: "coordinator_test", MinConns: 1, MaxConns: 8, Logger: log})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	broker, err := kafka.StartBroker(opts...)
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	return &bundle{url: url, db: db, st: store.New(db), broker: broker, log: log}
}

// kafkaConfig is the broker's configuration with short timeouts, so that
// faults fail records quickly.
func (b *bundle) kafkaConfig() kafka.Config {
	cfg := b.broker.Config()
	cfg.DeliveryTimeout = 2 * time.Second
	cfg.RequestTimeout = 2 * time.Second
	cfg.DialTimeout = time.Second
	return cfg
}

func (b *bundle) producer(t *testing.T, cfg kafka.Config) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(testContext(t), cfg, b.log, nil)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// testConfig is a configuration with short intervals for tests.
func testConfig() Config {
	return Config{
		BatchSize:       50,
		PollInterval:    100 * time.Millisecond,
		LeaseTimeout:    30 * time.Second,
		ReclaimInterval: time.Second,
		DrainTimeout:    5 * time.Second,
		DatabaseTimeout: 5 * time.Second,
		LagInterval:     200 * time.Millisecond,
		Retry:           RetryConfig{BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 4, Jitter: "equal"},
		BrokerBackoff:   BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second},
		ListenBackoff:   BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second},
	}.WithDefaults()
}

func (b *bundle) listen() func(context.Context) (*pgx.Conn, error) {
	return func(ctx context.Context) (*pgx.Conn, error) {
		cfg, err := pgx.ParseConfig(b.url)
		if err != nil {
			return nil, err
		}
		cfg.RuntimeParams["application_name"] = "coordinator_test_listen"
		return pgx.ConnectConfig(ctx, cfg)
	}
}

func (b *bundle) newCoordinator(t *testing.T, cfg Config, p Publisher, listen bool) *Coordinator {
	t.Helper()
	d := Deps{Store: b.st, Publisher: p, Logger: b.log, Registerer: prometheus.NewRegistry()}
	if listen {
		d.Listen = b.listen()
	}
	c, err := New(cfg, d)
	require.NoError(t, err)
	return c
}

// running is a coordinator running in the background.
type running struct {
	c      *Coordinator
	cancel context.CancelFunc
	done   chan error
	bound  time.Duration
}

// start runs c until the test ends or stop is called.
func start(t *testing.T, c *Coordinator) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1),
		bound: c.cfg.DrainTimeout + c.cfg.DatabaseTimeout + 15*time.Second}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it to return, within the bound Run
// documents (plus slack for a loaded machine).
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			require.NoError(t, err)
			close(r.done)
		}
	case <-time.After(r.bound):
		t.Fatalf("Run did not return within %s of its context ending", r.bound)
	}
}

// insert stores n events spread over the given number of resources, in
// transactions of 500, oldest first, and returns their ids in insertion order.
func (b *bundle) insert(t testing.TB, n, resources int) []uuid.UUID {
	t.Helper()
	return b.insertChunked(t, n, resources, 500)
}

// insertChunked is insert with chunk events per transaction.
func (b *bundle) insertChunked(t testing.TB, n, resources, chunk int) []uuid.UUID {
	t.Helper()
	ctx := testContext(t)
	ids := make([]uuid.UUID, 0, n)
	for start := 0; start < n; start += chunk {
		evs := make([]store.NewEvent, min(chunk, n-start))
		for j := range evs {
			i := start + j
			evs[j] = store.NewEvent{
				Source:     "github",
				Action:     fmt.Sprintf("action-%d", i%3),
				Resource:   "repository",
				ResourceID: fmt.Sprintf("repo-%d", i%resources),
				Payload:    json.RawMessage(fmt.Sprintf(`{"seq": %d, "text": "caf\u00e9 \"quoted\"", "nested": {"list": [1, 2.5, null, true]}}`, i)),
				Metadata:   json.RawMessage(fmt.Sprintf(`{"ip": "192.0.2.%d"}`, i%250)),
			}
			if i%2 == 0 {
				evs[j].DeliveryID = "delivery-" + uuid.NewString()
			}
		}
		res, err := b.st.InsertEvents(ctx, evs)
		require.NoError(t, err)
		for _, r := range res {
			require.False(t, r.Duplicate)
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// counts returns how many events are in each status.
func (b *bundle) counts(t testing.TB) map[store.EventStatus]int {
	t.Helper()
	rows, err := b.db.Query(testContext(t), `SELECT status, count(*) FROM omnibridge.hook_events GROUP BY status`)
	require.NoError(t, err)
	out := map[store.EventStatus]int{}
	var s string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error {
		out[store.EventStatus(s)] = n
		return nil
	})
	require.NoError(t, err)
	return out
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", testTimeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSettled waits until no event is pending or processing, and returns the
// final counts.
func (b *bundle) waitSettled(t testing.TB) map[store.EventStatus]int {
	t.Helper()
	var c map[store.EventStatus]int
	waitFor(t, "every event processed or dead", func() bool {
		c = b.counts(t)
		return c[store.EventPending] == 0 && c[store.EventProcessing] == 0
	})
	return c
}

// readRecords reads exactly n records from the topic.
func (b *bundle) readRecords(t testing.TB, n int) []kafka.Record {
	t.Helper()
	recs, err := kafka.ReadAll(testContext(t), b.broker.Config(), n)
	require.NoError(t, err)
	require.Len(t, recs, n)
	return recs
}

func header(r kafka.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// eventMetric is a row of omnibridge.event_metrics.
type eventMetric struct {
	EventID   uuid.UUID
	Success   bool
	Error     *string
	MS        float64
	CreatedAt time.Time
}

func (b *bundle) eventMetrics(t testing.TB, id uuid.UUID) []eventMetric {
	t.Helper()
	rows, err := b.db.Query(testContext(t), `
SELECT event_id, kafka_publish_success, error_message, processing_time_ms, created_at
FROM omnibridge.event_metrics WHERE event_id = $1 ORDER BY created_at`, id)
	require.NoError(t, err)
	var out []eventMetric
	var m eventMetric
	_, err = pgx.ForEachRow(rows, []any{&m.EventID, &m.Success, &m.Error, &m.MS, &m.CreatedAt}, func() error {
		out = append(out, m)
		return nil
	})
	require.NoError(t, err)
	return out
}
