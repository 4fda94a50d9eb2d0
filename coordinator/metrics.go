package coordinator

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "omnibridge"
const metricsSubsystem = "coordinator"

// Reasons for released events (the released_total label).
const (
	releaseBroker   = "broker_outage"
	releaseShutdown = "shutdown"
)

type metrics struct {
	published     prometheus.Counter
	failed        prometheus.Counter
	dead          prometheus.Counter
	released      *prometheus.CounterVec
	stale         prometheus.Counter
	batchSize     prometheus.Histogram
	ackLatency    prometheus.Histogram
	deliveryLag   prometheus.Histogram
	lag           prometheus.Gauge
	backlog       *prometheus.GaugeVec
	brokerBackoff prometheus.Gauge
	backoffDelay  prometheus.Gauge
	outages       prometheus.Counter
	dbErrors      *prometheus.CounterVec
	listening     prometheus.Gauge
}

func newMetrics() *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help, Buckets: buckets,
		})
	}
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts(opts("published_total",
			"Events whose record Kafka acknowledged."))),
		failed: prometheus.NewCounter(prometheus.CounterOpts(opts("failed_total",
			"Publication attempts that failed and counted against the event (retried later or dead)."))),
		dead: prometheus.NewCounter(prometheus.CounterOpts(opts("dead_total",
			"Events dead-lettered after their last allowed attempt, or at once when their record can never be published (too large)."))),
		released: prometheus.NewCounterVec(prometheus.CounterOpts(opts("released_total",
			"Claimed events given back without spending an attempt, by reason (broker_outage, shutdown).")), []string{"reason"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts(opts("stale_claims_total",
			"Acknowledged or failed events whose outcome was ignored because their claim had expired meanwhile; they are published again (raise lease_timeout if this grows)."))),
		batchSize: hist("batch_size", "Events per non-empty claim.",
			[]float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}),
		ackLatency: hist("ack_latency_seconds", "Time from claiming an event to Kafka acknowledging its record.",
			prometheus.ExponentialBuckets(0.001, 2, 16)),
		deliveryLag: hist("delivery_latency_seconds", "Time from the event's receipt (created_at) to Kafka acknowledging its record.",
			prometheus.ExponentialBuckets(0.002, 2.5, 16)),
		lag: prometheus.NewGauge(prometheus.GaugeOpts(opts("lag_seconds",
			"Age of the oldest pending event, 0 when none is pending (refreshed every lag_interval)."))),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("backlog_events",
			"Events not yet delivered, by status (pending, processing, dead), refreshed every lag_interval.")), []string{"status"}),
		brokerBackoff: prometheus.NewGauge(prometheus.GaugeOpts(opts("broker_backoff",
			"1 while the coordinator backs off from a Kafka outage, else 0."))),
		backoffDelay: prometheus.NewGauge(prometheus.GaugeOpts(opts("broker_backoff_delay_seconds",
			"The current broker backoff delay; 0 outside an outage."))),
		outages: prometheus.NewCounter(prometheus.CounterOpts(opts("broker_outages_total",
			"Kafka outages the coordinator backed off from."))),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts(opts("database_errors_total",
			"Failed database statements, by operation (claim, complete, fail, release, reclaim, lag).")), []string{"op"}),
		listening: prometheus.NewGauge(prometheus.GaugeOpts(opts("listen_connected",
			"1 while the LISTEN connection is up, else 0 (the coordinator then only polls)."))),
	}
	for _, r := range []string{releaseBroker, releaseShutdown} {
		m.released.WithLabelValues(r)
	}
	for _, op := range []string{"claim", "complete", "fail", "release", "reclaim", "lag"} {
		m.dbErrors.WithLabelValues(op)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.published, m.failed, m.dead, m.released, m.stale, m.batchSize, m.ackLatency, m.deliveryLag,
		m.lag, m.backlog, m.brokerBackoff, m.backoffDelay, m.outages, m.dbErrors, m.listening,
	}
}

// register registers every metric on reg, or none: on a failure it
// unregisters those already registered.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := m.collectors()
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return fmt.Errorf("coordinator: metrics already registered (one coordinator per registry): %w", err)
			}
			return fmt.Errorf("coordinator: register metrics: %w", err)
		}
	}
	return nil
}
