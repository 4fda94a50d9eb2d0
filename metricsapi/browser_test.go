package metricsapi_test

import (
	"context"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/store"
)

// chromiumPath finds a headless-capable Chromium: $OMNIBRIDGE_CHROMIUM, or
// chromium, chromium-browser or google-chrome on the PATH. Without one the
// test is skipped, except in CI (CI=true), where that is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OMNIBRIDGE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the dashboard browser test needs Chromium: apt-get install -y chromium (or set OMNIBRIDGE_CHROMIUM)")
	}
	t.Skip("skipping the dashboard browser test: no chromium on the PATH (apt-get install -y chromium, or set OMNIBRIDGE_CHROMIUM)")
	return ""
}

// runChromium loads url in headless Chromium, lets it run for budget of
// virtual time (the page's fetches and timers), and returns the DOM as it
// is then; extra flags are added (e.g. --screenshot).
func runChromium(t *testing.T, bin, url string, budget time.Duration, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-first-run", "--no-default-browser-check", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=" + strconv.FormatInt(budget.Milliseconds(), 10),
	}
	args = append(args, extra...)
	if len(extra) == 0 {
		args = append(args, "--dump-dom")
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 10 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	return string(out)
}

// element is a start tag of the dumped DOM.
type element struct {
	tag   string
	attrs map[string]string
}

var (
	startTag = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/]+(?:="[^"]*")?)*)\s*/?>`)
	attrRe   = regexp.MustCompile(`([^\s=>/]+)(?:="([^"]*)")?`)
)

func parseElements(dom string) []element {
	var out []element
	for _, m := range startTag.FindAllStringSubmatch(dom, -1) {
		e := element{tag: strings.ToLower(m[1]), attrs: map[string]string{}}
		for _, a := range attrRe.FindAllStringSubmatch(m[2], -1) {
			e.attrs[a[1]] = html.UnescapeString(a[2])
		}
		out = append(out, e)
	}
	return out
}

// find returns the elements that have every given attribute value.
func find(els []element, tag string, attrs ...string) []element {
	var out []element
next:
	for _, e := range els {
		if tag != "" && e.tag != tag {
			continue
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if v, ok := e.attrs[attrs[i]]; !ok || v != attrs[i+1] {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

func findOne(t *testing.T, els []element, tag string, attrs ...string) element {
	t.Helper()
	got := find(els, tag, attrs...)
	require.Len(t, got, 1, "<%s %v>", tag, attrs)
	return got[0]
}

func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	bin := chromiumPath(t)
	b := setup(t, func(o *setupOptions) { o.cfg.RefreshInterval = 2 * time.Second })
	s := seed(t, b.store)

	dom := runChromium(t, bin, b.url+"/#token="+testToken, 7*time.Second)
	els := parseElements(dom)
	body := findOne(t, els, "body")
	require.Equal(t, "1h", body.attrs["data-window"])
	require.Len(t, find(els, "option", "value", "1h"), 1, "the default window is one of the choices")
	loads, err := strconv.Atoi(body.attrs["data-loaded"])
	require.NoError(t, err, "the page loaded its data: %s", dom)
	require.GreaterOrEqual(t, loads, 2, "the page refreshed itself")
	require.NotContains(t, findOne(t, els, "main").attrs, "hidden", "the dashboard is shown")
	require.Contains(t, findOne(t, els, "section", "id", "login").attrs, "hidden", "the sign-in form is not")
	require.Equal(t, "ok", findOne(t, els, "span", "id", "status").attrs["data-state"])

	// The tiles show the seeded figures.
	stat := func(key string) string { return findOne(t, els, "div", "data-stat", key).attrs["data-value"] }
	require.Equal(t, "13", stat("received"))
	require.Equal(t, strconv.Itoa(len(s.processed)), stat("processed"))
	require.Equal(t, strconv.Itoa(len(s.pending)), stat("backlog"))
	require.Equal(t, strconv.Itoa(len(s.dead)), stat("dead"))
	require.Equal(t, strconv.Itoa(s.activeSessions), stat("sessions"))
	require.Equal(t, "0.75", stat("success"))
	require.Contains(t, dom, ">75%<")
	age, err := strconv.ParseFloat(stat("oldest"), 64)
	require.NoError(t, err)
	require.Greater(t, age, 0.0)

	// The charts are drawn from the series.
	path := func(chart, series string) element {
		for _, e := range find(els, "path", "data-series", series) {
			if _, ok := e.attrs["data-total"]; ok {
				return e
			}
		}
		t.Fatalf("no path of series %s in chart %s", series, chart)
		return element{}
	}
	require.Len(t, find(els, "svg", "data-chart", "throughput"), 1)
	require.Equal(t, "13", path("throughput", "received").attrs["data-total"])
	require.Equal(t, "6", path("throughput", "processed").attrs["data-total"])
	require.NotEqual(t, "M0 0", path("throughput", "received").attrs["d"], "the line has points")
	for _, p := range []string{"p50", "p95", "p99"} {
		e := path("latency", p)
		require.Equal(t, "8", e.attrs["data-total"], "attempts behind the %s line", p)
		n, err := strconv.Atoi(e.attrs["data-points"])
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 1)
	}
	p99, err := strconv.ParseFloat(path("latency", "p99").attrs["data-max"], 64)
	require.NoError(t, err)
	require.InDelta(t, 100, p99, 1, "the p99 of the seeded attempts (two of 100 ms)")
	success := findOne(t, els, "svg", "data-chart", "success")
	require.Equal(t, "8", success.attrs["data-attempts"])
	require.Equal(t, "2", success.attrs["data-failed"])
	require.Equal(t, "5", path("backlog", "backlog").attrs["data-total"])

	// Pool utilization per instance, coloured by state.
	for _, p := range s.pools {
		g := findOne(t, els, "g", "data-instance", p.InstanceID)
		require.Equal(t, p.ServiceName, g.attrs["data-service"])
		require.Equal(t, strconv.FormatFloat(p.UtilizationPercent, 'f', -1, 64), g.attrs["data-utilization"])
		require.Equal(t, strconv.Itoa(p.Active), g.attrs["data-active"])
		require.Equal(t, strconv.Itoa(p.PoolSize), g.attrs["data-size"])
	}
	require.Contains(t, findOne(t, els, "g", "data-instance", "host-1").attrs["class"], "crit", "a leak is critical")
	require.Contains(t, findOne(t, els, "g", "data-instance", "host-0").attrs["class"], "ok")

	// Tables: active sessions, dead letters, failed security events.
	require.Len(t, find(els, "tr", "data-service", "hook_receiver"), 1)
	require.Len(t, find(els, "tr", "data-service", "workflow_coordinator"), 1)
	require.Empty(t, find(els, "tr", "data-service", "model_metrics"), "the ended session is not listed")
	for _, id := range s.dead {
		require.Len(t, find(els, "tr", "data-id", id.String()), 1, "dead letter %s", id)
	}
	require.Len(t, find(els, "tr", "data-type", "hook.signature_invalid"), 2)
	require.Len(t, find(els, "tr", "data-type", "api.auth_failed"), 1)
	require.Empty(t, find(els, "tr", "data-type", "retention.run"), "successful events are not listed")
	// Attacker-chosen text is shown as text, never as markup.
	require.Contains(t, dom, "&lt;img src=x onerror=alert(1)&gt;")
	require.Empty(t, find(els, "img"))

	// The page's API calls were authenticated: nothing was refused.
	require.Zero(t, authFailures(t, b, metricsapi.AuthMissing)+authFailures(t, b, metricsapi.AuthInvalid))
	require.GreaterOrEqual(t, requestCount(t, b, "performance_series", "200"), 2.0)

	// A screenshot, for people: OMNIBRIDGE_SCREENSHOT_DIR keeps it.
	dir := os.Getenv("OMNIBRIDGE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "dashboard.png")
	runChromium(t, bin, b.url+"/#token="+testToken, 5*time.Second,
		"--hide-scrollbars", "--window-size=1400,2000", "--screenshot="+shot)
	info, err := os.Stat(shot)
	require.NoError(t, err)
	require.Greater(t, info.Size(), int64(20_000), "a screenshot with content")
}

func TestDashboardSignIn(t *testing.T) {
	t.Parallel()
	bin := chromiumPath(t)
	b := setup(t)

	// Without a token the page asks for one and calls nothing.
	els := parseElements(runChromium(t, bin, b.url+"/", 3*time.Second))
	require.NotContains(t, findOne(t, els, "section", "id", "login").attrs, "hidden")
	require.Contains(t, findOne(t, els, "main").attrs, "hidden")
	require.Equal(t, "auth", findOne(t, els, "span", "id", "status").attrs["data-state"])
	require.Zero(t, authFailures(t, b, metricsapi.AuthMissing))

	// A wrong token is refused, said so, and audited.
	dom := runChromium(t, bin, b.url+"/#token=wrong-token-0123456789", 3*time.Second)
	els = parseElements(dom)
	require.NotContains(t, findOne(t, els, "section", "id", "login").attrs, "hidden")
	require.Contains(t, dom, "The token was refused")
	require.Positive(t, authFailures(t, b, metricsapi.AuthInvalid))
	flushAudit(t, b)
	page, err := b.store.ListAudit(testCtx(t), store.AuditFilter{Type: metricsapi.AuditAuthFailed})
	require.NoError(t, err)
	require.NotEmpty(t, page.Events)
	require.Contains(t, fmt.Sprint(page.Events[0].ClientInfo["user_agent"]), "Chrome")
}
