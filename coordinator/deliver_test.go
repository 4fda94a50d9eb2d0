package coordinator

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// Every event becomes one record, exactly as stored: key, headers, envelope;
// in order per resource; processed with one successful event_metrics row.
func TestDeliverEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n, resources = 320, 17
	// Fewer events per transaction than resources: a resource's events
	// never share a creation time, so their order is well defined.
	ids := b.insertChunked(t, n, resources, resources-1)
	c := b.newCoordinator(t, testConfig(), b.producer(t, b.kafkaConfig()), true)
	start(t, c)

	final := b.waitSettled(t)
	require.Equal(t, n, final[store.EventProcessed])
	recs := b.readRecords(t, n)

	pos := make(map[uuid.UUID]int, n) // insertion order
	for i, id := range ids {
		pos[id] = i
	}
	seen := map[uuid.UUID]bool{}
	lastByKey := map[string]int{}
	for _, r := range recs {
		id, err := uuid.Parse(header(r, HeaderEventID))
		require.NoError(t, err)
		require.False(t, seen[id], "event %s published twice", id)
		seen[id] = true

		e, err := b.st.GetEvent(testContext(t), id)
		require.NoError(t, err)
		require.Equal(t, store.EventProcessed, e.Status)
		require.Equal(t, e.ResourceID, string(r.Key))
		require.Equal(t, e.Source, header(r, HeaderSource))
		require.Equal(t, e.Action, header(r, HeaderAction))
		require.Equal(t, "1", header(r, HeaderAttempt))

		var got Envelope
		require.NoError(t, json.Unmarshal(r.Value, &got))
		want := EnvelopeOf(&e)
		want.Attempt = 1
		require.Equal(t, want.ID, got.ID)
		require.Equal(t, want.Source, got.Source)
		require.Equal(t, want.Action, got.Action)
		require.Equal(t, want.Resource, got.Resource)
		require.Equal(t, want.ResourceID, got.ResourceID)
		require.JSONEq(t, string(e.Payload), string(got.Payload))
		require.JSONEq(t, string(e.Metadata), string(got.Metadata))
		require.True(t, want.CreatedAt.Equal(got.CreatedAt), "created_at %s, want %s", got.CreatedAt, want.CreatedAt)
		require.Equal(t, e.DeliveryID, got.DeliveryID)
		require.Equal(t, 1, got.Attempt)

		// Records of a resource are on one partition in insertion order.
		if prev, ok := lastByKey[string(r.Key)]; ok {
			require.Less(t, prev, pos[id], "resource %s out of order", r.Key)
		}
		lastByKey[string(r.Key)] = pos[id]

		ms := b.eventMetrics(t, id)
		require.Len(t, ms, 1)
		require.True(t, ms[0].Success)
		require.Nil(t, ms[0].Error)
		require.GreaterOrEqual(t, ms[0].MS, 0.0)
	}
	require.Len(t, seen, n)
	require.Equal(t, float64(n), value(t, c.m.published))
	require.Equal(t, 0.0, value(t, c.m.failed))
	require.Equal(t, uint64(n), sumHistogram(t, c.m.batchSize))

	// The lag gauge comes down to zero once nothing is pending.
	waitFor(t, "lag gauge at 0", func() bool { return value(t, c.m.lag) == 0 })
	lag, err := c.Lag(testContext(t))
	require.NoError(t, err)
	require.Zero(t, lag)
	require.NoError(t, c.Ready(testContext(t)))
}

// The envelope's JSON form is the documented one.
func TestEnvelopeJSON(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 3, 4, 5, 6, 7, 891234000, time.FixedZone("CET", 3600))
	e := store.HookEvent{
		ID:         uuid.MustParse("01956a3c-8a7e-7c2d-9f3e-0123456789ab"),
		Source:     "github",
		Action:     "push",
		Resource:   "repository",
		ResourceID: "octo/hello",
		Payload:    json.RawMessage(`{"ref": "refs/heads/main", "n": [1, 2]}`),
		Metadata:   json.RawMessage(`{"ip": "192.0.2.1"}`),
		RetryCount: 2,
		CreatedAt:  created,
		DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
	}
	m, err := message(&e)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"id": "01956a3c-8a7e-7c2d-9f3e-0123456789ab",
		"source": "github",
		"action": "push",
		"resource": "repository",
		"resource_id": "octo/hello",
		"payload": {"ref": "refs/heads/main", "n": [1, 2]},
		"metadata": {"ip": "192.0.2.1"},
		"created_at": "2025-03-04T04:06:07.891234Z",
		"delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"attempt": 3
	}`, string(m.Value))
	require.Equal(t, "octo/hello", string(m.Key))
	hdr := map[string]string{}
	for _, h := range m.Headers {
		hdr[h.Key] = string(h.Value)
	}
	require.Equal(t, map[string]string{
		HeaderEventID: "01956a3c-8a7e-7c2d-9f3e-0123456789ab",
		HeaderSource:  "github",
		HeaderAction:  "push",
		HeaderAttempt: "3",
	}, hdr)

	// Without a delivery id or metadata.
	e.DeliveryID, e.Metadata, e.RetryCount = "", nil, 0
	m, err = message(&e)
	require.NoError(t, err)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(m.Value, &raw))
	require.NotContains(t, raw, "delivery_id")
	require.JSONEq(t, `{}`, string(raw["metadata"]))
	require.Equal(t, "1", string(raw["attempt"]))
}

// Two coordinators share the work and never publish the same event.
func TestTwoCoordinators(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 1500
	b.insert(t, n, 40)
	var cs []*Coordinator
	for range 2 {
		cfg := testConfig()
		cfg.BatchSize = 40
		c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), true)
		start(t, c)
		cs = append(cs, c)
	}
	final := b.waitSettled(t)
	require.Equal(t, n, final[store.EventProcessed])

	recs := b.readRecords(t, n)
	seen := map[string]bool{}
	for _, r := range recs {
		id := header(r, HeaderEventID)
		require.False(t, seen[id], "event %s published twice", id)
		seen[id] = true
	}
	var total float64
	for i, c := range cs {
		p := value(t, c.m.published)
		t.Logf("coordinator %d published %v events", i, p)
		total += p
	}
	require.Equal(t, float64(n), total)
}

// A NOTIFY wakes the coordinator long before its poll interval; quiet
// spells do not lose the connection; when the LISTEN connection is killed it
// reconnects and is woken again.
func TestListenWakesUpAndReconnects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := testConfig()
	cfg.PollInterval = 10 * time.Minute // only a notification can wake it in time
	c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), true)
	c.listenIdleCheck = 100 * time.Millisecond // quiet spells end in a ping
	start(t, c)
	waitFor(t, "LISTEN connection", func() bool { return value(t, c.m.listening) == 1 })

	deliver := func(round int) {
		b.insert(t, 10, 3)
		require.NoError(t, b.st.Notify(testContext(t)))
		waitFor(t, "round "+strconv.Itoa(round)+" delivered", func() bool {
			return b.counts(t)[store.EventProcessed] == 10*round
		})
	}
	deliver(1)

	// Quiet spells (each ends in a ping) keep the same connection, which
	// still receives notifications.
	listenPID := func() int {
		var pid int
		err := b.db.QueryRow(testContext(t), `
SELECT coalesce(max(pid), 0) FROM pg_stat_activity
WHERE application_name = 'coordinator_test_listen' AND datname = current_database()`).Scan(&pid)
		require.NoError(t, err)
		return pid
	}
	old := listenPID()
	require.NotZero(t, old)
	time.Sleep(time.Second)
	require.Equal(t, old, listenPID(), "the LISTEN connection was replaced while idle")
	deliver(2)

	// Kill the listening backend: the coordinator must reconnect.
	var killed bool
	require.NoError(t, b.db.QueryRow(testContext(t), `SELECT pg_terminate_backend($1)`, old).Scan(&killed))
	require.True(t, killed)
	waitFor(t, "a new LISTEN connection", func() bool {
		pid := listenPID()
		return pid != 0 && pid != old && value(t, c.m.listening) == 1
	})
	deliver(3)
}

// listen_url replaces Deps.Listen: the coordinator LISTENs on its own DSN.
func TestListenURL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := testConfig()
	cfg.PollInterval = 10 * time.Minute
	cfg.ListenURL = b.url
	c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), false)
	start(t, c)
	waitFor(t, "LISTEN connection", func() bool { return value(t, c.m.listening) == 1 })
	b.insert(t, 5, 2)
	require.NoError(t, b.st.Notify(testContext(t)))
	waitFor(t, "events delivered on a notification", func() bool { return b.counts(t)[store.EventProcessed] == 5 })
}

// Without LISTEN the coordinator still delivers, by polling; retries whose
// backoff passed are picked up the same way.
func TestPollingOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newCoordinator(t, testConfig(), b.producer(t, b.kafkaConfig()), false)
	start(t, c)
	b.insert(t, 25, 5)
	waitFor(t, "events delivered by polling", func() bool { return b.counts(t)[store.EventProcessed] == 25 })
	require.Equal(t, 0.0, value(t, c.m.listening))
}

// value reads a counter or gauge.
func value(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.GetGauge().GetValue()
}

// sumHistogram is the sum of a histogram's observations.
func sumHistogram(t testing.TB, h interface{ Write(*dto.Metric) error }) uint64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return uint64(m.GetHistogram().GetSampleSum())
}
