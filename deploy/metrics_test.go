package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile = "grafana/omnibridge-dashboard.json"
	rulesFile     = "prometheus/omnibridge-alerts.yml"
)

// query is a PromQL expression of a deployment file and where it is used.
type query struct {
	where string // "grafana/…: panel Title" or "prometheus/…: alert Name"
	expr  string
}

// rules is the layout of a Prometheus rule file.
type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) rules {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	var r rules
	require.NoError(t, dec.Decode(&r))
	return r
}

func ruleQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, query{where: rulesFile + ": alert " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return out
}

// dashboardQueries walks the dashboard for every target expression and
// variable query.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc))
	var out []query
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			if s, ok := v["name"].(string); ok && v["type"] == "query" {
				title = "variable " + s
			}
			for k, c := range v {
				if s, ok := c.(string); ok && (k == "expr" || k == "definition" || k == "query") && strings.Contains(s, "omnibridge_") {
					out = append(out, query{where: dashboardFile + ": " + title, expr: s})
					continue
				}
				walk(c, title)
			}
		case []any:
			for _, c := range v {
				walk(c, title)
			}
		}
	}
	walk(doc, "")
	return out
}

var (
	selectorRe   = regexp.MustCompile(`\b(omnibridge_[a-zA-Z0-9_:]+)\s*(\{([^}]*)\})?`)
	matcherRe    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupingRe   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	labelValueRe = regexp.MustCompile(`label_values\(\s*(omnibridge_[a-zA-Z0-9_:]+)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// targetLabels are added by Prometheus when it scrapes.
var targetLabels = map[string]bool{"instance": true, "job": true}

// check returns what is wrong with q against what the services export: a
// metric that nothing exports, or a label that the metric does not carry.
func check(q query, exp exported) (missing []string, problems []string) {
	var used []map[string]bool
	for _, m := range selectorRe.FindAllStringSubmatch(q.expr, -1) {
		name := m[1]
		labels, ok := exp.lookup(name)
		if !ok {
			missing = append(missing, name)
			continue
		}
		used = append(used, labels)
		for _, lm := range matcherRe.FindAllStringSubmatch(m[3], -1) {
			if l := lm[1]; !labels[l] && !targetLabels[l] {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %q (it has %s)", q.where, name, l, labelList(labels)))
			}
		}
	}
	for _, m := range labelValueRe.FindAllStringSubmatch(q.expr, -1) {
		if labels, ok := exp.lookup(m[1]); ok && !labels[m[2]] && !targetLabels[m[2]] {
			problems = append(problems, fmt.Sprintf("%s: %s has no label %q", q.where, m[1], m[2]))
		}
	}
	for _, m := range groupingRe.FindAllStringSubmatch(q.expr, -1) {
		for l := range strings.SplitSeq(m[1], ",") {
			l = strings.TrimSpace(l)
			if l == "" || targetLabels[l] {
				continue
			}
			if !slices.ContainsFunc(used, func(labels map[string]bool) bool { return labels[l] }) && len(used) > 0 {
				problems = append(problems, fmt.Sprintf("%s: groups by %q, which none of its metrics carries", q.where, l))
			}
		}
	}
	return missing, problems
}

func labelList(labels map[string]bool) string {
	var out []string
	for l := range labels {
		out = append(out, l)
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// TestDeployedMetricsAreExported fails for every metric that the dashboard or
// the alert rules name and that the services do not export (a rename, a typo,
// or a metric that has not landed yet), and for every label they select or
// group by that the metric does not carry.
func TestDeployedMetricsAreExported(t *testing.T) {
	queries := append(dashboardQueries(t), ruleQueries(t)...)
	require.Greater(t, len(queries), 40, "the files hold queries")
	exp := exportedByServices(t)
	require.Contains(t, exp.labels, "omnibridge_metricsapi_requests_total", "the collection sees the services' metrics")

	missingAt := map[string][]string{}
	var problems []string
	referenced := map[string]bool{}
	for _, q := range queries {
		missing, p := check(q, exp)
		problems = append(problems, p...)
		for _, name := range missing {
			missingAt[name] = append(missingAt[name], q.where)
		}
		for _, m := range selectorRe.FindAllStringSubmatch(q.expr, -1) {
			referenced[m[1]] = true
		}
	}
	require.Greater(t, len(referenced), 30, "the files name the metrics")
	for _, name := range sortedKeys(missingAt) {
		where := slices.Compact(slices.Sorted(slices.Values(missingAt[name])))
		t.Errorf("%s is not exported by any service, but is used by:\n\t%s", name, strings.Join(where, "\n\t"))
	}
	for _, p := range slices.Compact(slices.Sorted(slices.Values(problems))) {
		t.Error(p)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCheckFindsMistakes keeps the check above honest: it must notice an
// unknown metric and a label the metric does not have.
func TestCheckFindsMistakes(t *testing.T) {
	exp := newExported()
	exp.labels["omnibridge_a_total"] = map[string]bool{"reason": true}
	exp.labels["omnibridge_latency"] = map[string]bool{"route": true}
	exp.labels["omnibridge_gauge"] = map[string]bool{}
	exp.labels["omnibridge_b_events"] = map[string]bool{"status": true}
	exp.labels["omnibridge_vec"] = map[string]bool{"op": true}
	exp.kinds["omnibridge_a_total"] = "counter"
	exp.kinds["omnibridge_latency"] = "histogram"
	exp.kinds["omnibridge_gauge"] = "gauge"
	for expr, want := range map[string]struct{ missing, problems int }{
		`rate(omnibridge_a_total{reason="x", instance=~"$instance"}[5m])`:                   {0, 0},
		`sum by (reason) (rate(omnibridge_a_total[5m]))`:                                    {0, 0},
		`histogram_quantile(0.9, sum by (le, route) (rate(omnibridge_latency_bucket[5m])))`: {0, 0},
		`rate(omnibridge_latency_count[5m]) / rate(omnibridge_latency_sum[5m])`:             {0, 0},
		`rate(omnibridge_a_totl[5m])`:                                                       {1, 0},
		`rate(omnibridge_a_total{resaon="x"}[5m])`:                                          {0, 1},
		`max by (status) (omnibridge_gauge)`:                                                {0, 1},
		`omnibridge_b_events{status="dead"} > 0 and omnibridge_gauge == 2`:                  {0, 0},
		`label_values(omnibridge_gauge, service)`:                                           {0, 1},
		`omnibridge_gauge_bucket`:                                                           {1, 0},
		`rate(omnibridge_a_total_count[5m])`:                                                {1, 0},
		`rate(omnibridge_vec_bucket{op="x"}[5m])`:                                           {0, 0},
		`omnibridge_nothing_here + on() group_left omnibridge_gauge`:                        {1, 0},
	} {
		missing, problems := check(query{where: "t", expr: expr}, exp)
		require.Len(t, missing, want.missing, "%s: %v", expr, missing)
		require.Len(t, problems, want.problems, "%s: %v", expr, problems)
	}
}
