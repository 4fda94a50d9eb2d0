package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Series is event processing over a window, in buckets of equal length: what
// the dashboard's charts draw. The ModelMetrics API serves it at GET
// /api/v1/performance/series.
type Series struct {
	// From is the start of the first bucket, To the database's now() (the
	// last bucket is partial).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// StepSeconds is the length of a bucket.
	StepSeconds float64 `json:"step_seconds"`
	// Buckets, oldest first, with no gaps.
	Buckets []SeriesBucket `json:"buckets"`
}

// SeriesBucket is event processing in [Start, Start+step).
type SeriesBucket struct {
	Start time.Time `json:"start"`
	// Received counts events created in the bucket, Processed events that
	// reached processed in it.
	Received  int64 `json:"received"`
	Processed int64 `json:"processed"`
	// Attempts counts processing attempts (event_metrics rows),
	// FailedAttempts those that did not publish to Kafka.
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
	// ProcessingTime summarises the attempts' processing times in
	// milliseconds; null when the bucket has no attempts.
	ProcessingTime *ProcessingTimeStats `json:"processing_time_ms"`
	// KafkaPublishSuccessRate is the share of attempts that published, 0 to
	// 1; null when the bucket has no attempts.
	KafkaPublishSuccessRate *float64 `json:"kafka_publish_success_rate"`
}

// seriesFirst is the start of the first bucket: buckets are aligned to
// multiples of the step since the Unix epoch, so that successive refreshes
// draw the same buckets, and the last one holds now(). It is written out in
// each WHERE clause (rather than joined from a CTE) so that the planner
// prunes partitions on it at executor start.
const seriesFirst = `(date_bin($1::interval, now(), timestamptz 'epoch') - ($2::int - 1) * $1::interval)`

// seriesSQL computes the series in one statement, so every bucket comes from
// one snapshot and one now(): a first row with now() and the first bucket's
// start, then one row per non-empty bucket of each measure (kind r:
// received, p: processed, a: attempts). Each part reads only the rows of the
// window, through the indexes the performance report uses
// (idx_hook_events_created_at, idx_hook_events_processed_at,
// idx_event_metrics_created_at). The empty buckets are filled in by the
// caller: joining a generate_series here made the planner's estimate large
// enough to switch on JIT compilation, which cost ten times the query itself
// (BenchmarkEndpoints).
const seriesSQL = `
SELECT '', now(), 0::bigint, 0::bigint, NULL::float8, NULL::float8, NULL::float8[]
UNION ALL
SELECT 'f', ` + seriesFirst + `, 0, 0, NULL, NULL, NULL
UNION ALL
SELECT 'r', date_bin($1::interval, created_at, timestamptz 'epoch'), count(*), 0, NULL, NULL, NULL
FROM omnibridge.hook_events
WHERE created_at >= ` + seriesFirst + ` AND created_at <= now()
GROUP BY 2
UNION ALL
SELECT 'p', date_bin($1::interval, processed_at, timestamptz 'epoch'), count(*), 0, NULL, NULL, NULL
FROM omnibridge.hook_events
WHERE status = 'processed' AND processed_at >= ` + seriesFirst + ` AND processed_at <= now()
GROUP BY 2
UNION ALL
SELECT 'a', date_bin($1::interval, created_at, timestamptz 'epoch'), count(*),
       count(*) FILTER (WHERE NOT kafka_publish_success),
       avg(processing_time_ms), max(processing_time_ms),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY processing_time_ms)
FROM omnibridge.event_metrics
WHERE created_at >= ` + seriesFirst + ` AND created_at <= now()
GROUP BY 2`

// PerformanceSeries is the performance report as a time series: n buckets
// of step, ending with the bucket that holds the database's now(), with empty
// buckets filled in. The ModelMetrics dashboard draws it.
func (s *Store) PerformanceSeries(ctx context.Context, step time.Duration, n int) (Series, error) {
	rows, err := s.db.Query(ctx, seriesSQL, step, n)
	if err != nil {
		return Series{}, fmt.Errorf("store: performance series: %w", err)
	}
	type part struct {
		kind        string
		at          time.Time
		count, fail int64
		avg, max    *float64
		pct         []float64
	}
	parts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (part, error) {
		var p part
		err := row.Scan(&p.kind, &p.at, &p.count, &p.fail, &p.avg, &p.max, &p.pct)
		return p, err
	})
	if err != nil {
		return Series{}, fmt.Errorf("store: performance series: %w", err)
	}
	ser := Series{StepSeconds: step.Seconds(), Buckets: make([]SeriesBucket, n)}
	for _, p := range parts {
		switch p.kind {
		case "":
			ser.To = p.at
		case "f":
			ser.From = p.at
		}
	}
	for i := range ser.Buckets {
		ser.Buckets[i].Start = ser.From.Add(time.Duration(i) * step)
	}
	for _, p := range parts {
		i := int(p.at.Sub(ser.From) / step)
		if p.kind == "" || p.kind == "f" || i < 0 || i >= n {
			continue
		}
		b := &ser.Buckets[i]
		switch p.kind {
		case "r":
			b.Received = p.count
		case "p":
			b.Processed = p.count
		case "a":
			b.Attempts, b.FailedAttempts = p.count, p.fail
			if p.count > 0 && len(p.pct) == 3 {
				b.ProcessingTime = &ProcessingTimeStats{
					Avg: deref(p.avg), Max: deref(p.max), P50: p.pct[0], P95: p.pct[1], P99: p.pct[2],
				}
				rate := float64(p.count-p.fail) / float64(p.count)
				b.KafkaPublishSuccessRate = &rate
			}
		}
	}
	return ser, nil
}

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}
