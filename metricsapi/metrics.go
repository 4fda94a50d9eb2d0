package metricsapi

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	metricsNamespace = "omnibridge"
	metricsSubsystem = "metricsapi"
)

// metrics are the API's Prometheus collectors.
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
}

func newMetrics(routes []route) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "requests_total",
			Help: "Requests served, by route (its name, e.g. events_list) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "request_duration_seconds",
			Help:    "Time to serve a request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "auth_failures_total",
			Help: "Requests refused for a missing, malformed or invalid bearer token, by reason.",
		}, []string{"reason"}),
	}
	for _, reason := range []string{AuthMissing, AuthMalformed, AuthInvalid} {
		m.authFailures.WithLabelValues(reason)
	}
	for _, rt := range routes {
		m.duration.WithLabelValues(rt.name)
	}
	return m
}

// register registers every collector on reg, or none. A nil reg registers
// nothing.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.authFailures}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return fmt.Errorf("metricsapi: metrics already registered (one API per registry): %w", err)
			}
			return fmt.Errorf("metricsapi: register metrics: %w", err)
		}
	}
	return nil
}
