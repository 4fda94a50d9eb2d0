package store

import (
	"context"
	"fmt"
	"time"
)

// MaxPerformanceWindow is the longest window PerformanceReport accepts: 31
// days, the longest calendar month. It is not the retention: processed events
// are kept 30 days by default (DefaultProcessedEventsRetention), so over the
// last day of the longest windows Received and Processed can already miss the
// events retention removed; a longer window would only be more incomplete.
// The attempts (event_metrics, kept 90 days) are complete.
const MaxPerformanceWindow = 31 * 24 * time.Hour

// Performance is the state of event processing over a window that ends now,
// plus the current backlog. The JSON form is what the ModelMetrics API serves.
type Performance struct {
	// Window is the report's length; From and To bound it (To is the
	// database's now()).
	Window        time.Duration `json:"-"`
	WindowSeconds float64       `json:"window_seconds"`
	From          time.Time     `json:"from"`
	To            time.Time     `json:"to"`

	// Received counts the events created in the window.
	Received int64 `json:"received"`
	// Processed counts the events that reached processed in the window.
	Processed int64 `json:"processed"`
	// Attempts counts the processing attempts in the window (event_metrics
	// rows), FailedAttempts those that did not publish to Kafka.
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
	// ThroughputPerSecond is Processed divided by the window's seconds.
	ThroughputPerSecond float64 `json:"throughput_per_second"`
	// ProcessingTime summarises the attempts' processing times in
	// milliseconds; nil when the window has no attempts.
	ProcessingTime *ProcessingTimeStats `json:"processing_time_ms"`
	// KafkaPublishSuccessRate is the share of attempts in the window that
	// published, from 0 to 1; nil when the window has no attempts.
	KafkaPublishSuccessRate *float64 `json:"kafka_publish_success_rate"`

	// Pending, Processing and Dead count the events in those statuses now,
	// whenever they were created: the backlog and the dead letters are what
	// an operator must act on, whatever the window.
	Pending    int64 `json:"pending"`
	Processing int64 `json:"processing"`
	Dead       int64 `json:"dead"`
	// Backlog is Pending + Processing.
	Backlog int64 `json:"backlog"`
	// OldestPendingAge is how long the oldest pending event has waited since
	// it was created; 0 when nothing is pending.
	OldestPendingAge        time.Duration `json:"-"`
	OldestPendingAgeSeconds float64       `json:"oldest_pending_age_seconds"`
}

// ProcessingTimeStats are processing times in milliseconds. The percentiles
// are exact, interpolated between neighbouring values as PostgreSQL's
// percentile_cont does.
type ProcessingTimeStats struct {
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// performanceSQL computes the whole report in one statement, so every figure
// comes from one snapshot and one now(). Each part is index-backed (see
// migration 5 and BenchmarkPerformanceReport): received on
// idx_hook_events_created_at, processed on idx_hook_events_processed_at, the
// status counts and the oldest pending event in one index-only scan of
// idx_hook_events_unfinished, the attempts on idx_event_metrics_created_at.
// Their cost grows with the rows in the window (and the backlog), not with the
// size of the tables.
var performanceSQL = `
SELECT now(),
    (SELECT count(*) FROM omnibridge.hook_events
        WHERE created_at >= now() - $1::interval AND created_at <= now()),
    (SELECT count(*) FROM omnibridge.hook_events
        WHERE status = 'processed' AND processed_at >= now() - $1::interval AND processed_at <= now()),
    u.pending, u.processing, u.dead, u.oldest_pending,
    m.attempts, m.failed, m.avg_ms, m.max_ms, m.pct[1], m.pct[2], m.pct[3]
FROM (` + backlogCountsSQL + `) u, (
    SELECT count(*) AS attempts,
           count(*) FILTER (WHERE NOT kafka_publish_success) AS failed,
           avg(processing_time_ms) AS avg_ms,
           max(processing_time_ms) AS max_ms,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY processing_time_ms) AS pct
    FROM omnibridge.event_metrics
    WHERE created_at >= now() - $1::interval AND created_at <= now()
) m`

// PerformanceReport implements ADR-016's get_performance_metrics for the window
// that ends now: events received and processed, attempts and failed attempts,
// throughput, processing time average and percentiles, the Kafka publish
// success rate, and the current backlog, dead letters and oldest pending age.
// The window must be positive and at most MaxPerformanceWindow, else it
// returns an *InputError.
//
// The cost grows with the rows inside the window, not with the tables:
// BenchmarkPerformanceReport measures it on a million events.
func (s *Store) PerformanceReport(ctx context.Context, window time.Duration) (Performance, error) {
	if window <= 0 || window > MaxPerformanceWindow {
		return Performance{}, inputError("filter", "window", "%s is outside (0, %s]", window, MaxPerformanceWindow)
	}
	var (
		p             = Performance{Window: window, WindowSeconds: window.Seconds()}
		oldestPending *time.Time
		avgMS, maxMS  *float64
		p50, p95, p99 *float64
	)
	err := s.db.QueryRow(ctx, performanceSQL, window).Scan(
		&p.To, &p.Received, &p.Processed, &p.Pending, &p.Processing, &p.Dead, &oldestPending,
		&p.Attempts, &p.FailedAttempts, &avgMS, &maxMS, &p50, &p95, &p99)
	if err != nil {
		return Performance{}, fmt.Errorf("store: performance report: %w", err)
	}
	p.From = p.To.Add(-window)
	p.Backlog = p.Pending + p.Processing
	p.ThroughputPerSecond = float64(p.Processed) / window.Seconds()
	if oldestPending != nil && oldestPending.Before(p.To) {
		p.OldestPendingAge = p.To.Sub(*oldestPending)
		p.OldestPendingAgeSeconds = p.OldestPendingAge.Seconds()
	}
	if p.Attempts > 0 {
		p.ProcessingTime = &ProcessingTimeStats{
			Avg: floatOrZero(avgMS), Max: floatOrZero(maxMS),
			P50: floatOrZero(p50), P95: floatOrZero(p95), P99: floatOrZero(p99),
		}
		rate := float64(p.Attempts-p.FailedAttempts) / float64(p.Attempts)
		p.KafkaPublishSuccessRate = &rate
	}
	return p, nil
}

func floatOrZero(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}
