package hookreceiver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newTestSource(t *testing.T, cfg SourceConfig) *Source {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	s, err := NewSource(cfg)
	require.NoError(t, err)
	return s
}

func requirePayloadErr(t *testing.T, err error, code, field string) *PayloadError {
	t.Helper()
	var pe *PayloadError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, code, pe.Code, "%v", err)
	require.Equal(t, field, pe.Field, "%v", err)
	return pe
}

func receiptOf(t *testing.T, ev Event) map[string]any {
	t.Helper()
	r, ok := ev.Metadata[MetadataKey].(map[string]any)
	require.True(t, ok, "metadata[%q] is the receiver's record", MetadataKey)
	return r
}

func githubHeaders(event, delivery string) http.Header {
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Hook-ID", "292430182")
	h.Set("User-Agent", "GitHub-Hookshot/044aadd")
	h.Set("X-Hub-Signature-256", "sha256=deadbeef")
	h.Set("Content-Type", "application/json")
	return h
}

func TestGitHubPreset(t *testing.T) {
	t.Parallel()
	s := newTestSource(t, SourceConfig{Name: "github", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}})
	const delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	cases := []struct {
		name, event, body            string
		action, resource, resourceID string
	}{
		{"pull request", "pull_request",
			`{"action":"opened","number":42,"pull_request":{"id":1,"number":42},"repository":{"id":7,"full_name":"octo-org/hello-world"}}`,
			"pull_request.opened", "octo-org/hello-world", "42"},
		{"review comment", "pull_request_review_comment",
			`{"action":"created","comment":{"id":9},"pull_request":{"number":5},"repository":{"full_name":"o/r"}}`,
			"pull_request_review_comment.created", "o/r", "5"},
		{"issue comment", "issue_comment",
			`{"action":"created","issue":{"number":17},"comment":{"id":3},"repository":{"full_name":"o/r"}}`,
			"issue_comment.created", "o/r", "17"},
		{"push has no action", "push",
			`{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"full_name":"o/r"}}`,
			"push", "o/r", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
		{"branch created", "create", `{"ref":"feature","ref_type":"branch","repository":{"full_name":"o/r"}}`,
			"create", "o/r", "feature"},
		{"organization ping", "ping", `{"zen":"Design for failure.","hook_id":292430182,"organization":{"login":"octo-org","id":5}}`,
			"ping", "octo-org", "292430182"},
		{"other event by its object", "workflow_run", `{"action":"completed","workflow_run":{"id":30433642},"repository":{"id":1,"full_name":"o/r"}}`,
			"workflow_run.completed", "o/r", "30433642"},
		{"other event by its number", "milestone", `{"action":"closed","milestone":{"number":3},"repository":{"id":1,"full_name":"o/r"}}`,
			"milestone.closed", "o/r", "3"},
		{"falls back to the repository id", "star", `{"action":"created","repository":{"id":1296269,"full_name":"o/r"}}`,
			"star.created", "o/r", "1296269"},
		{"enterprise", "security_advisory", `{"action":"published","enterprise":{"slug":"acme"}}`,
			"security_advisory.published", "acme", delivery},
		{"nothing to go on", "meta", `{"action":"deleted"}`, "meta.deleted", "github", delivery},
		{"null action", "push", `{"action":null,"after":"abc","repository":{"full_name":"o/r"}}`, "push", "o/r", "abc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tc.body)
			ev, err := s.Extract(githubHeaders(tc.event, delivery), body)
			require.NoError(t, err)
			require.Equal(t, "github", ev.Source)
			require.Equal(t, tc.action, ev.Action)
			require.Equal(t, tc.resource, ev.Resource)
			require.Equal(t, tc.resourceID, ev.ResourceID)
			require.Equal(t, delivery, ev.DeliveryID)
			require.JSONEq(t, tc.body, string(ev.Payload), "the payload is the whole body")
			r := receiptOf(t, ev)
			require.Equal(t, VerifierGitHub, r["verifier"])
			require.Equal(t, len(body), r["content_length"])
			require.Equal(t, map[string]string{
				"User-Agent":        "GitHub-Hookshot/044aadd",
				"X-Github-Event":    tc.event,
				"X-Github-Delivery": delivery,
				"X-Github-Hook-Id":  "292430182",
			}, r["headers"], "kept headers never include the signature")
		})
	}

	t.Run("missing event header", func(t *testing.T) {
		t.Parallel()
		h := githubHeaders("", delivery)
		_, err := s.Extract(h, []byte(`{"action":"opened","repository":{"full_name":"o/r"}}`))
		pe := requirePayloadErr(t, err, CodeMissingField, "action")
		require.Contains(t, pe.Error(), "X-GitHub-Event")
	})
	t.Run("missing delivery header", func(t *testing.T) {
		t.Parallel()
		_, err := s.Extract(githubHeaders("push", ""), []byte(`{"after":"a","repository":{"full_name":"o/r"}}`))
		requirePayloadErr(t, err, CodeMissingField, "delivery_id")
	})
	t.Run("action of the wrong type", func(t *testing.T) {
		t.Parallel()
		_, err := s.Extract(githubHeaders("issues", delivery), []byte(`{"action":{"x":1},"issue":{"number":1}}`))
		requirePayloadErr(t, err, CodeInvalidField, "action")
	})
	t.Run("body must be an object", func(t *testing.T) {
		t.Parallel()
		_, err := s.Extract(githubHeaders("push", delivery), []byte(`["a"]`))
		requirePayloadErr(t, err, CodeNotObject, "")
	})
	t.Run("override a preset field", func(t *testing.T) {
		t.Parallel()
		s := newTestSource(t, SourceConfig{Name: "gh", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret},
			Mapping: MappingConfig{ResourceID: FieldRule{Pointer: "/pull_request/id"}, Headers: []string{"x-github-hook-installation-target-type", "X-Request-Id"}}})
		h := githubHeaders("pull_request", delivery)
		h.Set("X-Request-Id", "req-1")
		ev, err := s.Extract(h, []byte(`{"action":"closed","pull_request":{"id":99,"number":4},"repository":{"full_name":"o/r"}}`))
		require.NoError(t, err)
		require.Equal(t, "pull_request.closed", ev.Action)
		require.Equal(t, "99", ev.ResourceID)
		require.Equal(t, "req-1", receiptOf(t, ev)["headers"].(map[string]string)["X-Request-Id"])
	})
}

func TestStandardWebhooksPreset(t *testing.T) {
	t.Parallel()
	s := newTestSource(t, SourceConfig{Name: "billing", Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}})
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,secret-looking")

	ev, err := s.Extract(h, []byte(`{"type":"invoice.payment.failed","timestamp":"2026-01-01T00:00:00Z","data":{"id":"in_1","amount":12}}`))
	require.NoError(t, err)
	require.Equal(t, "invoice.payment.failed", ev.Action)
	require.Equal(t, "invoice.payment", ev.Resource)
	require.Equal(t, "in_1", ev.ResourceID)
	require.Equal(t, "msg_1", ev.DeliveryID)
	require.Equal(t, map[string]string{"Webhook-Id": "msg_1", "Webhook-Timestamp": "1614265330"}, receiptOf(t, ev)["headers"])

	ev, err = s.Extract(h, []byte(`{"type":"ping","data":{}}`))
	require.NoError(t, err)
	require.Equal(t, "ping", ev.Resource, "a type without a dot is its own resource")
	require.Equal(t, "msg_1", ev.ResourceID, "without data.id the resource id is the message id")

	_, err = s.Extract(h, []byte(`{"data":{"id":"x"}}`))
	requirePayloadErr(t, err, CodeMissingField, "action")
	_, err = s.Extract(h, []byte(`{"type":"","data":{"id":"x"}}`))
	requirePayloadErr(t, err, CodeMissingField, "action")
}

func newEnvelopeSource(t *testing.T) *Source {
	return newTestSource(t, SourceConfig{Name: "internal", Verifier: VerifierBearer, Secrets: []string{testSecret}})
}

func TestEnvelopePreset(t *testing.T) {
	t.Parallel()
	s := newEnvelopeSource(t)
	body := []byte(`{"action":"created","resource":"order","resource_id":12345678901234567890,
		"payload":{"total":"9.99","lines":[1,2]},
		"metadata":{"trace_id":"t-1","big":12345678901234567890.5,"omnibridge":"spoofed"},
		"delivery_id":"d-1"}`)
	h := http.Header{}
	h.Set("User-Agent", "orders/1.0")
	h.Set("Authorization", "Bearer "+testSecret)
	ev, err := s.Extract(h, body)
	require.NoError(t, err)
	require.Equal(t, Event{
		Source: "internal", Action: "created", Resource: "order", ResourceID: "12345678901234567890", DeliveryID: "d-1",
		Payload: json.RawMessage(`{"total":"9.99","lines":[1,2]}`),
		Metadata: map[string]any{
			"trace_id": json.RawMessage(`"t-1"`),
			"big":      json.RawMessage(`12345678901234567890.5`),
			MetadataKey: map[string]any{
				"verifier": VerifierBearer, "content_length": len(body),
				"headers": map[string]string{"User-Agent": "orders/1.0"},
			},
		},
	}, ev)
	out, err := json.Marshal(ev.Metadata)
	require.NoError(t, err)
	require.Contains(t, string(out), `"big":12345678901234567890.5`, "values stay exactly as sent")
	require.NotContains(t, string(out), testSecret)

	// Optional parts.
	ev, err = s.Extract(http.Header{}, []byte(`{"action":"a","resource":"r","resource_id":"1"}`))
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(ev.Payload))
	require.Empty(t, ev.DeliveryID)
	require.Equal(t, map[string]any{"verifier": VerifierBearer, "content_length": 47}, receiptOf(t, ev))
	require.Len(t, ev.Metadata, 1)

	ev, err = s.Extract(http.Header{}, []byte(`{"action":"a","resource":"r","resource_id":"1","payload":null,"metadata":null}`))
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(ev.Payload))

	// The delivery id falls back to Idempotency-Key.
	h = http.Header{}
	h.Set("Idempotency-Key", "idem-1")
	ev, err = s.Extract(h, []byte(`{"action":"a","resource":"r","resource_id":"1"}`))
	require.NoError(t, err)
	require.Equal(t, "idem-1", ev.DeliveryID)
	ev, err = s.Extract(h, []byte(`{"action":"a","resource":"r","resource_id":"1","delivery_id":"body-1"}`))
	require.NoError(t, err)
	require.Equal(t, "body-1", ev.DeliveryID, "the body's delivery_id wins")
}

// TestBadInput produces every PayloadError code through the envelope preset.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := newEnvelopeSource(t)
	ok := `"action":"a","resource":"r","resource_id":"1"`
	long := strings.Repeat("x", MaxFieldLen+1)
	cases := []struct {
		name, body  string
		code, field string
	}{
		{"not JSON", `action=a&resource=r`, CodeInvalidJSON, ""},
		{"empty", ``, CodeInvalidJSON, ""},
		{"truncated", `{` + ok, CodeInvalidJSON, ""},
		{"invalid UTF-8", "{" + ok + ",\"payload\":{\"x\":\"\xff\"}}", CodeInvalidUTF8, ""},
		{"NUL in payload", `{` + ok + `,"payload":{"x":"\u0000"}}`, CodeNULCharacter, ""},
		{"NUL in a key", `{` + ok + `,"payload":{"\u0000":1}}`, CodeNULCharacter, ""},
		{"NUL in action", `{"action":"a\u0000","resource":"r","resource_id":"1"}`, CodeNULCharacter, ""},
		{"lone surrogate", `{` + ok + `,"payload":{"x":"\ud800"}}`, CodeInvalidUnicodeEscape, ""},
		{"huge number", `{` + ok + `,"payload":{"x":1e200000}}`, CodeNumberOutOfRange, ""},
		{"too deep", `{` + ok + `,"payload":` + strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64) + `}`, CodeNestingTooDeep, ""},
		{"duplicate key", `{` + ok + `,"action":"b"}`, CodeDuplicateKey, ""},
		{"array", `[{` + ok + `}]`, CodeNotObject, ""},
		{"string", `"hello"`, CodeNotObject, ""},
		{"missing action", `{"resource":"r","resource_id":"1"}`, CodeMissingField, "action"},
		{"missing resource", `{"action":"a","resource_id":"1"}`, CodeMissingField, "resource"},
		{"empty resource_id", `{"action":"a","resource":"r","resource_id":""}`, CodeMissingField, "resource_id"},
		{"null resource_id", `{"action":"a","resource":"r","resource_id":null}`, CodeMissingField, "resource_id"},
		{"action too long", `{"action":"` + long + `","resource":"r","resource_id":"1"}`, CodeFieldTooLong, "action"},
		{"resource too long", `{"action":"a","resource":"` + long + `","resource_id":"1"}`, CodeFieldTooLong, "resource"},
		{"resource_id too long", `{"action":"a","resource":"r","resource_id":"` + long + `"}`, CodeFieldTooLong, "resource_id"},
		{"delivery_id too long", `{` + ok + `,"delivery_id":"` + long + `"}`, CodeFieldTooLong, "delivery_id"},
		{"action is an object", `{"action":{},"resource":"r","resource_id":"1"}`, CodeInvalidField, "action"},
		{"resource is a boolean", `{"action":"a","resource":true,"resource_id":"1"}`, CodeInvalidField, "resource"},
		{"resource_id is an array", `{"action":"a","resource":"r","resource_id":[1]}`, CodeInvalidField, "resource_id"},
		{"payload is an array", `{` + ok + `,"payload":[1]}`, CodeInvalidField, "payload"},
		{"payload is a string", `{` + ok + `,"payload":"{}"}`, CodeInvalidField, "payload"},
		{"metadata is a number", `{` + ok + `,"metadata":1}`, CodeInvalidField, "metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Extract(http.Header{}, []byte(tc.body))
			pe := requirePayloadErr(t, err, tc.code, tc.field)
			require.Equal(t, tc.code, PayloadCode(err))
			require.Empty(t, AuthCode(err))
			if tc.field != "" {
				require.Contains(t, pe.Error(), tc.field, "the message names the field")
			}
		})
	}

	t.Run("255 characters of several bytes each fit", func(t *testing.T) {
		t.Parallel()
		ev, err := s.Extract(http.Header{}, []byte(`{"action":"`+strings.Repeat("é", MaxFieldLen)+`","resource":"r","resource_id":"1"}`))
		require.NoError(t, err)
		require.Len(t, []rune(ev.Action), MaxFieldLen)
	})
	t.Run("an escaped backslash before u0000 is text", func(t *testing.T) {
		t.Parallel()
		ev, err := s.Extract(http.Header{}, []byte(`{"action":"\\u0000","resource":"r","resource_id":"1","payload":{"\\u0000":"\\u0000"}}`))
		require.NoError(t, err)
		require.Equal(t, `\u0000`, ev.Action)
	})
	t.Run("a configured depth", func(t *testing.T) {
		t.Parallel()
		s := newTestSource(t, SourceConfig{Verifier: VerifierBearer, Secrets: []string{testSecret}, MaxDepth: 2})
		_, err := s.Extract(http.Header{}, []byte(`{`+ok+`,"payload":{}}`))
		require.NoError(t, err)
		_, err = s.Extract(http.Header{}, []byte(`{`+ok+`,"payload":{"a":[]}}`))
		requirePayloadErr(t, err, CodeNestingTooDeep, "")
	})
}

func TestCustomMapping(t *testing.T) {
	t.Parallel()
	s := newTestSource(t, SourceConfig{Name: "shop", Verifier: VerifierHMACSHA256, Secrets: []string{testSecret},
		Mapping: MappingConfig{
			Preset:     PresetCustom,
			Action:     FieldRule{Header: "X-Shop-Topic", Pointer: "/status"},
			Resource:   FieldRule{Default: "order"},
			ResourceID: FieldRule{Pointer: "/order/id"},
			DeliveryID: FieldRule{Header: "X-Shop-Webhook-Id"},
		}})
	h := http.Header{}
	h.Set("X-Shop-Topic", "orders")
	h.Set("X-Shop-Webhook-Id", "w-1")
	body := []byte(`{"status":"paid","order":{"id":450789469}}`)
	ev, err := s.Extract(h, body)
	require.NoError(t, err)
	require.Equal(t, "orders.paid", ev.Action, "header and pointer join with a dot")
	require.Equal(t, "order", ev.Resource)
	require.Equal(t, "450789469", ev.ResourceID)
	require.Equal(t, "w-1", ev.DeliveryID)
	require.Equal(t, json.RawMessage(body), ev.Payload)

	ev, err = s.Extract(http.Header{}, []byte(`{"status":"paid","order":{"id":1}}`))
	require.NoError(t, err)
	require.Equal(t, "paid", ev.Action, "either part alone")
	require.Empty(t, ev.DeliveryID, "no delivery id: the event is not deduplicated")

	_, err = s.Extract(h, []byte(`{"status":"paid"}`))
	pe := requirePayloadErr(t, err, CodeMissingField, "resource_id")
	require.Contains(t, pe.Error(), "body /order/id")

	// Headers only: any JSON body will do.
	hs := newTestSource(t, SourceConfig{Name: "hdr", Verifier: VerifierBearer, Secrets: []string{testSecret},
		Mapping: MappingConfig{Preset: PresetCustom, Action: FieldRule{Header: "X-Event"}, Resource: FieldRule{Header: "X-Resource"},
			ResourceID: FieldRule{Header: "X-Id", Default: "none"}}})
	h = http.Header{}
	h.Set("X-Event", "sync")
	h.Set("X-Resource", "catalog")
	ev, err = hs.Extract(h, []byte(`[1,2,3]`))
	require.NoError(t, err)
	require.Equal(t, "none", ev.ResourceID)
	require.Equal(t, json.RawMessage(`[1,2,3]`), ev.Payload)

	// Header values must be storable too.
	h.Set("X-Resource", "bad\xff")
	_, err = hs.Extract(h, []byte(`{}`))
	requirePayloadErr(t, err, CodeInvalidUTF8, "resource")
	h.Set("X-Resource", strings.Repeat("r", MaxFieldLen+1))
	_, err = hs.Extract(h, []byte(`{}`))
	requirePayloadErr(t, err, CodeFieldTooLong, "resource")
	h.Set("X-Resource", "nul\x00")
	_, err = hs.Extract(h, []byte(`{}`))
	requirePayloadErr(t, err, CodeNULCharacter, "resource")
}

func TestMetadataHeaderValuesAreSanitized(t *testing.T) {
	t.Parallel()
	s := newTestSource(t, SourceConfig{Verifier: VerifierBearer, Secrets: []string{testSecret}, Mapping: MappingConfig{Headers: []string{"X-Note"}}})
	h := http.Header{}
	h.Add("X-Note", "a\xffb\x00c")
	h.Add("X-Note", strings.Repeat("é", maxMetadataHeaderLen))
	ev, err := s.Extract(h, []byte(`{"action":"a","resource":"r","resource_id":"1"}`))
	require.NoError(t, err)
	v := receiptOf(t, ev)["headers"].(map[string]string)["X-Note"]
	require.True(t, strings.HasPrefix(v, "a\uFFFDbc, é"))
	require.LessOrEqual(t, len(v), maxMetadataHeaderLen)
	_, err = json.Marshal(ev.Metadata)
	require.NoError(t, err)
	_, err = checkJSON(mustJSON(t, ev.Metadata), MaxDepthDefault)
	require.NoError(t, err, "metadata is storable as jsonb")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// ExampleSource_Extract shows the path of a request through a source: verify
// the raw body, then map it.
func ExampleSource_Extract() {
	src, err := NewSource(SourceConfig{Name: "github", Verifier: VerifierGitHub, Secrets: []string{"It's a Secret to Everybody"}})
	if err != nil {
		panic(err)
	}
	body := []byte(`{"action":"opened","pull_request":{"number":42},"repository":{"full_name":"octo-org/hello-world"}}`)
	h := http.Header{}
	h.Set("X-GitHub-Event", "pull_request")
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	if err := src.SignRequest(h, body, time.Now()); err != nil { // what GitHub does
		panic(err)
	}

	if err := src.Verify(h, body, time.Now()); err != nil {
		fmt.Println("401", AuthCode(err))
		return
	}
	ev, err := src.Extract(h, body)
	if err != nil {
		fmt.Println("400", err)
		return
	}
	fmt.Println(ev.Action, ev.Resource, ev.ResourceID, ev.DeliveryID)

	err = src.Verify(h, append(body, ' '), time.Now())
	fmt.Println(AuthCode(err))
	// Output:
	// pull_request.opened octo-org/hello-world 42 72d3162e-cc78-11e3-81ab-4c9367dc0958
	// bad_signature
}
