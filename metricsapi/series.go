package metricsapi

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omnibridge/omnibridge/store"
)

// Series is event processing over a window, in buckets of equal length: what
// the dashboard's charts draw. It is the body of GET
// /api/v1/performance/series.
type Series struct {
	// From is the start of the first bucket, To the database's now() (the
	// last bucket is partial).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// StepSeconds is the length of a bucket.
	StepSeconds float64 `json:"step_seconds"`
	// Buckets, oldest first, with no gaps.
	Buckets []Bucket `json:"buckets"`
}

// Bucket is event processing in [Start, Start+step).
type Bucket struct {
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
	ProcessingTime *store.ProcessingTimeStats `json:"processing_time_ms"`
	// KafkaPublishSuccessRate is the share of attempts that published, 0 to
	// 1; null when the bucket has no attempts.
	KafkaPublishSuccessRate *float64 `json:"kafka_publish_success_rate"`
}

// seriesFirst and seriesLast are the starts of the first and last buckets:
// buckets are aligned to multiples of the step since the Unix epoch, so that
// successive refreshes draw the same buckets. They are written out in each
// WHERE clause (rather than joined from a CTE) so that the planner can prune
// partitions on them at executor start.
const (
	seriesLast  = `date_bin($1::interval, now(), timestamptz 'epoch')`
	seriesFirst = `(` + seriesLast + ` - ($2::int - 1) * $1::interval)`
)

// seriesSQL computes the whole series in one statement, so every bucket comes
// from one snapshot and one now(). Each part reads only the rows of the
// window, through the indexes the performance report uses:
// idx_hook_events_created_at, the BRIN idx_hook_events_processed_at, and
// idx_event_metrics_created_at.
//
// It belongs with PerformanceReport in store; it lives here until the store
// offers it.
const seriesSQL = `
WITH recv AS (
    SELECT date_bin($1::interval, created_at, timestamptz 'epoch') AS start, count(*) AS n
    FROM omnibridge.hook_events
    WHERE created_at >= ` + seriesFirst + ` AND created_at <= now()
    GROUP BY 1
), proc AS (
    SELECT date_bin($1::interval, processed_at, timestamptz 'epoch') AS start, count(*) AS n
    FROM omnibridge.hook_events
    WHERE status = 'processed' AND processed_at >= ` + seriesFirst + ` AND processed_at <= now()
    GROUP BY 1
), att AS (
    SELECT date_bin($1::interval, created_at, timestamptz 'epoch') AS start,
           count(*) AS attempts,
           count(*) FILTER (WHERE NOT kafka_publish_success) AS failed,
           avg(processing_time_ms) AS avg_ms,
           max(processing_time_ms) AS max_ms,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY processing_time_ms) AS pct
    FROM omnibridge.event_metrics
    WHERE created_at >= ` + seriesFirst + ` AND created_at <= now()
    GROUP BY 1
)
SELECT now(), b.start, coalesce(recv.n, 0), coalesce(proc.n, 0),
       coalesce(att.attempts, 0), coalesce(att.failed, 0),
       att.avg_ms, att.max_ms, att.pct[1], att.pct[2], att.pct[3]
FROM generate_series(` + seriesFirst + `, ` + seriesLast + `, $1::interval) AS b(start)
LEFT JOIN recv ON recv.start = b.start
LEFT JOIN proc ON proc.start = b.start
LEFT JOIN att ON att.start = b.start
ORDER BY b.start`

// querySeries reads n buckets of step, ending with the bucket that holds
// the database's now().
func querySeries(ctx context.Context, db store.DB, step time.Duration, n int) (Series, error) {
	rows, err := db.Query(ctx, seriesSQL, step, n)
	if err != nil {
		return Series{}, fmt.Errorf("metricsapi: performance series: %w", err)
	}
	var now time.Time
	buckets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Bucket, error) {
		var (
			b             Bucket
			avgMS, maxMS  *float64
			p50, p95, p99 *float64
		)
		err := row.Scan(&now, &b.Start, &b.Received, &b.Processed, &b.Attempts, &b.FailedAttempts,
			&avgMS, &maxMS, &p50, &p95, &p99)
		if err != nil {
			return Bucket{}, err
		}
		if b.Attempts > 0 {
			b.ProcessingTime = &store.ProcessingTimeStats{
				Avg: deref(avgMS), Max: deref(maxMS), P50: deref(p50), P95: deref(p95), P99: deref(p99),
			}
			rate := float64(b.Attempts-b.FailedAttempts) / float64(b.Attempts)
			b.KafkaPublishSuccessRate = &rate
		}
		return b, nil
	})
	if err != nil {
		return Series{}, fmt.Errorf("metricsapi: performance series: %w", err)
	}
	s := Series{To: now, StepSeconds: step.Seconds(), Buckets: nonNil(buckets)}
	if len(buckets) > 0 {
		s.From = buckets[0].Start
	}
	return s, nil
}

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}
