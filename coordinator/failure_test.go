package coordinator

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// The broker refuses every record of one partition (INVALID_RECORD, an
// error of the records): those events are retried with backoff, then
// dead-lettered with each error recorded; the other partitions' events are
// delivered meanwhile. Replayed once the partition is healthy, the dead
// events are delivered.
func TestRecordErrorsRetryThenDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t, kafka.WithPartitions(3))
	const n, resources = 90, 30
	ids := b.insert(t, n, resources)
	fault := b.broker.Cluster().Fault(kfake.Fault{
		Keys:       []kmsg.Key{kmsg.Produce},
		Topic:      kafka.DefaultTopic,
		Partitions: []int32{1},
		Err:        kerr.InvalidRecord,
		Count:      -1,
	})
	defer fault.Remove()

	cfg := testConfig()
	c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), true)
	r := start(t, c)
	final := b.waitSettled(t)
	require.NotZero(t, final[store.EventDead], "no event was on partition 1")
	require.NotZero(t, final[store.EventProcessed], "every event was on partition 1")
	require.Equal(t, n, final[store.EventDead]+final[store.EventProcessed])

	delivered := b.readRecords(t, final[store.EventProcessed])
	deliveredKeys := map[string]bool{}
	for _, rec := range delivered {
		require.NotEqual(t, int32(1), rec.Partition)
		deliveredKeys[string(rec.Key)] = true
	}

	policy := cfg.Retry.Policy()
	var dead []uuid.UUID
	for _, id := range ids {
		e, err := b.st.GetEvent(testContext(t), id)
		require.NoError(t, err)
		ms := b.eventMetrics(t, id)
		if e.Status == store.EventProcessed {
			require.Zero(t, e.RetryCount)
			require.Len(t, ms, 1)
			require.True(t, ms[0].Success)
			continue
		}
		// Keys stay on their partition: a resource is delivered or dead,
		// never both.
		require.Equal(t, store.EventDead, e.Status)
		require.False(t, deliveredKeys[e.ResourceID], "resource %s both delivered and dead", e.ResourceID)
		dead = append(dead, id)

		require.Equal(t, cfg.Retry.MaxAttempts, e.RetryCount)
		require.Len(t, e.ProcessingErrors, cfg.Retry.MaxAttempts)
		for i, msg := range e.ProcessingErrors {
			require.Contains(t, msg, "INVALID_RECORD", "error %d of %s", i, id)
		}
		require.Len(t, ms, cfg.Retry.MaxAttempts)
		for i, m := range ms {
			require.False(t, m.Success)
			require.NotNil(t, m.Error)
			require.Contains(t, *m.Error, "INVALID_RECORD")
			if i > 0 {
				// Equal jitter: attempt i+1 waited at least half the
				// backoff after attempt i. A loaded machine only makes
				// the gap longer.
				gap := m.CreatedAt.Sub(ms[i-1].CreatedAt)
				require.GreaterOrEqual(t, gap, policy.Backoff(i)/2-time.Millisecond,
					"attempt %d of %s came %s after the previous one", i+1, id, gap)
			}
		}
	}
	require.Equal(t, float64(len(dead)), value(t, c.m.dead))
	require.Equal(t, float64(len(dead)*cfg.Retry.MaxAttempts), value(t, c.m.failed))
	require.Zero(t, value(t, c.m.outages), "record errors are not an outage")

	// The partition heals; the replayed dead events are delivered.
	fault.Remove()
	replayed, err := b.st.Replay(testContext(t), dead...)
	require.NoError(t, err)
	require.Equal(t, len(dead), replayed)
	final = b.waitSettled(t)
	require.Equal(t, n, final[store.EventProcessed])
	recs := b.readRecords(t, n)
	got := map[string]bool{}
	for _, rec := range recs {
		got[header(rec, HeaderEventID)] = true
	}
	for _, id := range dead {
		require.True(t, got[id.String()], "replayed event %s not delivered", id)
	}
	r.stop(t)
}

// The cluster fails every produce request with a broker-wide error for a
// while: the coordinator backs off as a whole, the events keep their
// attempts, and everything is delivered once the cluster is back.
func TestBrokerOutageKeepsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	kc := b.kafkaConfig()
	kc.DeliveryTimeout = time.Second
	c := b.newCoordinator(t, testConfig(), b.producer(t, kc), true)
	start(t, c)
	b.insert(t, 20, 4)
	waitFor(t, "first events delivered", func() bool { return b.counts(t)[store.EventProcessed] == 20 })

	fault := b.broker.Cluster().Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Err:   kerr.NotEnoughReplicas,
		Count: -1,
	})
	defer fault.Remove()
	const n = 300
	b.insert(t, n, 25)
	require.NoError(t, b.st.Notify(testContext(t)))
	waitFor(t, "the coordinator backing off", func() bool { return value(t, c.m.brokerBackoff) == 1 })
	require.ErrorIs(t, c.Ready(testContext(t)), ErrBrokerBackoff)
	// Stay down across several probes: each releases a whole batch, and so
	// does the batch claimed ahead when the outage began.
	waitFor(t, "three batches released", func() bool {
		return value(t, c.m.released.WithLabelValues(releaseBroker)) >= float64(3*testConfig().BatchSize)
	})
	require.Equal(t, 1.0, value(t, c.m.outages), "failed probes are one outage")
	fault.Remove()

	final := b.waitSettled(t)
	require.Equal(t, n+20, final[store.EventProcessed])
	require.NoError(t, c.Ready(testContext(t)))
	requireAttemptsKept(t, b)
	require.NotZero(t, value(t, c.m.released.WithLabelValues(releaseBroker)))
	require.NotZero(t, value(t, c.m.outages))
	require.Zero(t, value(t, c.m.dead))
	b.readRecords(t, n+20)
}

// The cluster fails every produce request while the only pending event is
// probed; another coordinator delivers that event meanwhile, and the cluster
// comes back. With nothing left to probe with, the outage ends at the next
// ping that answers, instead of lasting (Ready failing, broker_backoff at 1,
// the critical alert firing) until the next event arrives.
func TestOutageEndsWithNothingToProbe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	kc := b.kafkaConfig()
	kc.DeliveryTimeout = time.Second
	cfg := testConfig()
	c := b.newCoordinator(t, cfg, b.producer(t, kc), true)
	start(t, c)

	fault := b.broker.Cluster().Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Err:   kerr.NotEnoughReplicas,
		Count: -1,
	})
	defer fault.Remove()
	id := b.insert(t, 1, 1)[0]
	require.NoError(t, b.st.Notify(testContext(t)))
	waitFor(t, "the coordinator backing off", func() bool { return value(t, c.m.brokerBackoff) == 1 })
	require.ErrorIs(t, c.Ready(testContext(t)), ErrBrokerBackoff)

	// Another coordinator delivers the event: it is marked processed between
	// two probes (not while a probe holds it).
	waitFor(t, "the event delivered elsewhere", func() bool {
		tag, err := b.db.Exec(testContext(t), `
UPDATE omnibridge.hook_events SET status = 'processed', processed_at = now()
WHERE id = $1 AND status = 'pending'`, id)
		require.NoError(t, err)
		return tag.RowsAffected() == 1
	})
	fault.Remove()

	// The next ping comes at most broker_backoff.max (+25%) later and takes
	// at most a dial and a request; twice that is plenty.
	bound := 2 * (cfg.BrokerBackoff.Max*5/4 + kc.DialTimeout + kc.RequestTimeout)
	deadline := time.Now().Add(bound)
	for {
		err := c.Ready(testContext(t))
		backingOff := value(t, c.m.brokerBackoff)
		if err == nil && backingOff == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after the cluster came back with nothing to probe: Ready: %v, broker_backoff %v", bound, err, backingOff)
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Zero(t, value(t, c.m.backoffDelay))
	require.Equal(t, 1.0, value(t, c.m.outages), "failed probes are one outage")
	require.Zero(t, value(t, c.m.published), "the event was delivered elsewhere")

	// The coordinator publishes again as usual.
	b.insert(t, 5, 5)
	require.NoError(t, b.st.Notify(testContext(t)))
	waitFor(t, "new events delivered", func() bool { return b.counts(t)[store.EventProcessed] == 6 })
	require.Equal(t, 1.0, value(t, c.m.outages))
}

// An event whose record is just over the producer's batch limit can never be
// published: it is dead after its first attempt, with the reason in its
// error, instead of failing every attempt of the retry schedule. An event of
// the same resource just under the limit is delivered.
func TestOversizedEventDeadAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := testConfig()
	require.Greater(t, cfg.Retry.MaxAttempts, 1)

	// payload returns a payload that makes the record of an event like ev
	// exactly size bytes as a batch of its own. The stored event's
	// created_at may print up to 7 bytes shorter than ev's (trailing zeros
	// of its microseconds are cut), hence the margins below.
	ev := store.HookEvent{
		ID: uuid.New(), Source: "github", Action: "push", Resource: "repository", ResourceID: "big",
		CreatedAt: time.Date(2025, 3, 4, 4, 6, 7, 891234000, time.UTC),
	}
	payload := func(size int) json.RawMessage {
		k := size - 1000
		for range 8 {
			ev.Payload = json.RawMessage(`{"x": "` + strings.Repeat("x", k) + `"}`)
			m, err := message(&ev)
			require.NoError(t, err)
			d := size - kafka.BatchBytes(m)
			if d == 0 {
				return ev.Payload
			}
			k += d
		}
		t.Fatalf("no payload makes a record of %d bytes", size)
		return nil
	}
	const margin = 16
	res, err := b.st.InsertEvents(testContext(t), []store.NewEvent{
		{Source: ev.Source, Action: ev.Action, Resource: ev.Resource, ResourceID: ev.ResourceID, Payload: payload(kafka.MaxBatchBytes + margin)},
		{Source: ev.Source, Action: ev.Action, Resource: ev.Resource, ResourceID: ev.ResourceID, Payload: payload(kafka.MaxBatchBytes - margin)},
	})
	require.NoError(t, err)
	over, under := res[0].ID, res[1].ID

	c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), true)
	start(t, c)
	final := b.waitSettled(t)
	require.Equal(t, 1, final[store.EventDead])
	require.Equal(t, 1, final[store.EventProcessed])

	e, err := b.st.GetEvent(testContext(t), over)
	require.NoError(t, err)
	require.Equal(t, store.EventDead, e.Status)
	require.Equal(t, 1, e.RetryCount, "one attempt, not %d", cfg.Retry.MaxAttempts)
	require.Len(t, e.ProcessingErrors, 1)
	require.Contains(t, e.ProcessingErrors[0], "MESSAGE_TOO_LARGE")
	require.Contains(t, e.ProcessingErrors[0], fmt.Sprintf("over the producer's limit of %d bytes", kafka.MaxBatchBytes))
	ms := b.eventMetrics(t, over)
	require.Len(t, ms, 1)
	require.False(t, ms[0].Success)
	require.NotNil(t, ms[0].Error)
	require.Contains(t, *ms[0].Error, "MESSAGE_TOO_LARGE")

	require.Equal(t, 1.0, value(t, c.m.dead))
	require.Equal(t, 1.0, value(t, c.m.failed))
	require.Equal(t, 1.0, value(t, c.m.published))
	require.Zero(t, value(t, c.m.outages))
	rec := b.readRecords(t, 1)[0]
	require.Equal(t, under.String(), header(rec, HeaderEventID))
	require.Greater(t, len(rec.Value), kafka.MaxBatchBytes-1000)
}

// The broker process is gone for a while (connections refused), then
// restarted on the same address and data directory: the same outcome.
func TestBrokerGoneAndBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, kafka.WithClusterOptions(kfake.DataDir(dir)))
	addr := b.broker.Addrs()[0]
	c := b.newCoordinator(t, testConfig(), b.producer(t, b.kafkaConfig()), true)
	start(t, c)
	b.insert(t, 10, 2)
	waitFor(t, "first events delivered", func() bool { return b.counts(t)[store.EventProcessed] == 10 })

	b.broker.Close()
	const n = 200
	b.insert(t, n, 20)
	require.NoError(t, b.st.Notify(testContext(t)))
	waitFor(t, "the coordinator backing off", func() bool { return value(t, c.m.brokerBackoff) == 1 })
	require.Error(t, c.Ready(testContext(t)))
	time.Sleep(2 * time.Second) // several probes fail

	p := mustPort(t, addr)
	nb, err := kafka.StartBroker(kafka.WithPorts(p), kafka.WithClusterOptions(kfake.DataDir(dir)))
	if err != nil {
		t.Skipf("port %d was taken meanwhile: %v", p, err)
	}
	t.Cleanup(nb.Close)
	b.broker = nb

	final := b.waitSettled(t)
	require.Equal(t, n+10, final[store.EventProcessed])
	requireAttemptsKept(t, b)
	require.Zero(t, value(t, c.m.dead))
	b.readRecords(t, n+10)
}

// requireAttemptsKept checks that an outage did not burn the events'
// attempts: at most the batch in flight when the cluster came back may have
// spent one (its records partly acknowledged, partly failed broker-wide).
func requireAttemptsKept(t *testing.T, b *bundle) {
	t.Helper()
	var maxRetries, spent int
	require.NoError(t, b.db.QueryRow(testContext(t), `
SELECT coalesce(max(retry_count), 0), count(*) FILTER (WHERE retry_count > 0)
FROM omnibridge.hook_events`).Scan(&maxRetries, &spent))
	require.LessOrEqual(t, maxRetries, 1, "an event spent several attempts on the outage")
	require.LessOrEqual(t, spent, testConfig().BatchSize/2, "more events spent an attempt than a minority of one batch")
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	return p
}
