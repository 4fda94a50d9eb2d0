package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type bundle struct {
	rt   *service.Runtime
	base string
	url  string
}

func setup(t *testing.T, mutate func(*service.Options)) *bundle {
	t.Helper()
	url := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o := service.Options{
		Name:     "test_service",
		Version:  "v-test",
		Config:   service.Config{HeartbeatInterval: 50 * time.Millisecond, MetricsInterval: 50 * time.Millisecond}.WithDefaults(":0"),
		Database: pgclient.Config{URL: url, MinConns: 1, MaxConns: 4},
		Listener: ln,
	}
	if mutate != nil {
		mutate(&o)
	}
	rt, err := service.New(context.Background(), o)
	require.NoError(t, err)
	return &bundle{rt: rt, base: "http://" + rt.Addr(), url: url}
}

// run starts Run and returns a function that stops it and returns its error.
func (b *bundle) run(t *testing.T) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.rt.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func sessionsOf(t *testing.T, url string) []store.Session {
	t.Helper()
	c, err := pgclient.Open(context.Background(), pgclient.Config{URL: url, MinConns: -1, MaxConns: 2})
	require.NoError(t, err)
	defer c.Close()
	s, err := store.New(c).ListSessions(context.Background(), store.SessionFilter{})
	require.NoError(t, err)
	return s
}

func TestLifecycleRegistersHeartbeatsAndEndsSession(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	stop := b.run(t)

	code, body := get(t, b.base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"status":"ok"`)

	code, body = get(t, b.base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	sess := sessionsOf(t, b.url)
	require.Len(t, sess, 1)
	require.Equal(t, "test_service", sess[0].ServiceName)
	require.Equal(t, store.SessionActive, sess[0].Status)
	require.Equal(t, "v-test", sess[0].Metadata["version"])
	first := sess[0].LastSeen

	require.Eventually(t, func() bool {
		return sessionsOf(t, b.url)[0].LastSeen.After(first)
	}, 10*time.Second, 20*time.Millisecond, "heartbeat moves last_seen")

	code, body = get(t, b.base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "omnibridge_pgclient_", "the pool's metrics are exported")
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, `omnibridge_audit_dropped_total{reason="queue_full"} 0`, "every drop reason from the start")

	require.NoError(t, stop())
	sess = sessionsOf(t, b.url)
	require.Equal(t, store.SessionEnded, sess[0].Status)
	require.NotNil(t, sess[0].EndedAt)
}

func TestConnectionMetricsAreRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t)
	c, err := pgclient.Open(context.Background(), pgclient.Config{URL: b.url, MinConns: -1, MaxConns: 2})
	require.NoError(t, err)
	defer c.Close()
	require.Eventually(t, func() bool {
		snaps, err := store.New(c).LatestConnectionMetrics(context.Background())
		return err == nil && len(snaps) == 1 && snaps[0].InstanceID == b.rt.InstanceID && snaps[0].PoolSize == 4
	}, 10*time.Second, 20*time.Millisecond)
}

func TestReadyzFailsWhenACheckFails(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.rt.AddReadyCheck("kafka", func(context.Context) error { return errors.New("broker unreachable") })
	b.run(t)
	code, body := get(t, b.base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var res struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	require.False(t, res.Ready)
	require.Equal(t, "broker unreachable", res.Checks["kafka"])
	require.Equal(t, "ok", res.Checks["database"])
}

func TestShutdownOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var mu sync.Mutex
	var steps []string
	note := func(s string) { mu.Lock(); steps = append(steps, s); mu.Unlock() }

	inflight := make(chan struct{})
	b.rt.Mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(inflight)
		time.Sleep(200 * time.Millisecond)
		note("request finished")
		_, _ = io.WriteString(w, "done")
	})
	b.rt.Go(func(ctx context.Context) error { <-ctx.Done(); note("worker stopped"); return nil })
	b.rt.OnDrain(func(context.Context) error { note("drain 1"); return nil })
	b.rt.OnDrain(func(context.Context) error { note("drain 2"); return nil })
	stop := b.run(t)

	respCh := make(chan string, 1)
	go func() {
		resp, err := http.Get(b.base + "/slow")
		if err != nil {
			respCh <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		respCh <- string(body)
	}()
	<-inflight
	require.NoError(t, stop())
	require.Equal(t, "done", <-respCh, "an in-flight request finishes during shutdown")
	require.Equal(t, []string{"request finished", "worker stopped", "drain 1", "drain 2"}, steps)
	require.Equal(t, store.SessionEnded, sessionsOf(t, b.url)[0].Status)
}

func TestFailingWorkerStopsTheServiceAndFailsTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.rt.Go(func(context.Context) error { return errors.New("worker exploded") })
	done := make(chan error, 1)
	go func() { done <- b.rt.Run(context.Background()) }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "worker exploded")
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its worker failed")
	}
	require.Equal(t, store.SessionFailed, sessionsOf(t, b.url)[0].Status)
}

func TestNewFailsClearly(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	// The address is taken.
	_, err = service.New(context.Background(), service.Options{
		Name:     "clash",
		Config:   service.Config{}.WithDefaults(ln.Addr().String()),
		Database: pgclient.Config{URL: url, MinConns: 1, MaxConns: 2},
	})
	require.ErrorContains(t, err, "listen on "+ln.Addr().String())

	// The database is unreachable: the listener is released again.
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	u.Host = "127.0.0.1:1" // nothing listens on port 1
	dead := u.String()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln2.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = service.New(ctx, service.Options{
		Name:     "nodb",
		Config:   service.Config{}.WithDefaults(addr),
		Database: pgclient.Config{URL: dead + "&connect_timeout=2", MinConns: 1, MaxConns: 2},
		Listener: ln2,
	})
	require.ErrorContains(t, err, "open database")
	ln3, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the listener was closed on failure")
	ln3.Close()
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, service.Config{}.WithDefaults(":8080").Validate())
	err := service.Config{Addr: "nope", HeartbeatInterval: -1, MaxHeaderBytes: 10,
		Database: service.DatabaseOverride{MinConns: 5, MaxConns: 2}}.WithDefaults(":8080").Validate()
	require.Error(t, err)
	for _, want := range []string{`addr: invalid value "nope"`, "heartbeat_interval", "max_header_bytes", "min_conns=5 max_conns=2"} {
		require.ErrorContains(t, err, want)
	}
}

func TestPoolDegradationIsAudited(t *testing.T) {
	t.Parallel()
	raised := make(chan struct{}, 1)
	b := setup(t, func(o *service.Options) {
		o.Database.MaxConns = 2
		o.Database.UtilizationWarn = 0.5
		o.Database.UtilizationWarnAfter = 50 * time.Millisecond
		o.Database.OnDegradation = func(ev pgclient.DegradationEvent) {
			if !ev.Recovered {
				select {
				case raised <- struct{}{}:
				default:
				}
			}
		}
	})
	b.run(t)
	// Hold every connection of the service's pool: utilization 100%.
	ctx := context.Background()
	var held []*pgclient.Conn
	for range 2 {
		c, err := b.rt.DB.Acquire(ctx)
		require.NoError(t, err)
		held = append(held, c)
	}
	release := sync.OnceFunc(func() {
		for _, h := range held {
			h.Release()
		}
	})
	t.Cleanup(release)
	// Hold them until the episode is raised: no connection is free to write it.
	select {
	case <-raised:
	case <-time.After(30 * time.Second):
		t.Fatal("no high-utilization episode within 30s of exhausting the pool")
	}
	release()

	c, err := pgclient.Open(ctx, pgclient.Config{URL: b.url, MinConns: -1, MaxConns: 2})
	require.NoError(t, err)
	defer c.Close()
	var types []string
	require.Eventually(t, func() bool {
		page, err := store.New(c).ListAudit(ctx, store.AuditFilter{Type: store.DegradationPrefix + "*"})
		if err != nil || len(page.Events) == 0 {
			return false
		}
		for _, e := range page.Events {
			types = append(types, e.Type)
		}
		return true
	}, 20*time.Second, 50*time.Millisecond, "the high-utilization episode reaches the audit log once a connection is free")
	require.Contains(t, types, "degradation.database.high_utilization")
}

func TestReapedSessionIsReplacedByTheNextHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	first := b.rt.SessionID()
	stop := b.run(t)

	// The reaper closes the session as if the instance had been silent.
	_, err := b.rt.Store.ReapSessions(context.Background(), time.Nanosecond)
	require.NoError(t, err)

	// The new session is in the table a moment before the runtime holds its
	// id: wait for both.
	require.Eventually(t, func() bool {
		id := b.rt.SessionID()
		if id == first {
			return false
		}
		for _, s := range sessionsOf(t, b.url) {
			if s.ID == id && s.Status == store.SessionActive {
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "the next heartbeat registers a new active session")

	require.NoError(t, stop())
	byID := map[uuid.UUID]store.SessionStatus{}
	for _, s := range sessionsOf(t, b.url) {
		byID[s.ID] = s.Status
	}
	require.Equal(t, store.SessionTerminated, byID[first])
	require.Equal(t, store.SessionEnded, byID[b.rt.SessionID()], "shutdown ends the current session")
}
