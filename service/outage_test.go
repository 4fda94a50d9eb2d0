package service_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

// outage is testdb.Outage on a bundle's database, for the service's own
// connections, with a pool on that database that is never terminated.
type outage struct {
	*testdb.Outage
	app   string
	probe *pgxpool.Pool
}

func newOutage(t *testing.T, b *bundle) *outage {
	t.Helper()
	probe, err := pgxpool.New(context.Background(), b.url)
	require.NoError(t, err)
	t.Cleanup(probe.Close)
	return &outage{Outage: testdb.NewOutage(t, b.url), app: b.rt.Name, probe: probe}
}

func (o *outage) terminate(t *testing.T) { t.Helper(); o.Terminate(t, o.app) }

// down terminates the service's connections and refuses new ones until the
// test calls up (or ends).
func (o *outage) down(t *testing.T) {
	t.Helper()
	o.AllowConnections(t, false)
	o.terminate(t)
}

func (o *outage) up(t *testing.T) { t.Helper(); o.AllowConnections(t, true) }

// now is the database's clock.
func (o *outage) now(t *testing.T) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, o.probe.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&now))
	return now
}

// runInBackground starts Run and returns its result channel; the test ends
// it by cancelling.
func runInBackground(t *testing.T, b *bundle) (done <-chan error, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- b.rt.Run(ctx) }()
	stop = func() error {
		cancel()
		select {
		case err := <-ch:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return ch, stop
}

// requireRunning fails the test if Run has returned.
func requireRunning(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the service stopped during the outage: %v", err)
	default:
	}
}

// readyz returns /readyz's status and its checks.
func readyz(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	code, body := get(t, base+"/readyz")
	var res struct {
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &res), body)
	return code, res.Checks
}

// TestReadyzFollowsTheDatabase: while the database refuses the service's
// connections /readyz answers 503 naming the database, within its own
// timeout, and /healthz (liveness) stays 200: the process is fine and must
// not be restarted for it. Once the database is back, /readyz is 200 again.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *service.Options) {
		o.Database.ConnectTimeout = 2 * time.Second
		o.Database.Breaker = pgclient.BreakerConfig{OpenTimeout: 200 * time.Millisecond}
	})
	done, stop := runInBackground(t, b)
	db := newOutage(t, b)
	code, _ := readyz(t, b.base)
	require.Equal(t, http.StatusOK, code)

	db.down(t)
	require.Eventually(t, func() bool {
		start := time.Now()
		code, checks := readyz(t, b.base)
		require.Less(t, time.Since(start), 15*time.Second, "/readyz answers within its timeout")
		return code == http.StatusServiceUnavailable && checks["database"] != "ok"
	}, 20*time.Second, 20*time.Millisecond, "/readyz reports the database")
	code, body := get(t, b.base+"/healthz")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on the database: %s", body)

	db.up(t)
	require.Eventually(t, func() bool {
		code, _ := readyz(t, b.base)
		return code == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "/readyz recovers")
	requireRunning(t, done)
	require.NoError(t, stop())
}

// TestBackgroundLoopsSurviveAnOutage: the session heartbeat and the pool
// snapshots fail while the service's connections are terminated and new ones
// refused; they are logged, the service keeps running, and both resume on
// their own once the database is back.
func TestBackgroundLoopsSurviveAnOutage(t *testing.T) {
	t.Parallel()
	var logs logLines
	b := setup(t, func(o *service.Options) {
		o.Logger = logs.logger()
		o.Database.ConnectTimeout = 2 * time.Second
		o.Database.Breaker = pgclient.BreakerConfig{OpenTimeout: 200 * time.Millisecond}
	})
	done, stop := runInBackground(t, b)
	db := newOutage(t, b)
	session := b.rt.SessionID()

	// Connections lost while the server is up.
	for range 3 {
		db.terminate(t)
		requireLoopsAfter(t, b, db, db.now(t))
	}

	// Connections refused for several heartbeat and snapshot intervals.
	beats, snaps := logs.count("service: heartbeat failed"), logs.count("store: record connection metrics failed")
	db.down(t)
	require.Eventually(t, func() bool {
		return logs.count("service: heartbeat failed") >= beats+3 &&
			logs.count("store: record connection metrics failed") >= snaps+3
	}, 20*time.Second, 20*time.Millisecond, "the loops keep trying while the database is down")
	db.up(t)
	requireLoopsAfter(t, b, db, db.now(t))

	requireRunning(t, done)
	require.Equal(t, session, b.rt.SessionID(), "the session was not reaped: it is kept")
	require.NoError(t, stop())
	require.Equal(t, store.SessionEnded, sessionsOf(t, b.url)[0].Status)
}

// requireLoopsAfter waits until the heartbeat moved the session's last_seen
// past since and a pool snapshot was recorded after it.
func requireLoopsAfter(t *testing.T, b *bundle, db *outage, since time.Time) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var beat, snap bool
		err := db.probe.QueryRow(ctx, `SELECT
			EXISTS (SELECT FROM omnibridge.service_sessions WHERE id = $1 AND status = 'active' AND last_seen > $2),
			EXISTS (SELECT FROM omnibridge.connection_metrics WHERE instance_id = $3 AND recorded_at > $2)`,
			b.rt.SessionID(), since, b.rt.InstanceID).Scan(&beat, &snap)
		return err == nil && beat && snap
	}, 30*time.Second, 20*time.Millisecond, "heartbeat and pool snapshots resume")
}

// logLines is a log that tests can count lines of.
type logLines struct{ buf testdb.SyncBuffer }

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (l *logLines) count(msg string) int {
	return strings.Count(l.buf.String(), "msg=\""+msg+"\"")
}

// TestAuditRowsSurviveTerminatedConnections: audit events written while the
// service's connections are terminated under the audit writer reach the
// audit log, once each; none is dropped.
func TestAuditRowsSurviveTerminatedConnections(t *testing.T) {
	t.Parallel()
	b := setup(t, nil) // the default breaker, as in production
	_, stop := runInBackground(t, b)
	db := newOutage(t, b)

	const rounds, each = 5, 20
	for r := range rounds {
		db.terminate(t)
		for i := range each {
			require.True(t, b.rt.Audit.Write(store.AuditEvent{Type: "test.outage",
				ClientInfo: map[string]any{"n": r*each + i}}))
		}
	}
	require.Eventually(t, func() bool {
		return b.rt.Audit.Stats().Written >= rounds*each
	}, 30*time.Second, 20*time.Millisecond, "every audit event is written: %+v", b.rt.Audit.Stats())
	require.Empty(t, b.rt.Audit.Stats().Dropped)
	var n, distinct int
	require.NoError(t, db.probe.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT client_info->>'n')
		FROM omnibridge.security_audit_log WHERE event_type = 'test.outage'`).Scan(&n, &distinct))
	require.Equal(t, rounds*each, n)
	require.Equal(t, rounds*each, distinct)
	require.NoError(t, stop())
}

// TestBreakerOpeningIsAuditedAfterTheOutage: the audit event of the circuit
// breaker opening is raised while the database is unavailable to the pool;
// it waits in the audit writer's queue and reaches the audit log once the
// database is back, instead of being dropped after a few attempts made while
// the breaker refused everything.
func TestBreakerOpeningIsAuditedAfterTheOutage(t *testing.T) {
	t.Parallel()
	var logs logLines
	b := setup(t, func(o *service.Options) {
		o.Logger = logs.logger()
		o.Database.Breaker = pgclient.BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Second}
	})
	_, stop := runInBackground(t, b)
	db := newOutage(t, b)
	ctx := context.Background()

	// Heartbeats and pool snapshots time out behind these locks: transient
	// failures in a row, which open the breaker.
	tx, err := db.probe.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Exec(ctx, `LOCK TABLE omnibridge.service_sessions, omnibridge.connection_metrics IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.rt.DB.BreakerStatus().State == pgclient.BreakerOpen },
		20*time.Second, 10*time.Millisecond, "the breaker opens")
	// The audit writer tried as often as its attempts while the breaker
	// refused them (unless a probe of the half-open breaker wrote it first).
	require.Eventually(t, func() bool {
		return logs.count("store: audit writer: write failed") >= store.DefaultAuditMaxAttempts || b.rt.Audit.Stats().Written > 0
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, tx.Rollback(ctx))

	require.Eventually(t, func() bool {
		var n int
		err := db.probe.QueryRow(ctx, `SELECT count(*) FROM omnibridge.security_audit_log WHERE event_type = $1`,
			pgclient.SecurityEventBreakerOpened).Scan(&n)
		return err == nil && n > 0
	}, 20*time.Second, 20*time.Millisecond, "the breaker's opening reaches the audit log")
	require.Zero(t, b.rt.Audit.Stats().Dropped[store.DropWriteFailed])
	require.NoError(t, stop())
}

// TestShutdownRightAfterAnOutageEndsTheSession: a service stopped while its
// circuit breaker is still open from an outage that is over waits for the
// breaker (within its shutdown timeout) to record the end of its session,
// instead of leaving it active for the reaper.
func TestShutdownRightAfterAnOutageEndsTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *service.Options) {
		o.Database.ConnectTimeout = 2 * time.Second
		o.Database.Breaker = pgclient.BreakerConfig{OpenTimeout: 500 * time.Millisecond}
	})
	_, stop := runInBackground(t, b)
	db := newOutage(t, b)
	db.down(t)
	require.Eventually(t, func() bool {
		// Refused connections open the breaker; the heartbeat and the
		// snapshots make the calls that trip it.
		return b.rt.DB.BreakerStatus().State == pgclient.BreakerOpen
	}, 20*time.Second, 10*time.Millisecond, "the breaker opens")
	db.up(t)
	require.NoError(t, stop())
	require.Equal(t, store.SessionEnded, sessionsOf(t, b.url)[0].Status)
}
