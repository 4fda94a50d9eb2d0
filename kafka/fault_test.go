package kafka

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// faultConfig is a configuration with a short delivery timeout, so that
// persistent faults fail records quickly.
func faultConfig(b *Broker) Config {
	cfg := b.Config()
	cfg.DeliveryTimeout = 2 * time.Second
	cfg.RequestTimeout = 2 * time.Second
	cfg.DialTimeout = time.Second
	return cfg
}

// publishBound is the longest Publish may take with faultConfig: the
// delivery timeout plus Publish's own margins, plus slack for a loaded
// machine. It is a correctness bound (Publish must not hang), not a
// performance assertion.
const publishBound = 2*time.Second + publishGrace + abandonAfter + 10*time.Second

func TestPublishInjectedProduceErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        *kerr.Error
		keep       bool // fail every produce request, not just the first
		wantFail   bool
		brokerWide bool
		timeout    bool // the failure is the delivery timeout (a retriable error that persists)
	}{
		// Retriable errors that clear up: the client retries, the caller
		// sees success.
		{name: "not leader once", err: kerr.NotLeaderForPartition, wantFail: false},
		{name: "request timed out once", err: kerr.RequestTimedOut, wantFail: false},
		{name: "not enough replicas once", err: kerr.NotEnoughReplicas, wantFail: false},
		// The same errors, persistent: delivery times out, broker-wide.
		{name: "not leader persistent", err: kerr.NotLeaderForPartition, keep: true, wantFail: true, brokerWide: true, timeout: true},
		{name: "leader not available persistent", err: kerr.LeaderNotAvailable, keep: true, wantFail: true, brokerWide: true, timeout: true},
		{name: "request timed out persistent", err: kerr.RequestTimedOut, keep: true, wantFail: true, brokerWide: true, timeout: true},
		{name: "not enough replicas persistent", err: kerr.NotEnoughReplicas, keep: true, wantFail: true, brokerWide: true, timeout: true},
		// Not retriable: fails at once. Every produce request is refused,
		// since the 40 records may go out in more than one.
		// About the cluster: broker-wide.
		{name: "topic authorization failed", err: kerr.TopicAuthorizationFailed, keep: true, wantFail: true, brokerWide: true},
		// About the records: per record.
		{name: "message too large", err: kerr.MessageTooLarge, keep: true, wantFail: true, brokerWide: false},
		{name: "invalid record", err: kerr.InvalidRecord, keep: true, wantFail: true, brokerWide: false},
		{name: "corrupt message", err: kerr.CorruptMessage, keep: true, wantFail: true, brokerWide: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, WithPartitions(1))
			p := newProducer(t, faultConfig(b))
			ctx := testContext(t)
			requireAllNil(t, p.Publish(ctx, messages(5, 5))) // connected, producer ID known

			fault := failProduce(b.Cluster(), tc.err.Code, tc.keep)
			start := time.Now()
			errs := p.Publish(ctx, messages(40, 4))
			took := time.Since(start)
			fault.Stop()
			require.Less(t, took, publishBound)
			require.GreaterOrEqual(t, fault.Hits(), 1, "the fault answered no request")

			for i, err := range errs {
				if !tc.wantFail {
					require.NoError(t, err, "message %d", i)
					continue
				}
				require.Error(t, err, "message %d: never success for a refused record", i)
				require.Equal(t, tc.brokerWide, IsBrokerWide(err), "message %d: %v", i, err)
				if tc.timeout {
					require.ErrorIs(t, err, ErrDeliveryTimeout)
				} else {
					require.ErrorIs(t, err, tc.err)
				}
			}

			// The fault is gone: the same producer delivers again.
			requireAllNil(t, p.Publish(ctx, messages(10, 4)))
			want := 15
			if !tc.wantFail {
				want += 40
			}
			recs, err := ReadAll(ctx, b.Config(), want)
			require.NoError(t, err)
			require.Len(t, recs, want)
		})
	}
}

// A fault on one partition fails only the records of that partition.
func TestPublishFaultOnOnePartition(t *testing.T) {
	t.Parallel()
	b := startBroker(t, WithPartitions(3))
	p := newProducer(t, faultConfig(b))
	ctx := testContext(t)
	requireAllNil(t, p.Publish(ctx, messages(30, 30)))

	h := b.Cluster().Fault(kfake.Fault{
		Keys:       []kmsg.Key{kmsg.Produce},
		Topic:      DefaultTopic,
		Partitions: []int32{1},
		Err:        kerr.InvalidRecord,
		Count:      -1,
	})
	defer h.Remove()
	msgs := messages(90, 30)
	errs := p.Publish(ctx, msgs)
	h.Remove()

	failedKeys, okKeys := map[string]bool{}, map[string]bool{}
	for i, err := range errs {
		k := string(msgs[i].Key)
		if err != nil {
			require.ErrorIs(t, err, kerr.InvalidRecord)
			require.False(t, IsBrokerWide(err))
			failedKeys[k] = true
		} else {
			okKeys[k] = true
		}
	}
	require.NotEmpty(t, failedKeys, "partition 1 got no record")
	require.NotEmpty(t, okKeys, "every partition failed")
	for k := range failedKeys {
		require.False(t, okKeys[k], "key %s both failed and succeeded: keys stay on one partition", k)
	}
	require.GreaterOrEqual(t, h.Hits(), 1)
}

// A broker that takes the request and never answers: Publish still returns
// within the delivery timeout, and never with success.
func TestPublishBrokerHangs(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cfg := faultConfig(b)
	cfg.RequestTimeout = 30 * time.Second // the connection alone would wait much longer
	p := newProducer(t, cfg)
	ctx := testContext(t)
	requireAllNil(t, p.Publish(ctx, messages(5, 5)))

	fault := failProduce(b.Cluster(), -1, true)
	start := time.Now()
	errs := p.Publish(ctx, messages(20, 4))
	took := time.Since(start)
	fault.Stop()
	require.Less(t, took, publishBound)
	for i, err := range errs {
		require.ErrorIs(t, err, ErrDeliveryTimeout, "message %d", i)
		require.True(t, IsBrokerWide(err))
	}
	requireAllNil(t, p.Publish(ctx, messages(5, 5)))
}

func TestPublishBrokerGone(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, faultConfig(b))
	ctx := testContext(t)
	requireAllNil(t, p.Publish(ctx, messages(5, 5)))

	b.Close()
	start := time.Now()
	errs := p.Publish(ctx, messages(50, 7))
	require.Less(t, time.Since(start), publishBound)
	for i, err := range errs {
		require.Error(t, err, "message %d: success reported with the broker gone", i)
		require.True(t, IsBrokerWide(err), "message %d: %v", i, err)
	}
	require.Error(t, p.Ping(ctx))
}

func TestProducerBrokerUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	cfg := Config{Brokers: []string{addr}, DeliveryTimeout: time.Second, RequestTimeout: time.Second, DialTimeout: time.Second}
	ctx := testContext(t)
	start := time.Now()
	p, err := NewProducer(ctx, cfg, testLogger(t), nil)
	require.NoError(t, err, "an unreachable cluster does not stop the producer from starting")
	defer p.Close()
	require.Less(t, time.Since(start), 15*time.Second)

	start = time.Now()
	err = p.Ping(ctx)
	require.Error(t, err)
	require.True(t, IsBrokerWide(err), "%v", err)
	require.Less(t, time.Since(start), 15*time.Second)

	start = time.Now()
	for _, err := range p.Publish(ctx, messages(10, 2)) {
		require.Error(t, err)
		require.True(t, IsBrokerWide(err), "%v", err)
	}
	require.Less(t, time.Since(start), 15*time.Second)
}

// The broker comes back after an outage: the same producer delivers again
// without being recreated.
func TestProducerRecoversWhenBrokerReturns(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	cfg := Config{Brokers: []string{ln.Addr().String()}, DeliveryTimeout: time.Second, RequestTimeout: time.Second, DialTimeout: time.Second}
	p, err := NewProducer(testContext(t), cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer p.Close()
	for _, err := range p.Publish(testContext(t), messages(3, 3)) {
		require.True(t, IsBrokerWide(err), "%v", err)
	}

	b, err := StartBroker(WithPorts(port))
	if err != nil {
		t.Skipf("port %d was taken meanwhile: %v", port, err)
	}
	defer b.Close()
	ctx := testContext(t)
	var errs []error
	for ctx.Err() == nil {
		errs = p.Publish(ctx, messages(3, 3))
		if errors.Join(errs...) == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	requireAllNil(t, errs)
	_, err = ReadAll(ctx, b.Config(), 3)
	require.NoError(t, err)
}
