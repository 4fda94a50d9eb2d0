package kafka

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

// gather returns every sample of the registry as name{labels} → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+",count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, WithPartitions(1))
	reg := prometheus.NewRegistry()
	p, err := NewProducer(testContext(t), b.Config(), testLogger(t), reg)
	require.NoError(t, err)
	ctx := testContext(t)

	requireAllNil(t, p.Publish(ctx, messages(25, 5)))
	// Every produce request is refused: on a loaded machine the four
	// records may go out in more than one.
	fault := failProduce(b.Cluster(), kerr.MessageTooLarge.Code, true)
	errs := p.Publish(ctx, messages(4, 1))
	fault.Stop()
	for _, err := range errs {
		require.ErrorIs(t, err, kerr.MessageTooLarge)
	}

	got := gather(t, reg)
	require.Equal(t, 25.0, got["omnibridge_kafka_records_produced_total"])
	require.Equal(t, 25.0, got["omnibridge_kafka_produce_latency_seconds,count"])
	require.Equal(t, 4.0, got["omnibridge_kafka_records_failed_total,kind=record,reason=MESSAGE_TOO_LARGE"])
	// franz-go reports a written batch from its response handling, which
	// may run after the records' promises have returned Publish.
	require.Eventually(t, func() bool {
		got := gather(t, reg)
		return got["omnibridge_kafka_produce_batches_total"] >= 1 && got["omnibridge_kafka_produce_bytes_total"] > 0
	}, 10*time.Second, 10*time.Millisecond, "produce_batches_total and produce_bytes_total count the written batches")
	require.Equal(t, 0.0, got["omnibridge_kafka_buffered_records"])
	require.Contains(t, got, "omnibridge_kafka_broker_connect_errors_total")

	// One producer per registry; after Close, the next one may register.
	_, err = NewProducer(testContext(t), b.Config(), testLogger(t), reg)
	require.ErrorContains(t, err, "already registered")
	p.Close()
	q, err := NewProducer(testContext(t), b.Config(), testLogger(t), reg)
	require.NoError(t, err)
	q.Close()
	require.Empty(t, gather(t, reg), "Close unregisters")
}
