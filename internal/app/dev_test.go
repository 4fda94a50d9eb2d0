package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/internal/app"
	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func devConfig(t *testing.T, dbURL string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.Dev.DataDir = t.TempDir() + "/pgdata"
	for _, rc := range []*string{
		&cfg.Services.HookReceiver.Runtime.Addr,
		&cfg.Services.WorkflowCoordinator.Runtime.Addr,
		&cfg.Services.ModelMetrics.Runtime.Addr,
	} {
		*rc = "127.0.0.1:0"
	}
	cfg.Services.WorkflowCoordinator.Coordinator.PollInterval = 100 * time.Millisecond
	return cfg
}

// TestDevEndToEnd is what a developer does with `omnibridge dev`: send the
// signed webhook the printed curl sends, see the event in Kafka and in the
// performance API, stop, and find every session ended.
func TestDevEndToEnd(t *testing.T) {
	dbURL := testdb.New(t)
	var banner bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := app.StartDev(ctx, devConfig(t, dbURL), slog.New(slog.DiscardHandler), app.DevOptions{Out: &banner, Version: "test"})
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()

	out := banner.String()
	require.Contains(t, out, "dashboard:")
	require.Contains(t, out, d.URL(config.ModelMetricsName)+"/")
	require.Contains(t, out, "curl -i -X POST "+d.URL(config.HookReceiverName)+"/hooks/dev")
	// The CLI line names this stack's database and broker.
	require.Contains(t, out, d.CLIEnv()+" omnibridge health")
	require.Contains(t, d.CLIEnv(), "OMNIBRIDGE_KAFKA_BROKERS='"+strings.Join(d.Config.Kafka.Brokers, ",")+"'")
	if config.RedactURL(dbURL) == dbURL {
		require.Contains(t, d.CLIEnv(), "OMNIBRIDGE_DATABASE_URL='"+dbURL+"'")
	} else {
		require.NotContains(t, d.CLIEnv(), "OMNIBRIDGE_DATABASE_URL", "a password is not printed")
	}

	// Like any client, wait until the services say they are ready.
	for _, name := range app.AllServices {
		require.Eventually(t, func() bool {
			resp, err := http.Get(d.URL(name) + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 30*time.Second, 50*time.Millisecond, "%s ready", name)
	}

	// Send exactly what the printed curl sends.
	req := curlRequest(t, d.Curl)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	var ack struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	require.NoError(t, json.Unmarshal(body, &ack))

	// The same curl again is a duplicate.
	resp, err = http.DefaultClient.Do(curlRequest(t, d.Curl))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The event reaches Kafka.
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	recs, err := kafka.ReadAll(rctx, d.Config.Kafka, 1)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "42", string(recs[0].Key))
	require.Contains(t, string(recs[0].Value), ack.ID)

	// And the performance API counts it as processed.
	require.Eventually(t, func() bool {
		resp, err := http.Get(d.URL(config.ModelMetricsName) + "/api/v1/performance?window=1h")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var perf struct {
			Received  int `json:"received"`
			Processed int `json:"processed"`
		}
		return json.NewDecoder(resp.Body).Decode(&perf) == nil && perf.Received == 1 && perf.Processed == 1
	}, 30*time.Second, 100*time.Millisecond)

	cancel()
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop within 60s")
	}

	c, err := pgclient.Open(context.Background(), pgclient.Config{URL: dbURL, MinConns: -1, MaxConns: 2})
	require.NoError(t, err)
	defer c.Close()
	sessions, err := store.New(c).ListSessions(context.Background(), store.SessionFilter{})
	require.NoError(t, err)
	require.Len(t, sessions, 3)
	for _, s := range sessions {
		require.Equal(t, store.SessionEnded, s.Status, "session of %s", s.ServiceName)
	}
}

// curlRequest turns the printed curl back into a request.
func curlRequest(t *testing.T, curl string) *http.Request {
	t.Helper()
	lines := strings.Split(curl, "\n")
	fields := strings.Fields(strings.TrimSuffix(lines[0], " \\"))
	url := fields[len(fields)-1]
	var body string
	h := http.Header{}
	for _, l := range lines[1:] {
		l = strings.TrimSuffix(strings.TrimSpace(l), " \\")
		switch {
		case strings.HasPrefix(l, "-H '"):
			kv := strings.TrimSuffix(strings.TrimPrefix(l, "-H '"), "'")
			k, v, _ := strings.Cut(kv, ": ")
			h.Set(k, v)
		case strings.HasPrefix(l, "--data-binary '"):
			body = strings.TrimSuffix(strings.TrimPrefix(l, "--data-binary '"), "'")
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header = h
	return req
}

func TestServeRefusesWithoutToken(t *testing.T) {
	cfg := devConfig(t, testdb.New(t))
	_, err := app.StartServices(context.Background(), cfg, slog.New(slog.DiscardHandler),
		[]string{config.ModelMetricsName}, app.ServeOptions{})
	require.ErrorContains(t, err, "token")
}
