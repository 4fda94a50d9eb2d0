package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// seedEventsSQL inserts $1 events in status $2, created $3 ago; processed ones
// were processed $4 ago.
const seedEventsSQL = `
INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, status, created_at,
    next_attempt_at, claimed_at, claim_id, processed_at, retry_count)
SELECT gen_random_uuid(), 'github', 'push', 'repository', 'r' || i, $2,
    now() - $3::interval, now() - $3::interval,
    CASE WHEN $2 = 'processing' THEN now() END,
    CASE WHEN $2 = 'processing' THEN gen_random_uuid() END,
    CASE WHEN $2 = 'processed' THEN now() - $4::interval END,
    CASE WHEN $2 = 'dead' THEN 5 ELSE 0 END
FROM generate_series(1, $1) i`

func TestPerformanceReportKnownFigures(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	seed := func(n int, status string, age, processedAge time.Duration) {
		b.exec(t, seedEventsSQL, n, status, age, processedAge)
	}
	// Inside the 1 h window: 10 received, of which 6 processed in it.
	seed(6, "processed", 20*time.Minute, 10*time.Minute)
	seed(2, "pending", 30*time.Minute, 0)
	seed(2, "processing", 15*time.Minute, 0)
	// Outside: created and processed before the window, a processed event
	// created before but processed inside it, an old pending and an old dead one.
	seed(5, "processed", 3*time.Hour, 2*time.Hour)
	seed(1, "processed", 3*time.Hour, 5*time.Minute)
	seed(1, "pending", 2*time.Hour, 0)
	seed(1, "dead", 5*time.Hour, 0)

	// 100 attempts in the window taking 1..100 ms, the last 10 failed; 50
	// older, slower ones that must not count.
	var in, out []store.EventMetric
	for i := 1; i <= 100; i++ {
		in = append(in, store.EventMetric{
			EventID: uuid.New(), ProcessingTime: time.Duration(i) * time.Millisecond, KafkaPublishSuccess: i <= 90,
		})
	}
	for range 50 {
		out = append(out, store.EventMetric{
			EventID: uuid.New(), ProcessingTime: time.Second, CreatedAt: time.Now().Add(-2 * time.Hour),
		})
	}
	require.NoError(t, b.store.RecordEventMetrics(ctx, in))
	require.NoError(t, b.store.RecordEventMetrics(ctx, out))

	p, err := b.store.PerformanceReport(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, time.Hour, p.Window)
	require.Equal(t, 3600.0, p.WindowSeconds)
	require.Equal(t, time.Hour, p.To.Sub(p.From))
	require.Equal(t, int64(10), p.Received)
	require.Equal(t, int64(7), p.Processed, "processed in the window, whenever created")
	require.Equal(t, int64(100), p.Attempts)
	require.Equal(t, int64(10), p.FailedAttempts)
	require.InDelta(t, 7.0/3600, p.ThroughputPerSecond, 1e-12)
	require.NotNil(t, p.KafkaPublishSuccessRate)
	require.InDelta(t, 0.9, *p.KafkaPublishSuccessRate, 1e-12)
	require.NotNil(t, p.ProcessingTime)
	require.InDelta(t, 50.5, p.ProcessingTime.Avg, 1e-9)
	require.InDelta(t, 50.5, p.ProcessingTime.P50, 1e-9)
	require.InDelta(t, 95.05, p.ProcessingTime.P95, 1e-9)
	require.InDelta(t, 99.01, p.ProcessingTime.P99, 1e-9)
	require.InDelta(t, 100.0, p.ProcessingTime.Max, 1e-9)
	require.Equal(t, int64(3), p.Pending)
	require.Equal(t, int64(2), p.Processing)
	require.Equal(t, int64(5), p.Backlog)
	require.Equal(t, int64(1), p.Dead)
	require.InDelta(t, (2 * time.Hour).Seconds(), p.OldestPendingAgeSeconds, 1, "the oldest pending event, inside the window or not")
	require.InDelta(t, p.OldestPendingAge.Seconds(), p.OldestPendingAgeSeconds, 1e-9)

	// A 4 h window takes in the older rows.
	p4, err := b.store.PerformanceReport(ctx, 4*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(17), p4.Received, "all but the dead event created 5 h ago")
	require.Equal(t, int64(150), p4.Attempts)
	require.InDelta(t, 1000.0, p4.ProcessingTime.Max, 1e-9)

	// The API's JSON: snake_case names.
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	for _, k := range []string{"window_seconds", "from", "to", "received", "processed", "attempts", "failed_attempts",
		"throughput_per_second", "processing_time_ms", "kafka_publish_success_rate", "pending", "processing",
		"dead", "backlog", "oldest_pending_age_seconds"} {
		require.Contains(t, m, k)
	}
	require.Equal(t, map[string]any{"avg": 50.5, "p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0},
		roundedMap(m["processing_time_ms"].(map[string]any)))
}

// roundedMap rounds float values to 1e-9, to compare percentiles computed in
// floating point.
func roundedMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if f, ok := v.(float64); ok {
			v = float64(int64(f*1e9+0.5)) / 1e9
		}
		out[k] = v
	}
	return out
}

func TestPerformanceReportEmpty(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	p, err := b.store.PerformanceReport(ctx, 15*time.Minute)
	require.NoError(t, err)
	require.Zero(t, p.Received)
	require.Zero(t, p.Attempts)
	require.Nil(t, p.ProcessingTime)
	require.Nil(t, p.KafkaPublishSuccessRate)
	require.Zero(t, p.OldestPendingAge)
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"processing_time_ms":null`)
	require.Contains(t, string(raw), `"kafka_publish_success_rate":null`)

	for _, w := range []time.Duration{0, -time.Minute, store.MaxPerformanceWindow + time.Second} {
		_, err := b.store.PerformanceReport(ctx, w)
		require.ErrorIs(t, err, store.ErrInvalidInput, "window %s", w)
	}
}
