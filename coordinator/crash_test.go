package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// The child process: TestMain runs childMain instead of the tests when
// childEnv is set, with the database and brokers in these variables.
const (
	childEnv        = "COORDINATOR_TEST_CHILD"
	childDBEnv      = "COORDINATOR_TEST_CHILD_DB"
	childBrokersEnv = "COORDINATOR_TEST_CHILD_BROKERS"
	childBatch      = 50
)

// childMain runs a coordinator until SIGTERM (or SIGKILL, which is the
// point).
func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("process", "child")
	db, err := pgclient.Open(ctx, pgclient.Config{URL: os.Getenv(childDBEnv), ServiceName: "coordinator_child", MinConns: 1, MaxConns: 4})
	if err != nil {
		log.Error("open database", "err", err)
		return 1
	}
	defer db.Close()
	kc := kafka.Config{
		Brokers:         strings.Split(os.Getenv(childBrokersEnv), ","),
		Compression:     kafka.CompressionNone, // the parent reads the produce requests
		DeliveryTimeout: 30 * time.Second,
	}
	p, err := kafka.NewProducer(ctx, kc, log, nil)
	if err != nil {
		log.Error("producer", "err", err)
		return 1
	}
	defer p.Close()
	cfg := testConfig()
	cfg.BatchSize = childBatch
	cfg.LeaseTimeout = time.Minute
	c, err := New(cfg, Deps{Store: store.New(db), Publisher: p, Logger: log})
	if err != nil {
		log.Error("coordinator", "err", err)
		return 1
	}
	if err := c.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// produceGate lets the first produce requests through until they carried
// `pass` records, then holds every later one (without answering) until
// opened; held requests are then processed normally, so their records are
// written although the client that sent them is gone.
//
// The first producer to send is the child; whatever else it sent past `pass`
// is in flight, even a request the broker reads off the socket only after
// the child was killed (and after the gate opened): the gate tells the
// child's requests apart by their idempotent producer id.
type produceGate struct {
	mu      sync.Mutex
	child   int64 // producer id of the first request, -1 before it
	passed  int
	sent    []string // event ids of the child's records past `pass`
	open    chan struct{}
	opened  bool
	pass    int
	cluster *kfake.Cluster
}

func newProduceGate(c *kfake.Cluster, pass int) *produceGate {
	g := &produceGate{child: -1, open: make(chan struct{}), pass: pass, cluster: c}
	c.ControlKey(int16(kmsg.Produce), g.control)
	return g
}

func (g *produceGate) control(req kmsg.Request) (kmsg.Response, error, bool) {
	g.cluster.KeepControl()
	produce := req.(*kmsg.ProduceRequest)
	pid := producerID(produce)
	g.mu.Lock()
	if g.child < 0 {
		g.child = pid
	}
	if pid != g.child {
		g.mu.Unlock()
		return nil, nil, false
	}
	ids := producedEventIDs(produce)
	if g.passed+len(ids) <= g.pass {
		g.passed += len(ids)
		g.mu.Unlock()
		return nil, nil, false
	}
	g.sent = append(g.sent, ids...)
	opened := g.opened
	g.mu.Unlock()
	if !opened {
		g.cluster.SleepControl(func() { <-g.open })
	}
	return nil, nil, false
}

// inFlight returns the event ids of the child's records past `pass`.
func (g *produceGate) inFlight() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.sent...)
}

func (g *produceGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		g.opened = true
		close(g.open)
	}
}

// producerID returns the producer id of a produce request's first record
// batch (one producer sends all of a request), or -1 without one.
func producerID(req *kmsg.ProduceRequest) int64 {
	if len(req.Topics) == 0 || len(req.Topics[0].Partitions) == 0 {
		return -1
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(req.Topics[0].Partitions[0].Records); err != nil {
		panic(fmt.Sprintf("produce request: record batch: %v", err))
	}
	return rb.ProducerID
}

// producedEventIDs returns the event-id header of every record of an
// uncompressed produce request.
func producedEventIDs(req *kmsg.ProduceRequest) []string {
	var ids []string
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(p.Records); err != nil {
				panic(fmt.Sprintf("produce request: record batch: %v", err))
			}
			raw := rb.Records
			for range rb.NumRecords {
				l, n := binary.Varint(raw)
				if n <= 0 || int(l)+n > len(raw) {
					panic("produce request: bad record length (is the batch compressed?)")
				}
				var r kmsg.Record
				if err := r.ReadFrom(raw[:n+int(l)]); err != nil {
					panic(fmt.Sprintf("produce request: record: %v", err))
				}
				raw = raw[n+int(l):]
				for _, h := range r.Headers {
					if h.Key == HeaderEventID {
						ids = append(ids, string(h.Value))
					}
				}
			}
		}
	}
	return ids
}

// A coordinator SIGKILLed while a batch is in flight, and a fresh one started
// after: every event is delivered at least once, and the only copies of one
// attempt are those of the batch in flight at the kill (same event id, key
// and body). Later attempts after a failed delivery may add copies.
func TestKilledMidBatchRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 200
	b.insert(t, n, 13)
	gate := newProduceGate(b.broker.Cluster(), childBatch)
	defer gate.release()

	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDBEnv+"="+b.url,
		childBrokersEnv+"="+strings.Join(b.broker.Addrs(), ","))
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("child's log:\n%s", stderr.String())
		}
	}()

	// The first batch is acknowledged and completed; the second is held
	// in flight by the broker.
	waitFor(t, "first batch completed and second in flight", func() bool {
		return b.counts(t)[store.EventProcessed] == childBatch && len(gate.inFlight()) > 0
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed = true
	// A statement the child had sent still runs to its end (a claim commits
	// although its client is gone); its backends leave once they find the
	// client gone.
	waitFor(t, "the child's backends gone", func() bool {
		var n int
		require.NoError(t, b.db.QueryRow(testContext(t), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'coordinator_child'`).Scan(&n))
		return n == 0
	})

	held := gate.inFlight()
	processing := map[string]bool{}
	rows, err := b.db.Query(testContext(t), `SELECT id FROM omnibridge.hook_events WHERE status = 'processing'`)
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		processing[id.String()] = true
	}
	require.NoError(t, rows.Err())
	for _, id := range held {
		require.True(t, processing[id], "held event %s is not processing", id)
	}
	require.Equal(t, childBatch, b.counts(t)[store.EventProcessed])

	// The broker now writes what the dead child sent: those records exist
	// in Kafka although their events were never marked processed.
	gate.release()
	b.readRecords(t, childBatch+len(held))

	// A fresh coordinator reclaims and finishes. The dead child's claims
	// are aged past the lease rather than the lease made short: a lease of
	// a few seconds also expires the fresh coordinator's own claims on a
	// loaded machine, and those events would be sent twice as one attempt.
	cfg := testConfig()
	cfg.LeaseTimeout = time.Minute
	cfg.ReclaimInterval = 250 * time.Millisecond
	tag, err := b.db.Exec(testContext(t), `UPDATE omnibridge.hook_events
		SET claimed_at = claimed_at - interval '2 minutes' WHERE status = 'processing'`)
	require.NoError(t, err)
	require.Equal(t, int64(len(processing)), tag.RowsAffected())
	kc := b.kafkaConfig()
	kc.DeliveryTimeout = time.Second
	c := b.newCoordinator(t, cfg, b.producer(t, kc), true)
	start(t, c)
	final := b.waitSettled(t)
	require.Equal(t, n, final[store.EventProcessed])

	// Everything in the topic: reading past its end runs into the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	recs, err := kafka.ReadAll(ctx, b.broker.Config(), 3*n)
	require.Error(t, err)
	copies := map[string][]kafka.Record{}
	for _, r := range recs {
		id := header(r, HeaderEventID)
		copies[id] = append(copies[id], r)
	}
	require.Len(t, copies, n, "every event delivered")
	// The child's requests the broker read only after the kill count as in
	// flight too.
	heldSet := map[string]bool{}
	for _, id := range gate.inFlight() {
		heldSet[id] = true
		require.GreaterOrEqual(t, len(copies[id]), 2, "held event %s sent again after the reclaim", id)
	}
	// Two copies of one attempt come only from the batch in flight at the
	// kill (sent by the dead child, then again after the reclaim). Copies
	// with a later attempt are retries after a delivery that failed (a
	// 1s delivery timeout on a loaded machine): at least once allows them.
	for id, rs := range copies {
		byAttempt := map[string][]kafka.Record{}
		for _, r := range rs {
			a := header(r, HeaderAttempt)
			byAttempt[a] = append(byAttempt[a], r)
		}
		for attempt, same := range byAttempt {
			if len(same) == 1 {
				continue
			}
			require.True(t, heldSet[id], "event %s sent twice as attempt %s but was not in flight at the kill", id, attempt)
			require.Len(t, same, 2)
			require.Equal(t, same[0].Key, same[1].Key)
			require.JSONEq(t, string(same[0].Value), string(same[1].Value))
		}
	}
}
