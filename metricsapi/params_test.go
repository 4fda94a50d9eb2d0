package metricsapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/metricsapi"
)

func TestBadParametersAre400NamingTheParameter(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOptions) {
		o.cfg.MaxWindow = 7 * 24 * 3600e9
		o.cfg.MaxPageSize = 500
	})
	cases := []struct {
		path, param string
		code        string
	}{
		{"/api/v1/performance?window=abc", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=-1h", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=0s", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=500ms", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=8d", "window", metricsapi.CodeInvalidParameter}, // over max_window
		{"/api/v1/performance?window=1.5d", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=1h&window=2h", "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?windw=1h", "windw", metricsapi.CodeUnknownParameter},
		{"/api/v1/performance?window=%zz", "query", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance?window=%ff", "window", metricsapi.CodeInvalidParameter}, // not UTF-8
		{"/api/v1/performance?window=" + strings.Repeat("1", 300), "window", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance/series?step=0s", "step", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance/series?window=1h&step=2h", "step", metricsapi.CodeInvalidParameter},
		{"/api/v1/performance/series?window=7d&step=1s", "step", metricsapi.CodeInvalidParameter}, // too many buckets
		{"/api/v1/performance/series?points=10", "points", metricsapi.CodeUnknownParameter},
		{"/api/v1/pools?limit=10", "limit", metricsapi.CodeUnknownParameter},
		{"/api/v1/sessions?status=ended", "status", metricsapi.CodeInvalidParameter},
		{"/api/v1/sessions?limit=0", "limit", metricsapi.CodeInvalidParameter},
		{"/api/v1/sessions?limit=501", "limit", metricsapi.CodeInvalidParameter},
		{"/api/v1/sessions?service=" + strings.Repeat("s", 256), "service", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?status=done", "status", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?status=PENDING", "status", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?limit=abc", "limit", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?limit=-5", "limit", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?limit=1e3", "limit", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?cursor=notacursor", "cursor", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?cursor=AAAA", "cursor", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?since=yesterday", "since", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?until=2024-13-01T00:00:00Z", "until", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?since=0001-01-01T00:00:00Z", "since", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?since=1h&until=2h", "until", metricsapi.CodeInvalidParameter}, // until before since
		{"/api/v1/events?source=" + strings.Repeat("x", 256), "source", metricsapi.CodeInvalidParameter},
		{"/api/v1/events?sort=asc", "sort", metricsapi.CodeUnknownParameter},
		{"/api/v1/events/0190a6e2-0000-7000-8000-000000000000?full=1", "full", metricsapi.CodeUnknownParameter},
		{"/api/v1/audit?success=no", "success", metricsapi.CodeInvalidParameter},
		{"/api/v1/audit?success=1", "success", metricsapi.CodeInvalidParameter},
		{"/api/v1/audit?type=.*", "type", metricsapi.CodeInvalidParameter},
		{"/api/v1/audit?type=" + strings.Repeat("t", 101), "type", metricsapi.CodeInvalidParameter},
		{"/api/v1/audit?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "cursor", metricsapi.CodeInvalidParameter},
		{"/api/v1/audit?status=failed", "status", metricsapi.CodeUnknownParameter},
		{"/api/v1/audit?limit=1001", "limit", metricsapi.CodeInvalidParameter},
	}
	for _, c := range cases {
		e := requireError(t, b.get(t, c.path), http.StatusBadRequest, c.code)
		require.Equal(t, c.param, e.Parameter, c.path)
		require.True(t, strings.HasPrefix(e.Error, c.param+": "), "the message names the parameter: %s", e.Error)
	}
	require.Equal(t, float64(len(cases)-1), requestCount(t, b, "performance", "400")+requestCount(t, b, "performance_series", "400")+
		requestCount(t, b, "pools", "400")+requestCount(t, b, "sessions", "400")+requestCount(t, b, "events_list", "400")+
		requestCount(t, b, "audit_list", "400"))
}

func TestGoodParameters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{
		"/api/v1/performance?window=90s",
		"/api/v1/performance?window=1h30m",
		"/api/v1/performance?window=31d",
		"/api/v1/performance/series?window=24h&step=1h",
		"/api/v1/performance/series?window=1d&step=90s",
		"/api/v1/events?status=processing&limit=1000",
		"/api/v1/events?since=2024-05-01T12:00:00Z",
		"/api/v1/events?since=2024-05-01T12:00:00.123456%2B02:00",
		"/api/v1/audit?success=false&type=api.auth_failed&since=7d&until=1s",
		"/api/v1/sessions?status=active&service=hook_receiver&limit=1",
	} {
		r := b.get(t, path)
		require.Equal(t, http.StatusOK, r.status, "%s: %s", path, r.body)
	}
}

func TestMethodNotAllowedAndNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/events"},
		{http.MethodDelete, "/api/v1/events/0190a6e2-0000-7000-8000-000000000000"},
		{http.MethodPut, "/api/v1/performance"},
		{http.MethodPost, "/api/v1/audit"},
		{http.MethodPost, "/"},
		{http.MethodPatch, "/api/v1/openapi.json"},
		{http.MethodPost, "/dashboard/app.js"},
	} {
		r := b.do(t, c.method, c.path, "Bearer "+testToken)
		requireError(t, r, http.StatusMethodNotAllowed, metricsapi.CodeMethodNotAllowed)
		require.Equal(t, "GET, HEAD", r.header.Get("Allow"), c.path)
	}
	for _, path := range []string{"/api/v1/nope", "/api/v2/events", "/api/v1/events/", "/api/v1/events/a/b", "/dashboard/nope.js", "/dashboard/index.html"} {
		requireError(t, b.get(t, path), http.StatusNotFound, metricsapi.CodeNotFound)
	}
	// HEAD works where GET does.
	require.Equal(t, http.StatusOK, b.do(t, http.MethodHead, "/api/v1/pools", "Bearer "+testToken).status)
}
