package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestPublishReadBack(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	ctx := testContext(t)

	msgs := messages(300, 17)
	msgs[5].Key = nil              // unkeyed
	msgs[6].Headers = nil          // no headers
	msgs[7].Value = []byte{}       // empty value
	msgs[8].Value = []byte{0, 255} // binary
	requireAllNil(t, p.Publish(ctx, msgs))

	recs, err := ReadAll(ctx, b.Config(), len(msgs))
	require.NoError(t, err)
	require.Len(t, recs, len(msgs))

	want := make(map[string]Message, len(msgs))
	for _, m := range msgs {
		want[string(m.Value)] = m
	}
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		m, ok := want[string(r.Value)]
		require.True(t, ok, "unexpected record %q", r.Value)
		require.False(t, seen[string(r.Value)], "record %q read twice", r.Value)
		seen[string(r.Value)] = true
		require.Equal(t, DefaultTopic, r.Topic)
		require.True(t, bytes.Equal(m.Key, r.Key), "key of %q: want %q, got %q", r.Value, m.Key, r.Key)
		require.Equal(t, len(m.Headers), len(r.Headers))
		for i, h := range m.Headers {
			require.Equal(t, h.Key, r.Headers[i].Key)
			require.Equal(t, h.Value, r.Headers[i].Value)
		}
		require.False(t, r.Timestamp.IsZero())
		require.GreaterOrEqual(t, r.Offset, int64(0))
	}
}

func TestPublishKeepsOrderPerKey(t *testing.T) {
	t.Parallel()
	b := startBroker(t, WithPartitions(4))
	p := newProducer(t, b.Config())
	ctx := testContext(t)

	const keys, rounds, perRound = 12, 5, 120
	n := 0
	for range rounds {
		msgs := make([]Message, perRound)
		for i := range msgs {
			msgs[i] = Message{Key: fmt.Appendf(nil, "resource-%d", n%keys), Value: strconv.AppendInt(nil, int64(n), 10)}
			n++
		}
		requireAllNil(t, p.Publish(ctx, msgs))
	}

	recs, err := ReadAll(ctx, b.Config(), n)
	require.NoError(t, err)
	last := make(map[string]int64)
	partition := make(map[string]int32)
	for _, r := range recs {
		seq, err := strconv.ParseInt(string(r.Value), 10, 64)
		require.NoError(t, err)
		k := string(r.Key)
		if prev, ok := last[k]; ok {
			require.Greater(t, seq, prev, "key %s out of order", k)
			require.Equal(t, partition[k], r.Partition, "key %s moved partition", k)
		}
		last[k], partition[k] = seq, r.Partition
	}
	require.Len(t, last, keys)
}

func TestPublishConcurrentCallers(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	ctx := testContext(t)

	const callers, each = 8, 100
	var wg sync.WaitGroup
	errs := make([][]error, callers)
	for c := range callers {
		wg.Go(func() {
			msgs := make([]Message, each)
			for i := range msgs {
				msgs[i] = Message{Key: fmt.Appendf(nil, "c%d", c), Value: fmt.Appendf(nil, "%d-%d", c, i)}
			}
			errs[c] = p.Publish(ctx, msgs)
		})
	}
	wg.Wait()
	for _, e := range errs {
		requireAllNil(t, e)
	}
	recs, err := ReadAll(ctx, b.Config(), callers*each)
	require.NoError(t, err)
	require.Len(t, recs, callers*each)
}

func TestProducerIsIdempotentWithAcksAll(t *testing.T) {
	t.Parallel()
	b := startBroker(t)

	type seen struct {
		acks       int16
		producerID int64
		epoch      int16
	}
	var (
		mu   sync.Mutex
		reqs []seen
	)
	c := b.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				var batch kmsg.RecordBatch
				if err := batch.ReadFrom(rp.Records); err != nil {
					panic(err)
				}
				reqs = append(reqs, seen{req.Acks, batch.ProducerID, batch.ProducerEpoch})
			}
		}
		return nil, nil, false // observe only; the cluster answers
	})

	p := newProducer(t, b.Config())
	require.Equal(t, kgo.AllISRAcks(), p.client.OptValue(kgo.RequiredAcks))
	require.Equal(t, false, p.client.OptValue(kgo.DisableIdempotentWrite))
	requireAllNil(t, p.Publish(testContext(t), messages(50, 5)))

	id, _, err := p.client.ProducerID(testContext(t))
	require.NoError(t, err)
	require.GreaterOrEqual(t, id, int64(0))

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, reqs)
	for _, s := range reqs {
		require.Equal(t, int16(-1), s.acks, "acks=all")
		require.Equal(t, id, s.producerID, "batches carry the producer ID")
		require.GreaterOrEqual(t, s.epoch, int16(0))
	}
}

func TestPublishOversizedRecordFailsAlone(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	ctx := testContext(t)

	msgs := messages(20, 20) // distinct keys: the big one shares no partition order with the rest
	msgs[7].Value = bytes.Repeat([]byte("x"), 2<<20)
	errs := p.Publish(ctx, msgs)
	for i, err := range errs {
		if i == 7 {
			require.ErrorIs(t, err, kerr.MessageTooLarge)
			require.False(t, IsBrokerWide(err), "an oversized record is its own problem: %v", err)
			continue
		}
		require.NoError(t, err, "message %d", i)
	}
	recs, err := ReadAll(ctx, b.Config(), len(msgs)-1)
	require.NoError(t, err)
	for _, r := range recs {
		require.Less(t, len(r.Value), 1<<20)
	}
}

// sized returns m with its value grown (or shrunk) so that BatchBytes(m) is
// exactly n.
func sized(t testing.TB, m Message, n int) Message {
	t.Helper()
	for range 8 { // the varint lengths settle within a step or two
		d := n - BatchBytes(m)
		if d == 0 {
			return m
		}
		m.Value = bytes.Repeat([]byte("x"), max(len(m.Value)+d, 0))
	}
	t.Fatalf("no value makes BatchBytes %d", n)
	return m
}

// A record that does not fit in a batch of its own fails at once with a
// permanent error naming the limit, while one at the limit is acknowledged,
// and so are the records after it, of the same key too.
func TestPublishRecordTooLargeIsPermanent(t *testing.T) {
	t.Parallel()
	b := startBroker(t, WithPartitions(1))
	reg := prometheus.NewRegistry()
	p, err := NewProducer(testContext(t), b.Config(), testLogger(t), reg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	ctx := testContext(t)

	msgs := messages(6, 1) // one key: the oversized record shares the partition with the rest
	msgs[1] = sized(t, msgs[1], MaxBatchBytes+1)
	msgs[3] = sized(t, msgs[3], MaxBatchBytes)
	errs := p.Publish(ctx, msgs)
	for i, err := range errs {
		if i == 1 {
			require.ErrorIs(t, err, ErrRecordTooLarge)
			require.ErrorIs(t, err, kerr.MessageTooLarge)
			require.True(t, IsPermanent(err))
			require.False(t, IsBrokerWide(err))
			require.ErrorContains(t, err, fmt.Sprintf("%d bytes as a batch of its own, over the producer's limit of %d bytes", MaxBatchBytes+1, MaxBatchBytes))
			continue
		}
		require.NoError(t, err, "message %d", i)
	}
	recs, err := ReadAll(ctx, b.Config(), len(msgs)-1)
	require.NoError(t, err)
	require.Len(t, recs, len(msgs)-1)
	require.Len(t, recs[2].Value, len(msgs[3].Value), "the record at the limit is written whole")
	require.Equal(t, 1.0, gather(t, reg)["omnibridge_kafka_records_failed_total,kind=record,reason=MESSAGE_TOO_LARGE"])
}

// BatchBytes measures as franz-go does before it knows the broker's produce
// version, which is its largest measure: a fresh client takes a record of
// MaxBatchBytes and refuses one byte more, so Publish never lets through a
// record the client would refuse, nor refuses one it would take.
func TestBatchBytesMatchesClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	ctx := testContext(t)
	produce := func(m Message) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(DefaultTopic),
			kgo.ProducerBatchMaxBytes(MaxBatchBytes))
		require.NoError(t, err)
		defer cl.Close()
		rec := &kgo.Record{Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		return cl.ProduceSync(ctx, rec).FirstErr()
	}
	shapes := map[string]Message{
		"no key, no headers": {},
		"key and headers":    messages(1, 1)[0],
		"long key":           {Key: bytes.Repeat([]byte("k"), 300)},
	}
	for name, m := range shapes {
		require.NoError(t, produce(sized(t, m, MaxBatchBytes)), name)
		require.ErrorIs(t, produce(sized(t, m, MaxBatchBytes+1)), kerr.MessageTooLarge, name)
	}
}

func TestPublishEmpty(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	require.Empty(t, p.Publish(testContext(t), nil))
}

func TestPublishCanceledContext(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())

	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	errs := p.Publish(ctx, messages(10, 3))
	require.Len(t, errs, 10)
	for _, err := range errs {
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, IsBrokerWide(err), "a canceled publish blames neither broker nor record")
	}
}

func TestPublishAfterClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p, err := NewProducer(testContext(t), b.Config(), testLogger(t), nil)
	require.NoError(t, err)
	requireAllNil(t, p.Publish(testContext(t), messages(3, 3)))
	p.Close()
	p.Close() // idempotent
	for _, err := range p.Publish(testContext(t), messages(3, 3)) {
		require.ErrorIs(t, err, kgo.ErrClientClosed)
		require.True(t, IsBrokerWide(err))
	}
}

func TestNewProducerRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := NewProducer(testContext(t), Config{}, nil, nil)
	require.ErrorIs(t, err, ErrNoBrokers)

	_, err = NewProducer(testContext(t), Config{Brokers: []string{"localhost:9092"}, Compression: "brotli"}, nil, nil)
	var fe *FieldError
	require.True(t, errors.As(err, &fe), "got %v", err)
	require.Equal(t, "compression", fe.Field)
}

func TestPing(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	require.NoError(t, p.Ping(testContext(t)))

	cfg := b.Config()
	cfg.Topic = "no-such-topic"
	q := newProducer(t, cfg)
	err := q.Ping(testContext(t))
	require.ErrorIs(t, err, kerr.UnknownTopicOrPartition)
	require.True(t, IsBrokerWide(err))
}

// More records than the client may buffer: Publish waits for room instead of
// failing or deadlocking.
func TestPublishMoreThanBuffer(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cfg := b.Config()
	cfg.MaxBufferedRecords = 50
	cfg.Linger = time.Second // a long linger must not hold a full buffer
	p := newProducer(t, cfg)
	ctx := testContext(t)
	requireAllNil(t, p.Publish(ctx, messages(400, 9)))
	recs, err := ReadAll(ctx, cfg, 400)
	require.NoError(t, err)
	require.Len(t, recs, 400)
}
