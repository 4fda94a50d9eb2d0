package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

func TestIsOutage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		brokerWide, total int
		want              bool
	}{
		{0, 0, false},
		{0, 10, false},
		{1, 1, true},
		{1, 2, true},
		{1, 3, false},
		{4, 10, false},
		{5, 10, true},
		{10, 10, true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, isOutage(tc.brokerWide, tc.total), "%d of %d", tc.brokerWide, tc.total)
	}
}

// settle sorts each outcome by the documented rule.
func TestSettle(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("kafka: publish to %q: %w", "t", err) }
	recordErr := wrap(kerr.MessageTooLarge)
	brokerErr := wrap(kafka.ErrDeliveryTimeout)
	canceled := wrap(context.Canceled)
	tooLarge := wrap(fmt.Errorf("%w: 2000000 bytes: %w", kafka.ErrRecordTooLarge, kerr.MessageTooLarge))

	cases := []struct {
		name                       string
		errs                       []error
		canceled                   bool
		done, failed, released     int
		rejected                   int
		outage                     bool
		reason                     string
		failedHasBrokerWideMessage bool
	}{
		{name: "all acknowledged", errs: []error{nil, nil, nil}, done: 3},
		{name: "record errors count", errs: []error{nil, recordErr, nil, recordErr}, done: 2, failed: 2},
		{name: "all broker-wide is an outage", errs: []error{brokerErr, brokerErr}, released: 2, outage: true, reason: releaseBroker},
		{name: "half broker-wide is an outage", errs: []error{nil, brokerErr, recordErr, brokerErr}, done: 1, failed: 1, released: 2, outage: true, reason: releaseBroker},
		{name: "a minority broker-wide counts", errs: []error{nil, nil, brokerErr, nil, recordErr}, done: 3, failed: 2, failedHasBrokerWideMessage: true},
		{name: "shutdown releases", errs: []error{nil, canceled, canceled}, canceled: true, done: 1, released: 2, reason: releaseShutdown},
		{name: "shutdown wins over broker-wide", errs: []error{brokerErr, canceled}, canceled: true, released: 2, reason: releaseShutdown},
		{name: "too large is rejected", errs: []error{nil, tooLarge, recordErr}, done: 1, failed: 1, rejected: 1},
		{name: "too large is rejected on shutdown too", errs: []error{tooLarge, canceled}, canceled: true, rejected: 1, released: 1, reason: releaseShutdown},
		{name: "too large says nothing about the cluster", errs: []error{tooLarge, tooLarge, brokerErr}, rejected: 2, released: 1, outage: true, reason: releaseBroker},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &Coordinator{m: newMetrics(), log: slog.New(slog.DiscardHandler)}
			b := &batch{claimID: uuid.New(), claimedAt: time.Now().Add(-25 * time.Millisecond)}
			for range tc.errs {
				b.events = append(b.events, store.HookEvent{ID: uuid.New(), CreatedAt: time.Now().Add(-time.Second)})
			}
			c.settle(b, tc.errs, time.Now(), tc.canceled)
			require.Len(t, b.done, tc.done)
			require.Len(t, b.failed, tc.failed)
			require.Len(t, b.rejected, tc.rejected)
			for _, f := range b.rejected {
				require.Contains(t, f.Err, "MESSAGE_TOO_LARGE")
			}
			require.Len(t, b.release, tc.released)
			require.Equal(t, tc.outage, b.outage)
			if tc.released > 0 {
				require.Equal(t, tc.reason, b.releaseReason)
			}
			for _, d := range b.done {
				require.GreaterOrEqual(t, d.ProcessingTimeMS, 25.0)
				require.False(t, d.CreatedAt.IsZero())
			}
			for _, f := range b.failed {
				require.NotEmpty(t, f.Err)
				require.GreaterOrEqual(t, f.ProcessingTimeMS, 25.0)
			}
			if tc.failedHasBrokerWideMessage {
				require.Contains(t, b.failed[len(b.failed)-1].Err, "delivery_timeout")
			}
		})
	}
}

// One partition of four has no usable leader for a while (a broker-wide
// kind of error, on a minority of each batch): the other partitions keep
// flowing and never spend an attempt; the affected events do spend attempts
// while they are a minority of their batch (once only they remain, their
// batches are outages and they wait without spending any), and all are
// delivered once the partition is back.
func TestPartitionOutageIsCountedPerEvent(t *testing.T) {
	t.Parallel()
	const partitions, bad = 4, int32(2)
	b := setup(t, kafka.WithPartitions(partitions))

	// Nine keys on the bad partition and twenty-seven elsewhere: a quarter
	// of each batch.
	part := kgo.StickyKeyPartitioner(nil).ForTopic(kafka.DefaultTopic)
	var badKeys, goodKeys []string
	for i := 0; len(badKeys) < 9 || len(goodKeys) < 27; i++ {
		k := fmt.Sprintf("repo-%d", i)
		if int32(part.Partition(&kgo.Record{Key: []byte(k)}, partitions)) == bad {
			if len(badKeys) < 9 {
				badKeys = append(badKeys, k)
			}
		} else if len(goodKeys) < 27 {
			goodKeys = append(goodKeys, k)
		}
	}
	keys := append(goodKeys, badKeys...)
	evs := make([]store.NewEvent, 144)
	for i := range evs {
		evs[i] = store.NewEvent{Source: "s", Action: "a", Resource: "r", ResourceID: keys[i%len(keys)], Payload: []byte(`{}`)}
	}
	_, err := b.st.InsertEvents(testContext(t), evs)
	require.NoError(t, err)

	fault := b.broker.Cluster().Fault(kfake.Fault{
		Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.DefaultTopic, Partitions: []int32{bad},
		Err: kerr.NotEnoughReplicas, Count: -1,
	})
	defer fault.Remove()
	cfg := testConfig()
	cfg.Retry.MaxAttempts = 100 // the test ends the fault long before
	kc := b.kafkaConfig()
	kc.DeliveryTimeout = time.Second
	c := b.newCoordinator(t, cfg, b.producer(t, kc), true)
	start(t, c)

	waitFor(t, "events of the healthy partitions delivered", func() bool {
		return b.counts(t)[store.EventProcessed] == 144-36
	})
	require.NotZero(t, value(t, c.m.failed), "the first batch's minority of broker-wide failures counted")
	fault.Remove()
	final := b.waitSettled(t)
	require.Equal(t, 144, final[store.EventProcessed])
	require.Zero(t, value(t, c.m.dead))

	var healthyRetried int
	require.NoError(t, b.db.QueryRow(testContext(t),
		`SELECT count(*) FROM omnibridge.hook_events WHERE retry_count > 0 AND NOT resource_id = ANY ($1)`,
		badKeys).Scan(&healthyRetried))
	require.Zero(t, healthyRetried)
	waitFor(t, "ready", func() bool { return c.Ready(testContext(t)) == nil })
}
