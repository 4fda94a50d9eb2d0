package metricsapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

const testToken = "test-token-0123456789abcdef"

// bundle is one API on its own database, served over real HTTP.
type bundle struct {
	api   *metricsapi.API
	store *store.Store
	db    *pgclient.Client
	audit *store.AuditWriter
	reg   *prometheus.Registry
	url   string // the server's base URL
	dbURL string
}

type setupOptions struct {
	cfg   metricsapi.Config
	audit store.AuditWriterConfig
	dbURL string // an existing database instead of a fresh one
	log   *slog.Logger
	pool  func(*pgclient.Config)
}

func setup(t testing.TB, opts ...func(*setupOptions)) *bundle {
	t.Helper()
	o := setupOptions{cfg: metricsapi.Config{Token: testToken}}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := o.dbURL
	if dbURL == "" {
		dbURL = testdb.New(t)
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg := pgclient.Config{
		URL: dbURL, ServiceName: "metricsapi-test", MinConns: 1, MaxConns: 8,
		Logger: log,
	}
	if o.pool != nil {
		o.pool(&pcfg)
	}
	db, err := pgclient.Open(ctx, pcfg)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	st := store.New(db)
	audit, err := store.NewAuditWriter(st, o.audit)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = audit.Close(ctx)
	})
	reg := prometheus.NewRegistry()
	api, err := metricsapi.New(o.cfg, metricsapi.Deps{Store: st, Audit: audit, Registerer: reg, Logger: log})
	require.NoError(t, err)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &bundle{api: api, store: st, db: db, audit: audit, reg: reg, url: srv.URL, dbURL: dbURL}
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get requests path with the test token.
func (b *bundle) get(t testing.TB, path string) response {
	t.Helper()
	return b.do(t, http.MethodGet, path, "Bearer "+testToken)
}

// do requests path with the given Authorization header ("" sends none).
func (b *bundle) do(t testing.TB, method, path, authorization string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: body}
}

// decode decodes r's body into a value of type T, requiring status 200.
func decode[T any](t testing.TB, r response) T {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), r.header.Get("Content-Type"))
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

type errorJSON struct {
	Error     string `json:"error"`
	Code      string `json:"code"`
	Parameter string `json:"parameter"`
}

// requireError checks r is a JSON error with status and code.
func requireError(t testing.TB, r response, status int, code string) errorJSON {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), r.header.Get("Content-Type"))
	var e errorJSON
	require.NoError(t, json.Unmarshal(r.body, &e), "body: %s", r.body)
	require.Equal(t, code, e.Code, "body: %s", r.body)
	require.NotEmpty(t, e.Error)
	return e
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// seeded is what seed wrote.
type seeded struct {
	processed, dead, pending []uuid.UUID
	processingMS             []float64 // of the processed events
	sessions                 []store.Session
	activeSessions           int
	pools                    []store.ConnectionSnapshot
	failedAudit, okAudit     int
}

// seed writes a known data set through the store, the way the services do:
// 8 events claimed, 6 completed (10..60 ms) and 2 failed on their only
// attempt (dead); 5 more left pending; 3 sessions, one ended; 2 pool
// snapshots; 3 failed and 2 successful audit events.
func seed(t testing.TB, st *store.Store) seeded {
	t.Helper()
	ctx := testCtx(t)
	var s seeded
	newEvents := func(n int, action string) []store.NewEvent {
		evs := make([]store.NewEvent, n)
		for i := range evs {
			evs[i] = store.NewEvent{
				Source: "github", Action: action, Resource: "repo", ResourceID: fmt.Sprint(i),
				DeliveryID: uuid.NewString(), Payload: json.RawMessage(fmt.Sprintf(`{"n": %d, "action": %q}`, i, action)),
			}
		}
		return evs
	}
	_, err := st.InsertEvents(ctx, newEvents(8, "push"))
	require.NoError(t, err)
	claimed, claimID, err := st.Claim(ctx, 8)
	require.NoError(t, err)
	require.Len(t, claimed, 8)
	var done []store.Completion
	for i, e := range claimed[:6] {
		ms := float64(10 * (i + 1))
		done = append(done, store.Completion{ID: e.ID, CreatedAt: e.CreatedAt, ProcessingTimeMS: ms})
		s.processed = append(s.processed, e.ID)
		s.processingMS = append(s.processingMS, ms)
	}
	n, err := st.Complete(ctx, claimID, done)
	require.NoError(t, err)
	require.Equal(t, 6, n)
	var fails []store.Failure
	for _, e := range claimed[6:] {
		fails = append(fails, store.Failure{ID: e.ID, Err: "kafka: broker refused the record", ProcessingTimeMS: 100})
		s.dead = append(s.dead, e.ID)
	}
	res, err := st.Fail(ctx, claimID, fails, store.RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Dead)
	}
	pending, err := st.InsertEvents(ctx, newEvents(5, "issues"))
	require.NoError(t, err)
	for _, r := range pending {
		s.pending = append(s.pending, r.ID)
	}

	for i, name := range []string{"hook_receiver", "workflow_coordinator", "model_metrics"} {
		sess, err := st.CreateSession(ctx, store.Session{ServiceName: name, InstanceID: fmt.Sprintf("host-%d", i)})
		require.NoError(t, err)
		s.sessions = append(s.sessions, sess)
	}
	require.NoError(t, st.EndSession(ctx, s.sessions[2].ID, store.SessionEnded))
	s.activeSessions = 2

	s.pools = []store.ConnectionSnapshot{
		{ServiceName: "hook_receiver", InstanceID: "host-0", PoolSize: 20, Active: 5, Idle: 15, TotalQueries: 1000,
			AvgQueryTimeMS: 1.5, UtilizationPercent: 25},
		{ServiceName: "workflow_coordinator", InstanceID: "host-1", PoolSize: 10, Active: 8, Idle: 2, Waiting: 3,
			TotalQueries: 500, FailedQueries: 2, AvgQueryTimeMS: 4, PotentialLeaks: 1, UtilizationPercent: 80},
	}
	for _, p := range s.pools {
		require.NoError(t, st.RecordConnectionMetrics(ctx, p))
	}

	require.NoError(t, st.AppendAudits(ctx, []store.AuditEvent{
		{Type: "hook.signature_invalid", ClientInfo: map[string]any{"remote_addr": "203.0.113.7", "source": "github"}, ErrorDetails: "bad signature"},
		{Type: "hook.signature_invalid", ClientInfo: map[string]any{"remote_addr": "203.0.113.8"}, ErrorDetails: "<img src=x onerror=alert(1)>"},
		{Type: "api.auth_failed", ClientInfo: map[string]any{"remote_addr": "198.51.100.1", "reason": "invalid"}, ErrorDetails: "invalid bearer token"},
		{Type: "retention.run", Success: true},
		{Type: "migrations.applied", Success: true},
	}))
	s.failedAudit, s.okAudit = 3, 2
	return s
}
