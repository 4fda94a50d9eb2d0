package hookreceiver_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

// Secrets of the test sources.
var (
	githubSecret   = "It's a Secret to Everybody"
	billingKeyNew  = []byte("billing-current-key-0001")
	billingKeyOld  = []byte("billing-previous-key-002")
	billingSecrets = []string{
		hookreceiver.StandardWebhooksSecretPrefix + base64.StdEncoding.EncodeToString(billingKeyNew),
		hookreceiver.StandardWebhooksSecretPrefix + base64.StdEncoding.EncodeToString(billingKeyOld),
	}
	shopSecret     = "shop-secret-0123456789"
	internalToken  = "internal-token-0123456789abcdef"
	limitedToken   = "limited-token-0123456789abcdef"
	smallBodyLimit = int64(4096)
)

// testSources is one source of each verifier, plus a rate-limited one and one
// with a small body limit.
func testSources() []hookreceiver.SourceConfig {
	return []hookreceiver.SourceConfig{
		{Name: "github", Verifier: hookreceiver.VerifierGitHub, Secrets: []string{githubSecret}},
		{Name: "billing", Verifier: hookreceiver.VerifierStandardWebhooks, Secrets: billingSecrets},
		{Name: "shop", Verifier: hookreceiver.VerifierHMACSHA256, Secrets: []string{shopSecret},
			Header: "X-Shop-Hmac-Sha256", Encoding: hookreceiver.EncodingBase64},
		{Name: "internal", Verifier: hookreceiver.VerifierBearer, Secrets: []string{internalToken}},
		{Name: "open", Verifier: hookreceiver.VerifierNone, AllowUnsigned: true},
		{Name: "limited", Verifier: hookreceiver.VerifierBearer, Secrets: []string{limitedToken},
			RateLimit: hookreceiver.RateLimitConfig{PerSecond: 0.01, Burst: 2}},
		{Name: "small", Verifier: hookreceiver.VerifierBearer, Secrets: []string{internalToken}, BodyLimit: smallBodyLimit},
	}
}

// bundle is a receiver running on a service runtime, as `omnibridge serve`
// wires it, with real HTTP on 127.0.0.1 and a database of its own.
type bundle struct {
	rt     *service.Runtime
	recv   *hookreceiver.Receiver
	audit  *store.AuditWriter
	base   string // http://127.0.0.1:port
	dbURL  string
	db     *pgxpool.Pool // for assertions
	client *http.Client
	stop   func() error // stops Run (idempotent) and returns its error
}

// options change a bundle before it starts.
type options struct {
	cfg     hookreceiver.Config
	svc     service.Config
	dbURL   string // defaults to testdb.New
	addr    string // defaults to 127.0.0.1:0
	poolMax int32
}

func testLogger() *slog.Logger {
	if os.Getenv("HOOKRECEIVER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startBundle wires and starts a receiver: service.New, New, Mount, Run.
func startBundle(t testing.TB, mutate func(*options)) *bundle {
	t.Helper()
	o := options{cfg: hookreceiver.Config{Sources: testSources()}}
	if mutate != nil {
		mutate(&o)
	}
	if o.dbURL == "" {
		o.dbURL = testdb.New(t)
	}
	b, err := newBundle(context.Background(), o, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, b.stop())
		b.client.CloseIdleConnections()
		b.db.Close()
	})
	b.waitReady(t)
	return b
}

// newBundle is startBundle without a testing.TB: the crash test's child
// process uses it too.
func newBundle(ctx context.Context, o options, log *slog.Logger) (*bundle, error) {
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	svcCfg := o.svc
	svcCfg.HeartbeatInterval = time.Second
	svcCfg.MetricsInterval = time.Minute
	svcCfg.ShutdownTimeout = 20 * time.Second
	svcCfg = svcCfg.WithDefaults(addr)
	rt, err := service.New(ctx, service.Options{
		Name:    hookreceiver.ServiceName,
		Version: "test",
		Config:  svcCfg,
		Database: pgclient.Config{URL: o.dbURL, MinConns: 2, MaxConns: max(o.poolMax, 8), AcquireTimeout: 5 * time.Second,
			// Probe soon after a fault, so that the crash tests recover fast.
			Breaker: pgclient.BreakerConfig{OpenTimeout: 300 * time.Millisecond}},
		Logger:   log,
		Listener: ln,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	recv, err := hookreceiver.New(o.cfg, hookreceiver.Deps{Store: rt.Store, Audit: rt.Audit, Logger: rt.Log, Registerer: rt.Registry})
	if err != nil {
		return nil, err
	}
	recv.Mount(rt)
	pool, err := pgxpool.New(ctx, o.dbURL)
	if err != nil {
		return nil, err
	}
	b := &bundle{
		rt: rt, recv: recv, audit: rt.Audit, base: "http://" + rt.Addr(), dbURL: o.dbURL, db: pool,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	var once sync.Once
	var runErr error
	b.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				runErr = errors.New("Run did not return within 60s of cancel")
			}
		})
		return runErr
	}
	return b, nil
}

// waitReady waits until /readyz answers 200.
func (b *bundle) waitReady(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := b.client.Get(b.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 10*time.Millisecond, "receiver not ready")
}

// reply is a parsed answer of the receiver.
type reply struct {
	Status     int
	ID         string `json:"id"`
	Duplicate  bool   `json:"duplicate"`
	Error      string `json:"error"`
	Code       string `json:"code"`
	RetryAfter string
	Header     http.Header
	Raw        string
}

// post sends body to /hooks/{source} with the given headers (Content-Type
// application/json unless set) and parses the answer.
func (b *bundle) post(t testing.TB, source string, body []byte, h http.Header) reply {
	t.Helper()
	rep, err := postTo(b.client, b.base, source, body, h)
	require.NoError(t, err)
	return rep
}

func postTo(c *http.Client, base, source string, body []byte, h http.Header) (reply, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/"+source, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if _, ok := req.Header["Content-Type"]; !ok {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	return readReply(resp)
}

func readReply(resp *http.Response) (reply, error) {
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	rep := reply{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &rep); err != nil {
			return rep, errors.New("answer is not JSON: " + string(raw))
		}
	}
	return rep, nil
}

// githubHeaders signs body as GitHub does.
func githubHeaders(event, delivery string, body []byte) http.Header {
	mac := hmac.New(sha256.New, []byte(githubSecret))
	mac.Write(body)
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-Hub-Signature-256", "sha256="+hexString(mac.Sum(nil)))
	return h
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// standardHeaders signs body per the Standard Webhooks specification with
// the given keys (one signature each), independently of the verifier.
func standardHeaders(id string, ts time.Time, body []byte, keys ...[]byte) http.Header {
	h := http.Header{}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", stamp)
	var sigs []byte
	for i, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id + "." + stamp + "."))
		mac.Write(body)
		if i > 0 {
			sigs = append(sigs, ' ')
		}
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil))...)
	}
	h.Set("webhook-signature", string(sigs))
	return h
}

func bearer(token string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return h
}

// envelope is a body for the envelope preset.
func envelope(delivery string) []byte {
	return mustJSON(map[string]any{
		"action": "created", "resource": "order", "resource_id": "o-1", "delivery_id": delivery,
		"payload": map[string]any{"amount": 42, "currency": "EUR"},
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// countEvents counts the source's stored events (with a delivery id when
// given).
func (b *bundle) countEvents(t testing.TB, source, delivery string) int {
	t.Helper()
	var n int
	q := `SELECT count(*) FROM omnibridge.hook_events WHERE source = $1 AND ($2 = '' OR delivery_id = $2)`
	require.NoError(t, b.db.QueryRow(context.Background(), q, source, delivery).Scan(&n))
	return n
}

// metric returns the value of a sample of /metrics (name with labels, as
// printed), or -1 when absent.
func (b *bundle) metric(t testing.TB, sample string) float64 {
	t.Helper()
	resp, err := b.client.Get(b.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(sample+" ")); ok {
			v, err := strconv.ParseFloat(string(rest), 64)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}
