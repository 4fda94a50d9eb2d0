package hookreceiver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// benchGitHubBody builds a pull_request.opened body shaped like GitHub's
// (nested users, repository, links), about 20 KB.
func benchGitHubBody(tb testing.TB) []byte {
	tb.Helper()
	user := func(login string, id int) map[string]any {
		u := map[string]any{"login": login, "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": false}
		for _, k := range []string{"avatar_url", "url", "html_url", "followers_url", "following_url", "gists_url",
			"starred_url", "subscriptions_url", "organizations_url", "repos_url", "events_url", "received_events_url"} {
			u[k] = "https://api.github.com/users/" + login + "/" + k
		}
		return u
	}
	repo := map[string]any{"id": 1296269, "full_name": "octo-org/hello-world", "name": "hello-world", "private": false,
		"owner": user("octo-org", 1), "description": "This your first repo! \u00e9\u4e2d", "fork": false,
		"created_at": "2011-01-26T19:01:12Z", "stargazers_count": 80, "topics": []string{"octocat", "atom", "electron", "api"}}
	for i := range 40 {
		repo[fmt.Sprintf("link_%02d_url", i)] = fmt.Sprintf("https://api.github.com/repos/octo-org/hello-world/things/%d{/id}", i)
	}
	pr := map[string]any{"id": 1, "number": 1347, "state": "open", "title": "Amazing new feature",
		"body": strings.Repeat("Please pull these awesome changes in!\n", 40), "user": user("octocat", 2),
		"labels":              []any{map[string]any{"id": 208045946, "name": "bug", "color": "f29513", "default": true}},
		"head":                map[string]any{"ref": "new-topic", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "repo": repo, "user": user("octocat", 2)},
		"base":                map[string]any{"ref": "main", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "repo": repo, "user": user("octo-org", 1)},
		"requested_reviewers": []any{user("other_user", 3)}, "additions": 100, "deletions": 3, "changed_files": 5}
	b, err := json.Marshal(map[string]any{"action": "opened", "number": 1347, "pull_request": pr, "repository": repo, "sender": user("octocat", 2)})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkExtractGitHub maps a realistic pull_request body: checkJSON over
// the whole body, then the preset's pointers.
func BenchmarkExtractGitHub(b *testing.B) {
	src, err := NewSource(SourceConfig{Name: "github", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}})
	if err != nil {
		b.Fatal(err)
	}
	body := benchGitHubBody(b)
	h := githubHeaders("pull_request", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Extract(h, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkExtractEnvelope500B maps the ~500-byte envelope bodies the ingest
// benchmark sends.
func BenchmarkExtractEnvelope500B(b *testing.B) {
	src, err := NewSource(SourceConfig{Name: "internal", Verifier: VerifierBearer, Secrets: []string{testSecret}})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"action":"created","resource":"order","resource_id":"ord_2KWPBgLlAfxdpx2AI54pPJ85f4W",` +
		`"delivery_id":"0190c3f6-7d3a-7c4e-9b1a-3f4e5d6c7b8a","metadata":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"},` +
		`"payload":{"customer":{"id":"cus_9s6XKzkNRiz8i3","email":"jane@example.com","name":"Jane Doe"},` +
		`"lines":[{"sku":"SKU-1001","qty":2,"price":"19.99"},{"sku":"SKU-2002","qty":1,"price":"5.00"}],` +
		`"currency":"EUR","total":"44.98","note":"Leave at the door, please. Ring twice.","tags":["web","promo-2026"]}}`)
	h := http.Header{}
	h.Set("User-Agent", "orders/1.0")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Extract(h, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkExtractWorstCase1MiB maps 1 MiB bodies built to be slow: many
// keys, many escapes, many small containers.
func BenchmarkExtractWorstCase1MiB(b *testing.B) {
	src, err := NewSource(SourceConfig{Name: "github", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}})
	if err != nil {
		b.Fatal(err)
	}
	const size = 1 << 20
	var keys strings.Builder
	keys.WriteString(`{"action":"a"`)
	for i := 0; keys.Len() < size; i++ {
		fmt.Fprintf(&keys, `,"k%d":%d`, i, i)
	}
	keys.WriteString("}")
	bodies := map[string]string{
		"keys":       keys.String(),
		"escapes":    `{"action":"a","x":"` + strings.Repeat(`\ud83d\ude00\n`, size/14) + `"}`,
		"containers": `{"action":"a","x":[` + strings.Repeat(`[{"a":[1]}],`, size/12) + `1]}`,
	}
	h := githubHeaders("pull_request", "d")
	for name, body := range bodies {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := src.Extract(h, []byte(body)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify measures each verifier on a 20 KB body.
func BenchmarkVerify(b *testing.B) {
	body := benchGitHubBody(b)
	for _, cfg := range []SourceConfig{
		{Name: "github", Verifier: VerifierGitHub, Secrets: []string{gitHubVectorSecret}},
		{Name: "sw", Verifier: VerifierStandardWebhooks, Secrets: []string{swVectorSecret}},
		{Name: "bearer", Verifier: VerifierBearer, Secrets: []string{testSecret}},
	} {
		src, err := NewSource(cfg)
		if err != nil {
			b.Fatal(err)
		}
		h := http.Header{}
		h.Set(StandardWebhooksIDHeader, "msg_1")
		if err := src.SignRequest(h, body, timeNowForBench); err != nil {
			b.Fatal(err)
		}
		b.Run(cfg.Verifier, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := src.Verify(h, body, timeNowForBench); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var timeNowForBench = time.Unix(swVectorTimestamp, 0)
