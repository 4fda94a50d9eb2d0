package pgclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
)

// toxi is a toxiproxy proxy running in the test process, in front of the
// package's test server.
type toxi struct {
	proxy *toxiproxy.Proxy
}

// newToxi starts a proxy from 127.0.0.1:<free port> to upstream (host:port),
// stopped at cleanup.
func newToxi(t *testing.T, upstream string) *toxi {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(server, strings.ReplaceAll(t.Name(), "/", "_"), "127.0.0.1:0", upstream)
	require.NoError(t, p.Start())
	t.Cleanup(p.Stop)
	return &toxi{proxy: p}
}

// port returns the proxy's listening port.
func (x *toxi) port(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(x.proxy.Listen)
	require.NoError(t, err)
	return port
}

// add adds a toxic; stream is "upstream" (client → server) or "downstream".
// A toxic still there when the test ends is removed then.
func (x *toxi) add(t *testing.T, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	require.NoError(t, x.tryAdd(name, typ, stream, attrs))
	t.Cleanup(func() { _ = x.proxy.Toxics.RemoveToxic(context.Background(), name) })
}

// tryAdd is add for goroutines other than the test's.
func (x *toxi) tryAdd(name, typ, stream string, attrs map[string]any) error {
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		return err
	}
	_, err = x.proxy.Toxics.AddToxicJson(strings.NewReader(string(body)))
	return err
}

// remove removes a toxic.
func (x *toxi) remove(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, x.proxy.Toxics.RemoveToxic(context.Background(), name))
}

// proxiedURL returns a URL of a fresh empty database on the test server,
// reached through x.
func (x *toxi) proxiedURL(t *testing.T) string {
	t.Helper()
	return withHostPort(t, testdb.NewEmpty(t), "127.0.0.1", x.port(t))
}

// withHostPort returns connString (a URL) with its host and port replaced.
func withHostPort(t *testing.T, connString, host, port string) string {
	t.Helper()
	u := mustParseURL(t, connString)
	u.Host = net.JoinHostPort(host, port)
	return u.String()
}

// serverPort returns the host:port of the package's test server.
func serverAddr(t *testing.T) string {
	t.Helper()
	u := mustParseURL(t, testdb.AdminURL(t))
	return u.Host
}

// eventLog collects security events and breaker changes.
type eventLog struct {
	mu       sync.Mutex
	security []pgclient.SecurityEvent
	breaker  []pgclient.BreakerChange
}

func (l *eventLog) onSecurity(e pgclient.SecurityEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.security = append(l.security, e)
}

func (l *eventLog) onBreaker(c pgclient.BreakerChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.breaker = append(l.breaker, c)
}

func (l *eventLog) securityEvents() []pgclient.SecurityEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]pgclient.SecurityEvent(nil), l.security...)
}

// transitions returns the breaker changes as "from→to".
func (l *eventLog) transitions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.breaker {
		out = append(out, c.From.String()+"→"+c.To.String())
	}
	return out
}

// reset forgets what was collected so far.
func (l *eventLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.security, l.breaker = nil, nil
}

// hook installs the log's callbacks into cfg.
func (l *eventLog) hook(cfg *pgclient.Config) {
	cfg.OnSecurityEvent = l.onSecurity
	cfg.OnBreakerChange = l.onBreaker
}

// fastConfig is a client configuration with short timeouts and retry delays,
// so that fault tests finish quickly.
func fastConfig(url string) pgclient.Config {
	return pgclient.Config{
		URL:            url,
		Logger:         slog.New(slog.DiscardHandler),
		MinConns:       -1,
		MaxConns:       8,
		QueryTimeout:   300 * time.Millisecond,
		CancelGrace:    100 * time.Millisecond,
		AcquireTimeout: time.Second,
		ConnectTimeout: time.Second,
		HealthTimeout:  time.Second,
		Breaker: pgclient.BreakerConfig{
			FailureThreshold: 3,
			OpenTimeout:      300 * time.Millisecond,
			HalfOpenProbes:   1,
		},
		Retry: pgclient.RetryConfig{
			ConnectRetries:     2,
			ConnectRetryBase:   20 * time.Millisecond,
			ConnectRetryMax:    50 * time.Millisecond,
			StatementRetries:   2,
			StatementRetryBase: 10 * time.Millisecond,
			StatementRetryMax:  50 * time.Millisecond,
			TxRetryBase:        5 * time.Millisecond,
			TxRetryMax:         20 * time.Millisecond,
			MaxElapsed:         5 * time.Second,
		},
	}
}

// openClient opens a client and closes it at cleanup, after checking that
// nothing is still acquired.
func openClient(t *testing.T, cfg pgclient.Config) *pgclient.Client {
	t.Helper()
	if cfg.ServiceName == "" {
		cfg.ServiceName = serviceName(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgclient.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ok := assert.Eventually(t, func() bool { return c.Pool().Stat().AcquiredConns() == 0 },
			10*time.Second, 10*time.Millisecond, "connections still acquired at the end of the test")
		if !ok {
			buf := make([]byte, 1<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
		}
		c.Close()
	})
	return c
}

// serviceName derives a service (and application) name from the test name.
func serviceName(t *testing.T) string {
	n := "t_" + strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "-", "_").Replace(t.Name()))
	if len(n) > 60 {
		n = n[:60]
	}
	return n
}

// selectOne runs SELECT 1 through c and returns its error.
func selectOne(ctx context.Context, c *pgclient.Client) error {
	var n int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("SELECT 1 returned %d", n)
	}
	return nil
}

// waitBreaker waits until c's breaker is in state.
func waitBreaker(t *testing.T, c *pgclient.Client, state pgclient.BreakerState, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return c.BreakerStatus().State == state },
		within, 5*time.Millisecond, "breaker never became %s (is %s)", state, c.BreakerStatus().State)
}

// mustParseURL parses a connection URL.
func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// gaugeValue returns the value of the metric name (a gauge or a counter)
// whose labels include labels, from reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == k && lp.GetValue() == v)
				}
				if !found {
					continue metric
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}
