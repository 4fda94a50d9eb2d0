package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

type healthOut struct {
	Status     string         `json:"status"`
	Components []componentOut `json:"components"`
}

func health(t *testing.T, args ...string) (healthOut, int) {
	t.Helper()
	out, err := run(t, append([]string{"health", "--json"}, args...)...)
	code := 0
	if err != nil {
		ec, ok := err.(exitCodeError)
		require.True(t, ok, "unexpected error: %v", err)
		code = ec.code
	}
	var h healthOut
	require.NoError(t, json.Unmarshal([]byte(out), &h), out)
	return h, code
}

type componentOut = struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

func find(t *testing.T, h healthOut, name string) componentOut {
	t.Helper()
	for _, c := range h.Components {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %q in %+v", name, h)
	return componentOut{}
}

func component(t *testing.T, h healthOut, name string) string {
	t.Helper()
	return find(t, h, name).Status
}

// withBroker points the commands at an in-process Kafka broker.
func withBroker(t *testing.T) {
	t.Helper()
	broker, err := kafka.StartBroker()
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	t.Setenv("OMNIBRIDGE_KAFKA_BROKERS", broker.Addrs()[0])
}

func TestHealthExitCodes(t *testing.T) {
	dbURL := testdb.New(t)
	withBroker(t)

	// Retention never ran: degraded.
	h, code := health(t, "--database-url", dbURL)
	require.Equal(t, 1, code)
	require.Equal(t, "degraded", h.Status)
	require.Equal(t, "degraded", component(t, h, "maintenance"))
	require.Equal(t, "healthy", component(t, h, "kafka"))
	require.Equal(t, "healthy", component(t, h, "migrations"))

	_, err := run(t, "cleanup", "--database-url", dbURL)
	require.NoError(t, err)
	h, code = health(t, "--database-url", dbURL)
	require.Equal(t, 0, code, "%+v", h)
	require.Equal(t, "healthy", h.Status)

	// An event pending for two hours: unhealthy.
	st := openStore(t, dbURL)
	_, err = st.ImportNDJSON(context.Background(), strings.NewReader(
		`{"source":"s","action":"a","resource":"r","resource_id":"1","payload":{},"created_at":"`+
			time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339)+`"}`), store.ImportOptions{})
	require.NoError(t, err)
	h, code = health(t, "--database-url", dbURL)
	require.Equal(t, 2, code)
	require.Equal(t, "unhealthy", component(t, h, "backlog"))
}

func TestHealthUnreachableAndBehind(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testdb.New(t))
	require.NoError(t, err)
	u.Host = "127.0.0.1:1"
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	h, code := health(t, "--database-url", u.String())
	require.Equal(t, 2, code)
	require.Equal(t, "unhealthy", component(t, h, "database"))

	h, code = health(t, "--database-url", testdb.NewEmpty(t))
	require.Equal(t, 2, code)
	require.Equal(t, "unhealthy", component(t, h, "migrations"))
}

func TestStats(t *testing.T) {
	t.Parallel()
	dbURL := testdb.New(t)
	out, err := run(t, "stats", "--json", "--database-url", dbURL)
	require.NoError(t, err)
	var s struct {
		Performance map[string]any `json:"performance"`
		Pools       []any          `json:"pools"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	require.Contains(t, s.Performance, "backlog")
	out, err = run(t, "stats", "--database-url", dbURL)
	require.NoError(t, err)
	require.Contains(t, out, "backlog: 0")
	require.Contains(t, out, "SERVICE")
}

// TestHealthPoolsCountLiveInstances: an instance that stopped reporting
// (killed, or restarted under a new instance id) is listed apart; its last
// snapshot, leaks and all, does not make the pools degraded.
func TestHealthPoolsCountLiveInstances(t *testing.T) {
	dbURL := testdb.New(t)
	withBroker(t)
	_, err := run(t, "cleanup", "--database-url", dbURL)
	require.NoError(t, err)

	st := openStore(t, dbURL)
	ctx := context.Background()
	snap := func(instance string, leaks int, at time.Time) {
		require.NoError(t, st.RecordConnectionMetrics(ctx, store.ConnectionSnapshot{ServiceName: "hook_receiver",
			InstanceID: instance, PoolSize: 10, Idle: 10, PotentialLeaks: leaks, RecordedAt: at}))
	}
	snap("gone", 2, time.Now().Add(-10*time.Minute))
	snap("live", 0, time.Now())

	h, code := health(t, "--database-url", dbURL)
	require.Equal(t, 0, code, "%+v", h)
	require.Equal(t, "healthy", component(t, h, "pools"))
	require.Contains(t, find(t, h, "pools").Detail, "1 service instances reporting; 1 stopped reporting")

	// The same snapshot counts while it is recent enough.
	h, code = health(t, "--database-url", dbURL, "--snapshot-max-age", "1h")
	require.Equal(t, 1, code, "%+v", h)
	require.Equal(t, "degraded", component(t, h, "pools"))
	require.Contains(t, find(t, h, "pools").Detail, "hook_receiver/gone reports 2 potential connection leaks")

	// A live instance's leak is reported with the stopped ones noted.
	snap("leaking", 1, time.Now())
	h, code = health(t, "--database-url", dbURL)
	require.Equal(t, 1, code, "%+v", h)
	require.Equal(t, "hook_receiver/leaking reports 1 potential connection leaks; 1 stopped reporting (no snapshot for 5m0s)",
		find(t, h, "pools").Detail)
}
