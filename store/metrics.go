package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MaxMetricErrorBytes is the longest error message an event metric keeps; a
// longer one is cut and marked with "…".
const MaxMetricErrorBytes = 4096

// EventMetric is one processing attempt of a hook event (event_metrics).
type EventMetric struct {
	// EventID is the event the attempt was for. Required.
	EventID uuid.UUID
	// ProcessingTime is how long the attempt took; stored in milliseconds.
	// Must not be negative.
	ProcessingTime time.Duration
	// KafkaPublishSuccess says whether the event reached Kafka.
	KafkaPublishSuccess bool
	// ErrorMessage is why the attempt failed; "" when it did not. Invalid UTF-8
	// and NUL characters are replaced, and it is cut at MaxMetricErrorBytes.
	ErrorMessage string
	// CreatedAt is when the attempt ended; the database's now() when zero.
	CreatedAt time.Time
}

var eventMetricsTable = pgx.Identifier{Schema, "event_metrics"}

func (m *EventMetric) check() *InputError {
	if m.EventID == uuid.Nil {
		return inputError("event metric", "event_id", "is required")
	}
	if m.ProcessingTime < 0 {
		return inputError("event metric", "processing_time_ms", "%s is negative", m.ProcessingTime)
	}
	return nil
}

func (m *EventMetric) errorArg() any {
	if m.ErrorMessage == "" {
		return nil
	}
	return cleanText(m.ErrorMessage, MaxMetricErrorBytes)
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// RecordEventMetric implements ADR-016's record_event_metrics: it stores one
// processing attempt. Bad input returns an *InputError and writes nothing.
//
// The statement does not read back what it wrote, so a role with INSERT only
// on event_metrics (workflow_coordinator) can run it.
func (s *Store) RecordEventMetric(ctx context.Context, m EventMetric) error {
	if e := m.check(); e != nil {
		return e
	}
	_, err := s.db.Exec(ctx, `
		INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, error_message, created_at)
		VALUES ($1, $2, $3, $4, coalesce($5, now()))`,
		m.EventID, durationMS(m.ProcessingTime), m.KafkaPublishSuccess, m.errorArg(), timeOrNil(m.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: record event metric: %w", err)
	}
	return nil
}

// RecordEventMetrics stores many processing attempts with one COPY, all or
// none. Every metric is checked first: the first bad one returns an
// *InputError naming its index, and nothing is written. Metrics with a zero
// CreatedAt get the database's now() when all of them have a zero CreatedAt,
// else the store's clock. An empty slice does nothing.
func (s *Store) RecordEventMetrics(ctx context.Context, ms []EventMetric) error {
	if len(ms) == 0 {
		return nil
	}
	explicit := false
	for i := range ms {
		if e := ms[i].check(); e != nil {
			return withIndex(e, i)
		}
		explicit = explicit || !ms[i].CreatedAt.IsZero()
	}
	if len(ms) == 1 {
		return s.RecordEventMetric(ctx, ms[0])
	}
	cols := []string{"event_id", "processing_time_ms", "kafka_publish_success", "error_message"}
	var now time.Time
	if explicit {
		cols = append(cols, "created_at")
		now = s.now()
	}
	n, err := s.db.CopyFrom(ctx, eventMetricsTable, cols, pgx.CopyFromSlice(len(ms), func(i int) ([]any, error) {
		m := &ms[i]
		row := []any{m.EventID, durationMS(m.ProcessingTime), m.KafkaPublishSuccess, m.errorArg()}
		if explicit {
			at := m.CreatedAt
			if at.IsZero() {
				at = now
			}
			row = append(row, at)
		}
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("store: record %d event metrics: %w", len(ms), err)
	}
	if n != int64(len(ms)) {
		return fmt.Errorf("store: record event metrics: copied %d of %d rows", n, len(ms))
	}
	return nil
}

// timeOrNil is nil for the zero time, so that SQL can fall back to now().
func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
