package metricsapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestPerformance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := seed(t, b.store)

	p := decode[store.Performance](t, b.get(t, "/api/v1/performance?window=1h"))
	require.Equal(t, 3600.0, p.WindowSeconds)
	require.EqualValues(t, 13, p.Received)
	require.EqualValues(t, len(s.processed), p.Processed)
	require.EqualValues(t, 8, p.Attempts)
	require.EqualValues(t, 2, p.FailedAttempts)
	require.EqualValues(t, len(s.pending), p.Pending)
	require.EqualValues(t, 0, p.Processing)
	require.EqualValues(t, len(s.dead), p.Dead)
	require.EqualValues(t, len(s.pending), p.Backlog)
	require.Greater(t, p.OldestPendingAgeSeconds, 0.0)
	require.InDelta(t, 6.0/3600, p.ThroughputPerSecond, 1e-9)
	require.NotNil(t, p.KafkaPublishSuccessRate)
	require.InDelta(t, 0.75, *p.KafkaPublishSuccessRate, 1e-9)
	require.NotNil(t, p.ProcessingTime)
	require.InDelta(t, 100.0, p.ProcessingTime.Max, 1e-9)
	require.InDelta(t, (10+20+30+40+50+60+100+100)/8.0, p.ProcessingTime.Avg, 1e-9)

	// The default window is the configured one (1h).
	def := decode[store.Performance](t, b.get(t, "/api/v1/performance"))
	require.Equal(t, 3600.0, def.WindowSeconds)

	// Days work as a unit.
	week := decode[store.Performance](t, b.get(t, "/api/v1/performance?window=7d"))
	require.Equal(t, 7*86400.0, week.WindowSeconds)
	require.EqualValues(t, 13, week.Received)
}

func TestPerformanceSeries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seed(t, b.store)

	type bucket struct {
		Start                   time.Time `json:"start"`
		Received, Processed     int64
		Attempts                int64                      `json:"attempts"`
		FailedAttempts          int64                      `json:"failed_attempts"`
		ProcessingTime          *store.ProcessingTimeStats `json:"processing_time_ms"`
		KafkaPublishSuccessRate *float64                   `json:"kafka_publish_success_rate"`
	}
	type series struct {
		From        time.Time `json:"from"`
		To          time.Time `json:"to"`
		StepSeconds float64   `json:"step_seconds"`
		Buckets     []bucket  `json:"buckets"`
	}
	s := decode[series](t, b.get(t, "/api/v1/performance/series?window=1h&step=1m"))
	require.Equal(t, 60.0, s.StepSeconds)
	require.Len(t, s.Buckets, 60)
	require.Equal(t, s.Buckets[0].Start, s.From)
	var received, processed, attempts, failed int64
	for i, bk := range s.Buckets {
		require.Zero(t, bk.Start.Unix()%60, "buckets are aligned to the step")
		if i > 0 {
			require.Equal(t, time.Minute, bk.Start.Sub(s.Buckets[i-1].Start), "no gaps")
		}
		received += bk.Received
		processed += bk.Processed
		attempts += bk.Attempts
		failed += bk.FailedAttempts
		if bk.Attempts == 0 {
			require.Nil(t, bk.ProcessingTime)
			require.Nil(t, bk.KafkaPublishSuccessRate)
		}
	}
	last := s.Buckets[len(s.Buckets)-1]
	require.False(t, s.To.Before(last.Start))
	require.True(t, s.To.Before(last.Start.Add(time.Minute)), "the last bucket holds now")
	require.EqualValues(t, 13, received)
	require.EqualValues(t, 6, processed)
	require.EqualValues(t, 8, attempts)
	require.EqualValues(t, 2, failed)

	// The default step divides the window into series_points (60) buckets.
	def := decode[series](t, b.get(t, "/api/v1/performance/series?window=2h"))
	require.Equal(t, 120.0, def.StepSeconds)
	require.Len(t, def.Buckets, 60)

	// A window that is not a multiple of the step is covered by whole buckets.
	odd := decode[series](t, b.get(t, "/api/v1/performance/series?window=90s&step=1m"))
	require.Len(t, odd.Buckets, 2)
}

func TestPools(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := seed(t, b.store)
	got := decode[struct {
		Pools          []store.ConnectionSnapshot `json:"pools"`
		HorizonSeconds float64                    `json:"horizon_seconds"`
	}](t, b.get(t, "/api/v1/pools"))
	require.Equal(t, 86400.0, got.HorizonSeconds)
	require.Len(t, got.Pools, len(s.pools))
	for i, want := range s.pools {
		p := got.Pools[i]
		require.Equal(t, want.ServiceName, p.ServiceName)
		require.Equal(t, want.InstanceID, p.InstanceID)
		require.Equal(t, want.PoolSize, p.PoolSize)
		require.Equal(t, want.Active, p.Active)
		require.Equal(t, want.Waiting, p.Waiting)
		require.Equal(t, want.PotentialLeaks, p.PotentialLeaks)
		require.InDelta(t, want.UtilizationPercent, p.UtilizationPercent, 1e-9)
	}

	// With nothing recorded the list is empty, not null.
	empty := setup(t)
	r := empty.get(t, "/api/v1/pools")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"pools": [], "horizon_seconds": 86400}`, string(r.body))
}

func TestSessions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := seed(t, b.store)
	type list struct {
		Sessions []store.Session `json:"sessions"`
	}
	all := decode[list](t, b.get(t, "/api/v1/sessions"))
	require.Len(t, all.Sessions, len(s.sessions))
	// Most recently started first.
	require.Equal(t, s.sessions[2].ID, all.Sessions[0].ID)
	require.Equal(t, store.SessionEnded, all.Sessions[0].Status)
	require.NotNil(t, all.Sessions[0].EndedAt)

	active := decode[list](t, b.get(t, "/api/v1/sessions?status=active"))
	require.Len(t, active.Sessions, s.activeSessions)
	for _, sess := range active.Sessions {
		require.Equal(t, store.SessionActive, sess.Status)
		require.Nil(t, sess.EndedAt)
	}

	one := decode[list](t, b.get(t, "/api/v1/sessions?service=workflow_coordinator"))
	require.Len(t, one.Sessions, 1)
	require.Equal(t, "host-1", one.Sessions[0].InstanceID)

	limited := decode[list](t, b.get(t, "/api/v1/sessions?limit=1"))
	require.Len(t, limited.Sessions, 1)
}

type eventJSON struct {
	ID               uuid.UUID       `json:"id"`
	Source           string          `json:"source"`
	Action           string          `json:"action"`
	Status           string          `json:"status"`
	RetryCount       int             `json:"retry_count"`
	ProcessingErrors []string        `json:"processing_errors"`
	CreatedAt        time.Time       `json:"created_at"`
	NextAttemptAt    *time.Time      `json:"next_attempt_at"`
	ProcessedAt      *time.Time      `json:"processed_at"`
	DeliveryID       string          `json:"delivery_id"`
	Payload          json.RawMessage `json:"payload"`
	Metadata         json.RawMessage `json:"metadata"`
}

type eventList struct {
	Events     []eventJSON `json:"events"`
	NextCursor *string     `json:"next_cursor"`
}

func ids(evs []eventJSON) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := seed(t, b.store)

	all := decode[eventList](t, b.get(t, "/api/v1/events"))
	require.Len(t, all.Events, 13)
	require.Nil(t, all.NextCursor)
	for i := 1; i < len(all.Events); i++ {
		prev, cur := all.Events[i-1], all.Events[i]
		require.False(t, cur.CreatedAt.After(prev.CreatedAt), "newest first")
	}
	for _, e := range all.Events {
		require.Nil(t, e.Payload, "listings leave the payload out")
		require.NotNil(t, e.ProcessingErrors, "errors are [] rather than null")
	}

	dead := decode[eventList](t, b.get(t, "/api/v1/events?status=dead"))
	require.ElementsMatch(t, s.dead, ids(dead.Events))
	for _, e := range dead.Events {
		require.Equal(t, "dead", e.Status)
		require.Equal(t, 1, e.RetryCount)
		require.Len(t, e.ProcessingErrors, 1)
		require.Contains(t, e.ProcessingErrors[0], "attempt 1: kafka: broker refused the record")
	}
	pending := decode[eventList](t, b.get(t, "/api/v1/events?status=pending"))
	require.ElementsMatch(t, s.pending, ids(pending.Events))
	for _, e := range pending.Events {
		require.NotNil(t, e.NextAttemptAt)
	}
	processed := decode[eventList](t, b.get(t, "/api/v1/events?status=processed&source=github"))
	require.ElementsMatch(t, s.processed, ids(processed.Events))
	for _, e := range processed.Events {
		require.NotNil(t, e.ProcessedAt)
	}
	none := decode[eventList](t, b.get(t, "/api/v1/events?source=gitlab"))
	require.Empty(t, none.Events)
	require.NotNil(t, none.Events)

	// Time filters: everything is within the last hour, nothing is older.
	recent := decode[eventList](t, b.get(t, "/api/v1/events?since=1h"))
	require.Len(t, recent.Events, 13)
	old := decode[eventList](t, b.get(t, "/api/v1/events?until=1h"))
	require.Empty(t, old.Events)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	bounded := decode[eventList](t, b.get(t, "/api/v1/events?since=2000-01-01T00:00:00Z&until="+future))
	require.Len(t, bounded.Events, 13)
}

func TestGetEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := seed(t, b.store)

	e := decode[eventJSON](t, b.get(t, "/api/v1/events/"+s.dead[0].String()))
	require.Equal(t, s.dead[0], e.ID)
	require.Equal(t, "dead", e.Status)
	require.Equal(t, "push", e.Action)
	require.NotEmpty(t, e.DeliveryID)
	var payload map[string]any
	require.NoError(t, json.Unmarshal(e.Payload, &payload))
	require.Equal(t, "push", payload["action"])
	require.JSONEq(t, `{}`, string(e.Metadata))

	r := b.get(t, "/api/v1/events/"+uuid.NewString())
	requireError(t, r, http.StatusNotFound, "event_not_found")

	for _, bad := range []string{"nope", "0190a6e2", "{" + s.dead[0].String() + "}", "urn:uuid:" + s.dead[0].String()} {
		e := requireError(t, b.get(t, "/api/v1/events/"+bad), http.StatusBadRequest, "invalid_parameter")
		require.Equal(t, "id", e.Parameter, bad)
	}
}

type auditList struct {
	Events     []store.AuditEvent `json:"events"`
	NextCursor *string            `json:"next_cursor"`
}

func TestAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := seed(t, b.store)

	all := decode[auditList](t, b.get(t, "/api/v1/audit"))
	require.Len(t, all.Events, s.failedAudit+s.okAudit)

	failed := decode[auditList](t, b.get(t, "/api/v1/audit?success=false&since=24h"))
	require.Len(t, failed.Events, s.failedAudit)
	for _, e := range failed.Events {
		require.False(t, e.Success)
	}
	// Client-chosen text comes back as it was stored, as JSON text.
	require.True(t, slices.ContainsFunc(failed.Events, func(e store.AuditEvent) bool {
		return e.ErrorDetails == "<img src=x onerror=alert(1)>"
	}))

	ok := decode[auditList](t, b.get(t, "/api/v1/audit?success=true"))
	require.Len(t, ok.Events, s.okAudit)

	byType := decode[auditList](t, b.get(t, "/api/v1/audit?type=hook.signature_invalid"))
	require.Len(t, byType.Events, 2)
	prefix := decode[auditList](t, b.get(t, "/api/v1/audit?type=hook.*"))
	require.Len(t, prefix.Events, 2)
	api := decode[auditList](t, b.get(t, "/api/v1/audit?type=api.*&success=false"))
	require.Len(t, api.Events, 1)
	require.Equal(t, "198.51.100.1", api.Events[0].ClientInfo["remote_addr"])
}
