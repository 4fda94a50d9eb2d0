package pgclient

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsNamespace prefixes every metric the client exports.
const MetricsNamespace = "omnibridge_pgclient"

// metrics is the client's Prometheus collector. Everything, the histograms
// included, is read at scrape time from Stats and the per-connection counters
// (see hist): the hot path touches no Prometheus metric.
type metrics struct {
	c           *Client
	queryHist   *prometheus.Desc
	acquireHist *prometheus.Desc
	descs       []*prometheus.Desc
	gauges      []metricValue
}

type metricValue struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	value  func(Stats) float64
	labels []string
}

func newMetrics(c *Client) *metrics {
	service := prometheus.Labels{"service": c.cfg.ServiceName}
	m := &metrics{c: c}
	m.queryHist = prometheus.NewDesc(prometheus.BuildFQName(MetricsNamespace, "", "query_duration_seconds"),
		"Time of statements (op=query: Exec, Query until rows close, QueryRow), batches and COPYs.",
		[]string{"op"}, service)
	m.acquireHist = prometheus.NewDesc(prometheus.BuildFQName(MetricsNamespace, "", "acquire_duration_seconds"),
		"Time to acquire a connection from the pool, failed acquisitions included.", nil, service)

	byName := map[string]*prometheus.Desc{}
	add := func(name, help string, typ prometheus.ValueType, value func(Stats) float64, label string, labelValue string) {
		var variable []string
		var values []string
		if label != "" {
			variable, values = []string{label}, []string{labelValue}
		}
		d, ok := byName[name]
		if !ok {
			d = prometheus.NewDesc(prometheus.BuildFQName(MetricsNamespace, "", name), help, variable, service)
			byName[name] = d
			m.descs = append(m.descs, d)
		}
		m.gauges = append(m.gauges, metricValue{desc: d, typ: typ, value: value, labels: values})
	}
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	add("acquired_connections_total", "Successful connection acquisitions.", counter, func(s Stats) float64 { return float64(s.AcquiredConnections) }, "", "")
	add("released_connections_total", "Connection releases.", counter, func(s Stats) float64 { return float64(s.ReleasedConnections) }, "", "")
	add("failed_acquisitions_total", "Acquisitions that failed (pool exhausted for acquire_timeout, or connect failed).", counter, func(s Stats) float64 { return float64(s.FailedAcquisitions) }, "", "")
	add("queries_total", "Statements run (each statement of a batch; a COPY as one).", counter, func(s Stats) float64 { return float64(s.QueryCount) }, "", "")
	add("failed_queries_total", "Statements that returned an error.", counter, func(s Stats) float64 { return float64(s.FailedQueries) }, "", "")
	add("query_timeouts_total", "Statements ended by query_timeout.", counter, func(s Stats) float64 { return float64(s.QueryTimeouts) }, "", "")
	add("potential_leaks_total", "Connections reported as held longer than leak_threshold.", counter, func(s Stats) float64 { return float64(s.PotentialLeaks) }, "", "")
	add("current_leaks", "Reported leaked connections not yet returned.", gauge, func(s Stats) float64 { return float64(s.CurrentLeaks) }, "", "")
	add("connections", "Open connections, by state.", gauge, func(s Stats) float64 { return float64(s.Idle) }, "state", "idle")
	add("connections", "Open connections, by state.", gauge, func(s Stats) float64 { return float64(s.InUse) }, "state", "in_use")
	add("connections", "Open connections, by state.", gauge, func(s Stats) float64 { return float64(s.Size - s.Idle - s.InUse) }, "state", "opening")
	add("max_connections", "max_conns of the pool.", gauge, func(s Stats) float64 { return float64(s.Max) }, "", "")
	add("min_connections", "min_conns of the pool.", gauge, func(s Stats) float64 { return float64(s.Min) }, "", "")
	add("waiting", "Callers waiting for a connection.", gauge, func(s Stats) float64 { return float64(s.Waiting) }, "", "")
	add("utilization_ratio", "Connections in use ÷ max_conns.", gauge, func(s Stats) float64 { return s.PoolUtilizationPercent / 100 }, "", "")
	add("connections_opened_total", "Connections opened.", counter, func(s Stats) float64 { return float64(s.NewConnections) }, "", "")
	add("connections_recycled_total", "Connections closed by the pool, by reason.", counter, func(s Stats) float64 { return float64(s.RecycledByAge) }, "reason", "max_age")
	add("connections_recycled_total", "Connections closed by the pool, by reason.", counter, func(s Stats) float64 { return float64(s.RecycledByQueries) }, "reason", "max_queries")
	add("connections_recycled_total", "Connections closed by the pool, by reason.", counter, func(s Stats) float64 { return float64(s.RecycledByIdle) }, "reason", "max_idle")
	add("acquire_waits_total", "Acquisitions that found no idle connection and waited.", counter, func(s Stats) float64 { return float64(s.AcquireWaits) }, "", "")
	add("acquire_wait_seconds_total", "Total time acquisitions waited for a connection.", counter, func(s Stats) float64 { return s.AcquireWaitMS / 1000 }, "", "")
	add("statement_cache_hits_total", "Statement cache hits (single statements with arguments).", counter, func(s Stats) float64 { return float64(s.StatementCacheHits) }, "", "")
	add("statement_cache_misses_total", "Statement cache misses (the statement was prepared).", counter, func(s Stats) float64 { return float64(s.StatementCacheMisses) }, "", "")
	add("breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", gauge, func(Stats) float64 { return float64(c.BreakerStatus().State) }, "", "")
	for _, to := range []BreakerState{BreakerClosed, BreakerHalfOpen, BreakerOpen} {
		add("breaker_transitions_total", "Circuit breaker transitions, by the state entered.", counter, func(Stats) float64 { return float64(c.res.breaker.transitionCount(to)) }, "to", to.String())
	}
	add("breaker_rejections_total", "Operations refused by the open circuit breaker (ErrUnavailable).", counter, func(Stats) float64 { return float64(c.res.breaker.rejections()) }, "", "")
	for k := range numRetryKinds {
		add("retries_total", "Operations attempted again after a transient failure, by kind.", counter, func(Stats) float64 { return float64(c.res.retries[k].Load()) }, "kind", retryKindNames[k])
	}
	add("events_dropped_total", "Breaker changes and security events dropped because the callback queue was full.", counter, func(Stats) float64 { return float64(c.res.events.dropped.Load()) }, "", "")
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queryHist
	ch <- m.acquireHist
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	if m.c.pool == nil {
		return
	}
	s, t := m.c.statsAndTotals()
	for k := range numKinds {
		ch <- constHistogram(m.queryHist, &t.queryHist[k], queryBuckets, kindNames[k])
	}
	t.acquireHist.add(&m.c.stats.failedAcquireHist)
	ch <- constHistogram(m.acquireHist, &t.acquireHist, acquireBuckets)
	for _, g := range m.gauges {
		ch <- prometheus.MustNewConstMetric(g.desc, g.typ, g.value(s), g.labels...)
	}
}

func constHistogram(d *prometheus.Desc, t *histTotals, bounds []time.Duration, labels ...string) prometheus.Metric {
	n, buckets := t.cumulative(bounds)
	return prometheus.MustNewConstHistogram(d, n, time.Duration(t.nanos).Seconds(), buckets, labels...)
}
