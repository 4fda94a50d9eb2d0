package hookreceiver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/hookreceiver"
)

// GitHub's published example ("Validating webhook deliveries").
const (
	publishedGitHubPayload   = "Hello, World!"
	publishedGitHubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestAcceptThenRedeliveryIsDuplicate(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	body := []byte(`{"action":"opened","pull_request":{"number":42},"repository":{"full_name":"octo/hello","id":7}}`)
	h := githubHeaders("pull_request", "d-accept-1", body)

	first := b.post(t, "github", body, h)
	require.Equal(t, http.StatusAccepted, first.Status, first.Raw)
	require.False(t, first.Duplicate)
	require.NotEmpty(t, first.ID)
	require.Equal(t, "application/json", first.Header.Get("Content-Type"))

	again := b.post(t, "github", body, h)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.True(t, again.Duplicate)
	require.Equal(t, first.ID, again.ID, "a redelivery answers the first event's id")
	require.Equal(t, 1, b.countEvents(t, "github", "d-accept-1"))

	var action, resource, resourceID, status string
	var payload map[string]any
	require.NoError(t, b.db.QueryRow(context.Background(),
		`SELECT action, resource, resource_id, status, payload FROM omnibridge.hook_events WHERE id = $1`, first.ID).
		Scan(&action, &resource, &resourceID, &status, &payload))
	require.Equal(t, "pull_request.opened", action)
	require.Equal(t, "octo/hello", resource)
	require.Equal(t, "42", resourceID)
	require.Equal(t, "pending", status)
	require.Equal(t, "opened", payload["action"])
}

func TestGitHubPublishedVectorEndToEnd(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	h := http.Header{}
	h.Set("X-GitHub-Event", "ping")
	h.Set("X-GitHub-Delivery", "d-vector")
	h.Set("X-Hub-Signature-256", publishedGitHubSignature)

	// The signature verifies; the body, not being JSON, is then refused.
	rep := b.post(t, "github", []byte(publishedGitHubPayload), h)
	require.Equal(t, http.StatusBadRequest, rep.Status, rep.Raw)
	require.Equal(t, hookreceiver.CodeInvalidJSON, rep.Code)

	rep = b.post(t, "github", []byte("Hello, World?"), h)
	require.Equal(t, http.StatusUnauthorized, rep.Status, rep.Raw)
	require.Equal(t, "bad_signature", rep.Code)

	h.Del("X-Hub-Signature-256")
	rep = b.post(t, "github", []byte(publishedGitHubPayload), h)
	require.Equal(t, http.StatusUnauthorized, rep.Status, rep.Raw)
	require.Equal(t, "missing_signature", rep.Code)
	require.Zero(t, b.countEvents(t, "github", ""))
}

func TestStandardWebhooksEndToEnd(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	body := []byte(`{"type":"invoice.paid","timestamp":"2024-05-01T10:00:00Z","data":{"id":"inv_1"}}`)
	now := time.Now()
	for _, tc := range []struct {
		name   string
		id     string
		h      func(id string) http.Header
		body   []byte
		status int
		code   string
	}{
		{"valid", "msg_valid", func(id string) http.Header { return standardHeaders(id, now, body, billingKeyNew) }, body, 202, ""},
		{"rotated: signed with the previous key", "msg_rotated", func(id string) http.Header { return standardHeaders(id, now, body, billingKeyOld) }, body, 202, ""},
		{"several signatures, one known", "msg_several", func(id string) http.Header {
			return standardHeaders(id, now, body, []byte("some-other-key-unknown-here"), billingKeyNew)
		}, body, 202, ""},
		{"tampered body", "msg_tampered", func(id string) http.Header { return standardHeaders(id, now, body, billingKeyNew) },
			[]byte(strings.Replace(string(body), "inv_1", "inv_2", 1)), 401, "bad_signature"},
		{"expired", "msg_expired", func(id string) http.Header {
			return standardHeaders(id, now.Add(-10*time.Minute), body, billingKeyNew)
		}, body, 401, "timestamp_out_of_range"},
		{"from the future", "msg_future", func(id string) http.Header {
			return standardHeaders(id, now.Add(10*time.Minute), body, billingKeyNew)
		}, body, 401, "timestamp_out_of_range"},
		{"unknown key", "msg_unknown", func(id string) http.Header {
			return standardHeaders(id, now, body, []byte("some-other-key-unknown-here"))
		}, body, 401, "bad_signature"},
	} {
		rep := b.post(t, "billing", tc.body, tc.h(tc.id))
		require.Equal(t, tc.status, rep.Status, "%s: %s", tc.name, rep.Raw)
		require.Equal(t, tc.code, rep.Code, tc.name)
		want := 0
		if tc.status == 202 {
			want = 1
		}
		require.Equal(t, want, b.countEvents(t, "billing", tc.id), tc.name)
	}
	var action, resource, resourceID string
	require.NoError(t, b.db.QueryRow(context.Background(),
		`SELECT action, resource, resource_id FROM omnibridge.hook_events WHERE delivery_id = 'msg_valid'`).
		Scan(&action, &resource, &resourceID))
	require.Equal(t, []string{"invoice.paid", "invoice", "inv_1"}, []string{action, resource, resourceID})
}

func TestStatusCodes(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	good := envelope("d-status")
	deep := `{"action":"a","resource":"r","resource_id":"1","payload":{"x":` +
		strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`
	huge := make([]byte, 2<<20)
	copy(huge, `{"action":"a","resource":"r","resource_id":"1","payload":{"x":"`)
	for i := 64; i < len(huge)-3; i++ {
		huge[i] = 'x'
	}
	copy(huge[len(huge)-3:], `"}}`)
	ok := bearer(internalToken)
	withType := func(h http.Header, ct string) http.Header {
		h = h.Clone()
		h.Set("Content-Type", ct)
		return h
	}
	shopBody := []byte(`{"action":"paid","resource":"order","resource_id":"9","delivery_id":"d-shop"}`)
	shopHeaders := http.Header{}
	require.NoError(t, b.recv.Source("shop").SignRequest(shopHeaders, shopBody, time.Now()))

	for _, tc := range []struct {
		name   string
		source string
		body   string
		h      http.Header
		status int
		code   string
	}{
		{"envelope accepted", "internal", string(good), ok, 202, ""},
		{"+json media type", "internal", string(envelope("d-vnd")), withType(ok, "application/vnd.acme+json; charset=UTF-8"), 202, ""},
		{"hmac-sha256 base64", "shop", string(shopBody), shopHeaders, 202, ""},
		{"none: unsigned on purpose", "open", string(envelope("d-open")), nil, 202, ""},
		{"unknown source", "nope", string(good), ok, 404, hookreceiver.CodeUnknownSource},
		{"path below a source", "internal/extra", string(good), ok, 404, hookreceiver.CodeUnknownSource},
		{"missing token", "internal", string(good), nil, 401, "missing_token"},
		{"bad token", "internal", string(good), bearer("wrong-token-0123456789abcdef"), 401, "bad_token"},
		{"bad hmac", "shop", string(shopBody) + " ", shopHeaders, 401, "bad_signature"},
		{"text/plain", "internal", string(good), withType(ok, "text/plain"), 415, hookreceiver.CodeUnsupportedType},
		{"form", "internal", string(good), withType(ok, "application/x-www-form-urlencoded"), 415, hookreceiver.CodeUnsupportedType},
		{"no content type", "internal", string(good), withType(ok, ""), 415, hookreceiver.CodeUnsupportedType},
		{"latin1", "internal", string(good), withType(ok, "application/json; charset=iso-8859-1"), 415, hookreceiver.CodeUnsupportedType},
		{"not JSON", "internal", "not json", ok, 400, hookreceiver.CodeInvalidJSON},
		{"empty body", "internal", "", ok, 400, hookreceiver.CodeInvalidJSON},
		{"trailing data", "internal", string(good) + " {}", ok, 400, hookreceiver.CodeInvalidJSON},
		{"invalid UTF-8", "internal", `{"action":"a","resource":"r","resource_id":"1","payload":{"x":"` + "\xff\xfe" + `"}}`, ok, 400, hookreceiver.CodeInvalidUTF8},
		{"escaped NUL", "internal", `{"action":"a","resource":"r","resource_id":"1","payload":{"x":"a\u0000b"}}`, ok, 400, hookreceiver.CodeNULCharacter},
		{"raw NUL", "internal", "{\"action\":\"a\x00\",\"resource\":\"r\",\"resource_id\":\"1\"}", ok, 400, ""},
		{"lone surrogate", "internal", `{"action":"a","resource":"r","resource_id":"1","payload":{"x":"\ud800"}}`, ok, 400, hookreceiver.CodeInvalidUnicodeEscape},
		{"number out of range", "internal", `{"action":"a","resource":"r","resource_id":"1","payload":{"x":1e999999}}`, ok, 400, hookreceiver.CodeNumberOutOfRange},
		{"deeply nested", "internal", deep, ok, 400, hookreceiver.CodeNestingTooDeep},
		{"duplicate key", "internal", `{"action":"a","action":"b","resource":"r","resource_id":"1"}`, ok, 400, hookreceiver.CodeDuplicateKey},
		{"not an object", "internal", `[1,2]`, ok, 400, hookreceiver.CodeNotObject},
		{"missing action", "internal", `{"resource":"r","resource_id":"1"}`, ok, 400, hookreceiver.CodeMissingField},
		{"huge body", "internal", string(huge), ok, 413, hookreceiver.CodeBodyTooLarge},
		{"over a source's own limit", "small", `{"x":"` + strings.Repeat("y", int(smallBodyLimit)) + `"}`, ok, 413, hookreceiver.CodeBodyTooLarge},
	} {
		rep := b.post(t, tc.source, []byte(tc.body), tc.h)
		require.Equal(t, tc.status, rep.Status, "%s: %s", tc.name, rep.Raw)
		if tc.status >= 400 {
			require.NotEmpty(t, rep.Error, tc.name)
			require.Equal(t, "application/json", rep.Header.Get("Content-Type"), tc.name)
			if tc.code != "" {
				require.Equal(t, tc.code, rep.Code, tc.name)
			} else {
				require.NotEmpty(t, rep.Code, tc.name)
			}
		}
	}

	// 405, with Allow.
	resp, err := b.client.Get(b.base + "/hooks/internal")
	require.NoError(t, err)
	rep, err := readReply(resp)
	require.NoError(t, err)
	require.Equal(t, http.StatusMethodNotAllowed, rep.Status)
	require.Equal(t, hookreceiver.CodeMethodNotAllowed, rep.Code)
	require.Equal(t, http.MethodPost, rep.Header.Get("Allow"))

	// Only the accepted requests left rows.
	require.Equal(t, 2, b.countEvents(t, "internal", ""))
	require.Equal(t, 1, b.countEvents(t, "shop", "d-shop"))
	require.Equal(t, 1, b.countEvents(t, "open", "d-open"))
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	for i := range 2 { // the burst
		rep := b.post(t, "limited", envelope("d-limit-"+strconv.Itoa(i)), bearer(limitedToken))
		require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)
	}
	rep := b.post(t, "limited", envelope("d-limit-2"), bearer(limitedToken))
	require.Equal(t, http.StatusTooManyRequests, rep.Status, rep.Raw)
	require.Equal(t, hookreceiver.CodeRateLimited, rep.Code)
	secs, err := strconv.Atoi(rep.RetryAfter)
	require.NoError(t, err)
	require.GreaterOrEqual(t, secs, 1)

	// Unsigned floods do not spend the source's tokens: the limit applies to
	// authenticated requests.
	rep = b.post(t, "limited", envelope("d-limit-3"), bearer("not-the-token-0123456789"))
	require.Equal(t, http.StatusUnauthorized, rep.Status, rep.Raw)
	require.Equal(t, 2, b.countEvents(t, "limited", ""))
}

func TestConcurrentRedeliveriesStoreOneRow(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	body := []byte(`{"action":"created","issue":{"number":5},"repository":{"full_name":"octo/hello","id":7}}`)
	h := githubHeaders("issues", "d-sixteen", body)
	const n = 16
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			rep, err := postTo(b.client, b.base, "github", body, h)
			if err != nil {
				rep.Status = -1
				rep.Error = err.Error()
			}
			replies[i] = rep
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for _, rep := range replies {
		require.Contains(t, []int{200, 202}, rep.Status, rep.Raw+rep.Error)
		require.Equal(t, replies[0].ID, rep.ID, "every answer names the one stored event")
		if rep.Status == 202 {
			accepted++
			require.False(t, rep.Duplicate)
		} else {
			require.True(t, rep.Duplicate)
		}
	}
	require.Equal(t, 1, accepted)
	require.Equal(t, 1, b.countEvents(t, "github", "d-sixteen"))
}

func TestAuthFailuresAreCountedAndAuditedWithALimit(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	const n = 40
	for range n {
		rep := b.post(t, "internal", envelope("d-attack"), bearer("guessing-0123456789abcdef"))
		require.Equal(t, http.StatusUnauthorized, rep.Status)
	}
	require.Equal(t, float64(n), b.metric(t, `omnibridge_hookreceiver_auth_failures_total{code="bad_token",source="internal"}`))
	require.Equal(t, float64(n), b.metric(t, `omnibridge_hookreceiver_requests_total{source="internal",status="401"}`))

	require.NoError(t, b.stop()) // flushes the audit writer, with its summary rows
	var rows int
	var suppressed int64
	require.NoError(t, b.db.QueryRow(context.Background(), `
		SELECT count(*), coalesce(sum((client_info->>'suppressed')::bigint), 0)
		FROM omnibridge.security_audit_log
		WHERE event_type = 'hook.auth_failed.bad_token' AND NOT success
		  AND client_info->>'source' = 'internal' AND client_info->>'remote_ip' = '127.0.0.1'`).
		Scan(&rows, &suppressed))
	require.GreaterOrEqual(t, rows, 1)
	require.Less(t, rows, n/2, "a flood of failures writes a bounded number of audit rows")
}

func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	for i := range 5 {
		rep := b.post(t, "internal", envelope("d-metrics-"+strconv.Itoa(i)), bearer(internalToken))
		require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)
	}
	b.post(t, "nope", envelope("x"), nil)
	require.Equal(t, 5.0, b.metric(t, `omnibridge_hookreceiver_requests_total{source="internal",status="202"}`))
	require.Equal(t, 1.0, b.metric(t, `omnibridge_hookreceiver_requests_total{source="_unknown",status="404"}`))
	require.GreaterOrEqual(t, b.metric(t, `omnibridge_hookreceiver_batch_size_count`), 1.0)
	require.Equal(t, 5.0, b.metric(t, `omnibridge_hookreceiver_batch_size_sum`))
	require.GreaterOrEqual(t, b.metric(t, `omnibridge_hookreceiver_commit_duration_seconds_count`), 1.0)
	require.Equal(t, 0.0, b.metric(t, `omnibridge_hookreceiver_queue_depth`))
	require.Equal(t, 0.0, b.metric(t, `omnibridge_hookreceiver_queue_bytes`))
}

func TestNotifyAfterCommit(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := b.db.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN omnibridge_hook_events")
	require.NoError(t, err)

	rep := b.post(t, "internal", envelope("d-notify"), bearer(internalToken))
	require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)
	n, err := conn.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, "omnibridge_hook_events", n.Channel)
	_, err = conn.Exec(ctx, "UNLISTEN *")
	require.NoError(t, err)
}

func TestResponsesAreJSON(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	rep := b.post(t, "internal", envelope("d-json"), bearer(internalToken))
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(rep.Raw), &v))
	require.Len(t, v, 2)
	require.Equal(t, false, v["duplicate"])
}
