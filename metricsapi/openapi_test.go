package metricsapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

func loadOpenAPI(t *testing.T, raw []byte) *openapiDoc {
	t.Helper()
	var doc openapiDoc
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "an OpenAPI 3 document")
	return &doc
}

// muxPath turns a ServeMux pattern's path into an OpenAPI path.
func muxPath(p string) string { return strings.TrimSuffix(p, "{$}") }

// TestOpenAPIMatchesRoutes checks that every route the API registers is
// documented, and every documented operation is either a route of the API
// or one of the service runtime's (x-served-by: service).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	api, err := metricsapi.New(metricsapi.Config{Token: testToken}, metricsapi.Deps{Store: store.New(nil)})
	require.NoError(t, err)
	doc := loadOpenAPI(t, api.OpenAPI())

	registered := map[string]bool{}
	for _, pattern := range api.RoutePatterns() {
		method, path, ok := strings.Cut(pattern, " ")
		require.True(t, ok, pattern)
		op := muxPath(path)
		registered[strings.ToLower(method)+" "+op] = true
		ops, ok := doc.Paths[op]
		require.True(t, ok, "route %s is not documented", pattern)
		_, ok = ops[strings.ToLower(method)]
		require.True(t, ok, "route %s is not documented for its method", pattern)
	}
	var ids []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			require.NotEmpty(t, op.OperationID, "%s %s", method, path)
			ids = append(ids, op.OperationID)
			if op.ServedBy == "service" {
				require.False(t, registered[method+" "+path], "%s %s is the runtime's, not the API's", method, path)
				continue
			}
			require.True(t, registered[method+" "+path], "documented %s %s is not a route", method, path)
			require.Contains(t, op.Responses, "200", "%s %s", method, path)
		}
	}
	slices.Sort(ids)
	require.Len(t, slices.Compact(ids), len(ids), "operation ids are unique")
}

// TestOpenAPIServedAndTrue serves the API on a real service runtime with
// seeded data and requests every documented operation: each answers 200 with
// a body that matches its documented schema, accepts each documented query
// parameter, and answers errors in the documented Error form.
func TestOpenAPIServedAndTrue(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dbURL := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rt, err := service.New(ctx, service.Options{
		Name: "model_metrics", Config: service.Config{}.WithDefaults("127.0.0.1:0"),
		Database: pgclient.Config{URL: dbURL, MinConns: 1, MaxConns: 4}, Logger: slog.New(slog.DiscardHandler), Listener: ln,
	})
	require.NoError(t, err)
	api, err := metricsapi.New(metricsapi.Config{Token: testToken},
		metricsapi.Deps{Store: rt.Store, Audit: rt.Audit, Registerer: rt.Registry})
	require.NoError(t, err)
	api.Register(rt.Mux)
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rt.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-ran)
	})
	b := &bundle{store: rt.Store, url: "http://" + rt.Addr()}
	s := seed(t, rt.Store)
	served := b.do(t, http.MethodGet, "/api/v1/openapi.json", "")
	require.Equal(t, http.StatusOK, served.status)
	require.Equal(t, api.OpenAPI(), served.body, "the served document is the embedded one")
	doc := loadOpenAPI(t, served.body)

	examples := map[string][]string{
		"id":   {s.dead[0].String()},
		"file": {"app.js", "charts.js", "app.css"},
	}
	for path, ops := range doc.Paths {
		op := ops["get"]
		// Fill path parameters with real values.
		urls := []string{path}
		for _, p := range op.Parameters {
			p = doc.param(p)
			if p.In != "path" {
				continue
			}
			var next []string
			for _, u := range urls {
				for _, v := range examples[p.Name] {
					next = append(next, strings.ReplaceAll(u, "{"+p.Name+"}", v))
				}
			}
			require.NotEmpty(t, next, "no example for path parameter %s", p.Name)
			urls = next
		}
		for _, u := range urls {
			r := b.get(t, u)
			require.Equal(t, http.StatusOK, r.status, "GET %s: %s", u, r.body)
			ok := doc.response(op.Responses["200"])
			ct := strings.TrimSuffix(strings.Split(r.header.Get("Content-Type"), ";")[0], " ")
			media, documented := ok.Content[ct]
			require.True(t, documented, "GET %s answers %s, documented %v", u, ct, keys(ok.Content))
			if ct == "application/json" {
				requireMatches(t, doc, "GET "+u, r.body, media.Schema)
			}
		}
		// Every documented query parameter is accepted; an undocumented one
		// is refused as unknown.
		if op.ServedBy == "service" || path == "/" || strings.Contains(path, "{file}") {
			continue
		}
		for _, p := range op.Parameters {
			p = doc.param(p)
			if p.In != "query" {
				continue
			}
			u := urls[0] + "?" + p.Name + "=" + url.QueryEscape(exampleValue(p))
			r := b.get(t, u)
			if p.Name == "cursor" {
				require.NotEqual(t, metricsapi.CodeUnknownParameter, decodeError(t, r).Code, u)
				continue
			}
			require.Equal(t, http.StatusOK, r.status, "GET %s: %s", u, r.body)
		}
		r := b.get(t, urls[0]+"?undocumented=1")
		require.Equal(t, http.StatusBadRequest, r.status, urls[0])
		requireMatches(t, doc, "GET "+urls[0]+" error", r.body, doc.response(op.Responses["400"]).Content["application/json"].Schema)
		unauth := b.do(t, http.MethodGet, urls[0], "")
		if path == "/api/v1/openapi.json" {
			require.Equal(t, http.StatusOK, unauth.status)
			continue
		}
		require.Equal(t, http.StatusUnauthorized, unauth.status, urls[0])
		requireMatches(t, doc, "GET "+urls[0]+" 401", unauth.body, doc.response(op.Responses["401"]).Content["application/json"].Schema)
	}
	missing := b.get(t, "/api/v1/events/0190a6e2-0000-7000-8000-000000000000")
	requireMatches(t, doc, "404", missing.body, doc.Components.Schemas["Error"])

	// The runtime's /metrics carries the API's metrics.
	m := b.do(t, http.MethodGet, "/metrics", "")
	require.Contains(t, string(m.body), "omnibridge_metricsapi_requests_total")
}

func exampleValue(p openapiParam) string {
	switch {
	case p.Schema == nil:
		return "x"
	case p.Schema.Example != nil:
		return fmt.Sprint(p.Schema.Example)
	case len(p.Schema.Enum) > 0:
		return fmt.Sprint(p.Schema.Enum[0])
	case p.Schema.Type == "integer":
		return "1"
	case p.Name == "cursor":
		return store.Cursor{CreatedAt: time.Now()}.String()
	default:
		return "example"
	}
}

func requireMatches(t *testing.T, doc *openapiDoc, what string, body []byte, s *schema) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v), "%s: %s", what, body)
	errs := doc.validate("$", v, s)
	require.Empty(t, errs, "%s does not match its documented schema", what)
}

func decodeError(t *testing.T, r response) errorJSON {
	t.Helper()
	var e errorJSON
	_ = json.Unmarshal(r.body, &e)
	return e
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
