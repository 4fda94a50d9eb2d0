package hookreceiver

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metricsPrefix starts the name of every metric of the receiver.
const metricsPrefix = "omnibridge_hookreceiver_"

// unknownSourceLabel is the source label of requests to no configured source,
// so that made-up paths cannot create label values.
const unknownSourceLabel = "_unknown"

// metrics are the receiver's Prometheus collectors.
type metrics struct {
	requests       *prometheus.CounterVec   // source, status
	duration       *prometheus.HistogramVec // source
	authFailures   *prometheus.CounterVec   // source, code
	batchSize      prometheus.Histogram
	commitDuration prometheus.Histogram
	batchFailures  *prometheus.CounterVec // reason
	rejectedRows   prometheus.Counter
	notifyFailures prometheus.Counter
	queueDepth     prometheus.GaugeFunc
	queueBytes     prometheus.GaugeFunc
}

func newMetrics(q *queue) *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsPrefix + "requests_total",
			Help: "Webhook requests by source and HTTP status (499: the client went away before the answer).",
		}, []string{"source", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricsPrefix + "request_duration_seconds",
			Help:    "Time from a webhook request's start to its answer, by source.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"source"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsPrefix + "auth_failures_total",
			Help: "Requests refused for a missing or bad signature or token, by source and reason.",
		}, []string{"source", "code"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    metricsPrefix + "batch_size",
			Help:    "Events per group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 … 4096
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    metricsPrefix + "commit_duration_seconds",
			Help:    "Time of one successful batch insert (one transaction).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}),
		batchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsPrefix + "batch_failures_total",
			Help: "Batch inserts that failed, by reason (unavailable, database_error, rows: split to isolate a bad row).",
		}, []string{"reason"}),
		rejectedRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricsPrefix + "rejected_rows_total",
			Help: "Events isolated from their batch and refused (400) because the database or the store refused that row.",
		}),
		notifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricsPrefix + "notify_failures_total",
			Help: "NOTIFYs after a commit that failed (the coordinator then finds the events by polling).",
		}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricsPrefix + "queue_depth",
			Help: "Events waiting for a writer.",
		}, func() float64 { return float64(len(q.ch)) }),
		queueBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricsPrefix + "queue_bytes",
			Help: "Bytes held by queued and committing events (bounded by batch.queue_bytes).",
		}, func() float64 { return float64(q.bytes.Load()) }),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.authFailures, m.batchSize, m.commitDuration,
		m.batchFailures, m.rejectedRows, m.notifyFailures, m.queueDepth, m.queueBytes}
}

// register adds every collector to reg, or none: a registry that already has
// a receiver's metrics is an error (two receivers need two registries).
func (m *metrics) register(reg prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("hook receiver: register metrics: %w (each receiver needs its own registry)", err)
			}
			return fmt.Errorf("hook receiver: register metrics: %w", err)
		}
		done = append(done, c)
	}
	return nil
}
