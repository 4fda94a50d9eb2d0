package kafka

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

const metricsNamespace = "omnibridge_kafka"

// metrics are the producer's Prometheus collectors. A nil *metrics records
// nothing, so the producer calls it unconditionally.
type metrics struct {
	reg prometheus.Registerer

	produced      prometheus.Counter
	failed        *prometheus.CounterVec
	latency       prometheus.Histogram
	batches       prometheus.Counter
	bytes         prometheus.Counter
	connectErrors prometheus.Counter
	buffered      prometheus.GaugeFunc
}

// newMetrics builds the producer's collectors, or returns nil for a nil reg.
// buffered reports the records buffered in the client; it is first called
// after register.
func newMetrics(reg prometheus.Registerer, buffered func() float64) *metrics {
	if reg == nil {
		return nil
	}
	return &metrics{
		reg: reg,
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "records_produced_total",
			Help:      "Records acknowledged by the brokers (acks=all).",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "records_failed_total",
			Help: "Records that Publish reported as failed, by kind (broker: the cluster is unavailable; " +
				"record: the record itself was refused) and reason (Kafka error name or client-side cause).",
		}, []string{"kind", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Name:      "produce_latency_seconds",
			Help:      "Time from handing a record to Publish to its acknowledgement, for acknowledged records.",
			Buckets:   prometheus.ExponentialBucketsRange(0.0005, 60, 18),
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "produce_batches_total",
			Help:      "Record batches written to and acknowledged by the brokers.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "produce_bytes_total",
			Help:      "Bytes of acknowledged record batches as sent, after compression.",
		}),
		connectErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "broker_connect_errors_total",
			Help:      "Failed attempts to open a connection to a broker (dial, TLS or SASL).",
		}),
		buffered: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Name:      "buffered_records",
			Help:      "Records buffered in the producer and not yet acknowledged.",
		}, buffered),
	}
}

// register registers the collectors, all or none.
func (m *metrics) register() error {
	if m == nil {
		return nil
	}
	var registered []prometheus.Collector
	for _, c := range m.collectors() {
		if err := m.reg.Register(c); err != nil {
			for _, r := range registered {
				m.reg.Unregister(r)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return errors.New("kafka: the producer's metrics are already registered: use one Registerer per producer, " +
					"or wrap it with prometheus.WrapRegistererWith to tell the producers apart")
			}
			return fmt.Errorf("kafka: register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	return nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.produced, m.failed, m.latency, m.batches, m.bytes, m.connectErrors, m.buffered}
}

// unregister removes the collectors, so that a later producer can register
// on the same Registerer.
func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}

// record counts one Publish outcome: err is nil for an acknowledged record.
func (m *metrics) record(err error, took time.Duration) {
	if m == nil {
		return
	}
	if err == nil {
		m.produced.Inc()
		m.latency.Observe(took.Seconds())
		return
	}
	kind := "record"
	if IsBrokerWide(err) {
		kind = "broker"
	}
	m.failed.WithLabelValues(kind, failureReason(err)).Inc()
}

// hooks are the franz-go hooks that feed what only the client sees to the
// metrics (nil: none) and to onConnect.
type hooks struct {
	m         *metrics
	onConnect func(error)
}

var (
	_ kgo.HookProduceBatchWritten = hooks{}
	_ kgo.HookBrokerConnect       = hooks{}
)

func (h hooks) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, pm kgo.ProduceBatchMetrics) {
	if h.m == nil {
		return
	}
	h.m.batches.Inc()
	h.m.bytes.Add(float64(pm.CompressedBytes))
}

func (h hooks) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.onConnect(err)
	if err != nil && h.m != nil {
		h.m.connectErrors.Inc()
	}
}
