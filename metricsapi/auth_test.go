package metricsapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/store"
)

// flushAudit closes the writer, so that everything it queued is written.
func flushAudit(t *testing.T, b *bundle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.audit.Close(ctx))
}

func authFailures(t *testing.T, b *bundle, reason string) float64 {
	t.Helper()
	fams, err := b.reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "omnibridge_metricsapi_auth_failures_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no auth failure counter for reason %q", reason)
	return 0
}

func TestAuthFailuresAreRefusedCountedAndAudited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		name, header, reason string
	}{
		{"missing", "", metricsapi.AuthMissing},
		{"wrong token", "Bearer wrong-token-0123456789abcdef", metricsapi.AuthInvalid},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1], metricsapi.AuthInvalid},
		{"token with suffix", "Bearer " + testToken + "x", metricsapi.AuthInvalid},
		{"basic scheme", "Basic dXNlcjpwYXNz", metricsapi.AuthMalformed},
		{"no token", "Bearer", metricsapi.AuthMalformed},
		{"empty token", "Bearer ", metricsapi.AuthMalformed},
		{"two spaces", "Bearer  " + testToken, metricsapi.AuthMalformed},
		{"bad characters", "Bearer tok en", metricsapi.AuthMalformed},
		{"only padding", "Bearer ==", metricsapi.AuthMalformed},
	}
	paths := []string{"/api/v1/performance", "/api/v1/pools", "/api/v1/sessions", "/api/v1/events",
		"/api/v1/events/0190a6e2-0000-7000-8000-000000000000", "/api/v1/audit", "/api/v1/performance/series"}
	want := map[string]int{}
	for i, c := range cases {
		path := paths[i%len(paths)]
		r := b.do(t, http.MethodGet, path, c.header)
		e := requireError(t, r, http.StatusUnauthorized, metricsapi.CodeUnauthorized)
		require.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="omnibridge"`), c.name)
		require.NotContains(t, e.Error, testToken, c.name)
		want[c.reason]++
	}
	// Two Authorization headers are malformed too.
	req, err := http.NewRequest(http.MethodGet, b.url+"/api/v1/pools", nil)
	require.NoError(t, err)
	req.Header.Add("Authorization", "Bearer "+testToken)
	req.Header.Add("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	want[metricsapi.AuthMalformed]++

	// The scheme is case-insensitive.
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/api/v1/pools", "bearer "+testToken).status)
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/api/v1/pools", "BEARER "+testToken).status)

	for reason, n := range want {
		require.Equal(t, float64(n), authFailures(t, b, reason), reason)
	}

	// Each refusal is in the audit log (10 burst per key by default, so
	// none is suppressed here), with what was asked and why it failed.
	flushAudit(t, b)
	page, err := b.store.ListAudit(testCtx(t), store.AuditFilter{Type: metricsapi.AuditAuthFailed})
	require.NoError(t, err)
	require.Len(t, page.Events, len(cases)+1)
	got := map[string]int{}
	for _, ev := range page.Events {
		require.False(t, ev.Success)
		require.Equal(t, "127.0.0.1", ev.ClientInfo["remote_addr"])
		require.Equal(t, "GET", ev.ClientInfo["method"])
		require.True(t, strings.HasPrefix(ev.ClientInfo["path"].(string), "/api/v1/"))
		require.Contains(t, ev.ClientInfo, "user_agent")
		require.NotEmpty(t, ev.ErrorDetails)
		require.NotContains(t, ev.ErrorDetails, testToken)
		got[ev.ClientInfo["reason"].(string)]++
	}
	require.Equal(t, want, got)
}

func TestAuthFloodWritesBoundedAuditRows(t *testing.T) {
	t.Parallel()
	const burst, flood = 3, 60
	b := setup(t, func(o *setupOptions) {
		o.audit = store.AuditWriterConfig{LimitBurst: burst, LimitEvery: time.Hour}
	})
	for range flood {
		r := b.do(t, http.MethodGet, "/api/v1/events", "Bearer not-the-token-at-all-xxxxx")
		require.Equal(t, http.StatusUnauthorized, r.status)
	}
	require.Equal(t, float64(flood), authFailures(t, b, metricsapi.AuthInvalid), "every refusal is counted")

	flushAudit(t, b)
	page, err := b.store.ListAudit(testCtx(t), store.AuditFilter{Type: metricsapi.AuditAuthFailed})
	require.NoError(t, err)
	// burst rows pass, then one summary row stands for the rest.
	require.Len(t, page.Events, burst+1)
	total := len(page.Events)
	for _, ev := range page.Events {
		if n, ok := ev.ClientInfo[store.SuppressedKey]; ok {
			total += int(n.(float64))
		}
	}
	require.Equal(t, flood, total, "the rows account for every refusal")
	require.Equal(t, float64(flood-burst), float64(b.audit.Stats().Dropped[store.DropRateLimited]))
}

func TestAuthSucceedsWithoutAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 5 {
		require.Equal(t, http.StatusOK, b.get(t, "/api/v1/pools").status)
	}
	flushAudit(t, b)
	page, err := b.store.ListAudit(testCtx(t), store.AuditFilter{})
	require.NoError(t, err)
	require.Empty(t, page.Events)
	require.Equal(t, 5.0, requestCount(t, b, "pools", "200"))
}

// requestCount reads omnibridge_metricsapi_requests_total{route, code}.
func requestCount(t *testing.T, b *bundle, route, code string) float64 {
	t.Helper()
	fams, err := b.reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != "omnibridge_metricsapi_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestPublicEndpointsNeedNoToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/", "/api/v1/openapi.json", "/dashboard/app.js", "/dashboard/charts.js", "/dashboard/app.css"} {
		r := b.do(t, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, r.status, path)
	}
	require.Zero(t, authFailures(t, b, metricsapi.AuthMissing))
}

func TestNoTokenRefusesToStart(t *testing.T) {
	t.Parallel()
	st := store.New(nil)
	_, err := metricsapi.New(metricsapi.Config{}, metricsapi.Deps{Store: st})
	require.ErrorIs(t, err, metricsapi.ErrNoToken)

	_, err = metricsapi.New(metricsapi.Config{Token: "short"}, metricsapi.Deps{Store: st})
	var fe *metricsapi.FieldError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, "token", fe.Field)
	require.NotContains(t, err.Error(), "short", "the token is not printed")

	api, err := metricsapi.New(metricsapi.Config{AllowNoToken: true}, metricsapi.Deps{Store: st})
	require.NoError(t, err)
	require.NotNil(t, api)
}

func TestAllowNoTokenServesWithoutAuthorization(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOptions) { o.cfg = metricsapi.Config{AllowNoToken: true} })
	seed(t, b.store)
	p := decode[store.Performance](t, b.do(t, http.MethodGet, "/api/v1/performance", ""))
	require.EqualValues(t, 13, p.Received)

	// A token, when configured, is required even with AllowNoToken.
	c := setup(t, func(o *setupOptions) { o.cfg = metricsapi.Config{Token: testToken, AllowNoToken: true} })
	requireError(t, c.do(t, http.MethodGet, "/api/v1/performance", ""), http.StatusUnauthorized, metricsapi.CodeUnauthorized)
}
