package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestRecordEventMetric(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	id := uuid.Must(uuid.NewV7())
	require.NoError(t, b.store.RecordEventMetric(ctx, store.EventMetric{
		EventID: id, ProcessingTime: 1500 * time.Microsecond, KafkaPublishSuccess: true,
	}))
	require.NoError(t, b.store.RecordEventMetric(ctx, store.EventMetric{
		EventID: id, ProcessingTime: 2 * time.Second, ErrorMessage: "broker\x00 down \xff" + strings.Repeat("x", 5000),
		CreatedAt: time.Now().Add(-time.Hour),
	}))

	rows, err := b.pool.Query(ctx, `SELECT processing_time_ms, kafka_publish_success, coalesce(error_message, ''),
		created_at < now() - interval '59 minutes'
		FROM omnibridge.event_metrics WHERE event_id = $1 ORDER BY processing_time_ms`, id)
	require.NoError(t, err)
	type row struct {
		ms      float64
		ok      bool
		message string
		old     bool
	}
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.ms, &r.ok, &r.message, &r.old))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 2)
	require.Equal(t, row{ms: 1.5, ok: true}, got[0])
	require.Equal(t, 2000.0, got[1].ms)
	require.False(t, got[1].ok)
	require.True(t, got[1].old, "an explicit CreatedAt is kept")
	require.True(t, strings.HasPrefix(got[1].message, "broker down \uFFFDxxx"), "NUL removed, invalid UTF-8 replaced: %q", got[1].message[:20])
	require.LessOrEqual(t, len(got[1].message), store.MaxMetricErrorBytes)
	require.True(t, strings.HasSuffix(got[1].message, "…"))
}

func TestRecordEventMetricsBatch(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	var ms []store.EventMetric
	for i := range 500 {
		ms = append(ms, store.EventMetric{
			EventID: uuid.Must(uuid.NewV7()), ProcessingTime: time.Duration(i) * time.Millisecond,
			KafkaPublishSuccess: i%10 != 0,
		})
	}
	require.NoError(t, b.store.RecordEventMetrics(ctx, ms))
	require.Equal(t, int64(500), b.scalar(t, `SELECT count(*) FROM omnibridge.event_metrics WHERE created_at > now() - interval '1 minute'`))
	require.Equal(t, int64(50), b.scalar(t, `SELECT count(*) FROM omnibridge.event_metrics WHERE NOT kafka_publish_success`))
	require.Equal(t, int64(499*500/2), b.scalar(t, `SELECT sum(processing_time_ms)::bigint FROM omnibridge.event_metrics`))

	// Mixed explicit and zero times: explicit kept, zero ones stamped now.
	past := time.Now().Add(-48 * time.Hour)
	require.NoError(t, b.store.RecordEventMetrics(ctx, []store.EventMetric{
		{EventID: uuid.New(), CreatedAt: past}, {EventID: uuid.New()},
	}))
	require.Equal(t, int64(1), b.scalar(t, `SELECT count(*) FROM omnibridge.event_metrics WHERE created_at < now() - interval '47 hours'`))
	require.Equal(t, int64(501), b.scalar(t, `SELECT count(*) FROM omnibridge.event_metrics WHERE created_at > now() - interval '1 minute'`))

	// One bad metric refuses the batch and names its index.
	bad := append([]store.EventMetric(nil), ms[:3]...)
	bad[2].ProcessingTime = -time.Millisecond
	err := b.store.RecordEventMetrics(ctx, bad)
	var ie *store.InputError
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, 2, ie.Index)
	require.Equal(t, "processing_time_ms", ie.Field)
	require.ErrorIs(t, b.store.RecordEventMetric(ctx, store.EventMetric{}), store.ErrInvalidInput)
	require.Equal(t, int64(502), b.scalar(t, `SELECT count(*) FROM omnibridge.event_metrics`))
	require.NoError(t, b.store.RecordEventMetrics(ctx, nil))
}
