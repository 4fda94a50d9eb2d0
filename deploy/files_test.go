package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/service"
)

// TestAlertRulesAreWellFormed checks what Prometheus and the people paged
// rely on: unique names, a severity, a summary and a description, and a
// parseable for.
func TestAlertRulesAreWellFormed(t *testing.T) {
	t.Parallel()
	r := loadRules(t)
	names := map[string]bool{}
	// The conditions the deployment promises to alert on.
	want := map[string]string{
		"breaker open": "omnibridge_pgclient_breaker_state", "leaks": "omnibridge_pgclient_current_leaks",
		"utilization": "omnibridge_pgclient_utilization_ratio", "backlog age": "omnibridge_coordinator_lag_seconds",
		"dead letters": "omnibridge_coordinator_dead_total", "retention lag": "omnibridge_retention_last_success_timestamp_seconds",
	}
	covered := map[string]bool{}
	for _, g := range r.Groups {
		require.NotEmpty(t, g.Name)
		require.NotEmpty(t, g.Rules, g.Name)
		for _, rule := range g.Rules {
			require.NotEmpty(t, rule.Alert, "every rule is an alert")
			require.False(t, names[rule.Alert], "alert %s is defined twice", rule.Alert)
			names[rule.Alert] = true
			require.NotEmpty(t, strings.TrimSpace(rule.Expr), rule.Alert)
			require.Contains(t, []string{"warning", "critical"}, rule.Labels["severity"], rule.Alert)
			require.NotEmpty(t, rule.Annotations["summary"], rule.Alert)
			require.NotEmpty(t, rule.Annotations["description"], rule.Alert)
			if rule.For != "" {
				_, err := time.ParseDuration(rule.For)
				require.NoError(t, err, rule.Alert)
			}
			require.Equal(t, strings.Count(rule.Expr, "("), strings.Count(rule.Expr, ")"), "%s: unbalanced parentheses", rule.Alert)
			for what, metric := range want {
				if strings.Contains(rule.Expr, metric) {
					covered[what] = true
				}
			}
		}
	}
	for what := range want {
		require.True(t, covered[what], "no alert on %s", what)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}

// TestGrafanaDashboardIsWellFormed checks the parts Grafana needs to import
// the dashboard: unique panel ids, a datasource variable every target uses,
// and a unit on every graph.
func TestGrafanaDashboardIsWellFormed(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
			FieldConfig struct {
				Defaults struct {
					Unit string `json:"unit"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, "omnibridge", d.UID)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	require.Equal(t, "datasource", vars["datasource"])
	ids := map[int]bool{}
	graphs := 0
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		graphs++
		require.NotNil(t, p.Datasource, p.Title)
		require.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		require.NotEmpty(t, p.FieldConfig.Defaults.Unit, p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.RefID, p.Title)
			require.Equal(t, strings.Count(tg.Expr, "("), strings.Count(tg.Expr, ")"), "%s: unbalanced parentheses", p.Title)
			for _, v := range regexp.MustCompile(`\$([a-z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !strings.HasPrefix(v[1], "__") {
					require.Contains(t, vars, v[1], "%s uses an undefined variable", p.Title)
				}
			}
		}
	}
	require.Greater(t, graphs, 25)
}

// TestExampleConfigLoads loads the example with the secrets it says come from
// the environment, so that every key in it is a real setting with a valid
// value.
func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"OMNIBRIDGE_DATABASE_URL":                 "postgres://omnibridge:secret@db.internal:5432/omnibridge?sslmode=verify-full",
		"OMNIBRIDGE_SERVICES_MODEL_METRICS_TOKEN": "0123456789abcdef0123456789abcdef",
		"OMNIBRIDGE_KAFKA_SASL_PASSWORD":          "kafka-secret",
	}
	cfg, err := config.Load(config.Source{
		File: "omnibridge.example.yaml",
		Env:  func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	require.NoError(t, err)
	require.Equal(t, config.EnvProduction, cfg.Environment)
	require.Len(t, cfg.Services.HookReceiver.Receiver.Sources, 3)
	require.Equal(t, env["OMNIBRIDGE_SERVICES_MODEL_METRICS_TOKEN"], cfg.Services.ModelMetrics.API.Token)
	require.Len(t, cfg.Kafka.Brokers, 3)

	// Secrets stay out of the file: the token and the database URL are
	// documented as environment variables.
	raw, err := os.ReadFile("omnibridge.example.yaml")
	require.NoError(t, err)
	for k := range env {
		require.Contains(t, string(raw), k, "the example says where %s goes", k)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		code, _, _ := strings.Cut(line, "#")
		require.NotRegexp(t, `^\s*(token|password|url):\s*\S`, code, "a secret in the example: %q", line)
	}
}

// TestSystemdUnit checks that the unit runs `serve` with the example's path,
// gives a graceful shutdown more time than it takes, and, when
// systemd-analyze is installed, that systemd accepts it.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	const unit = "systemd/omnibridge.service"
	f, err := os.Open(unit)
	require.NoError(t, err)
	defer f.Close()
	sections := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			sections[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "a key=value line: %q", line)
			require.NotEmpty(t, section, "a line outside a section: %q", line)
			sections[section][k] = append(sections[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	for _, s := range []string{"Unit", "Service", "Install"} {
		require.Contains(t, sections, s)
	}
	svc := sections["Service"]
	require.Len(t, svc["ExecStart"], 1)
	args := strings.Fields(svc["ExecStart"][0])
	require.Equal(t, "serve", args[1])
	require.Contains(t, args, "--config")
	require.Equal(t, []string{"SIGTERM"}, svc["KillSignal"])
	require.Equal(t, []string{"on-failure"}, svc["Restart"])
	stop, err := time.ParseDuration(svc["TimeoutStopSec"][0])
	require.NoError(t, err)
	def := service.Config{}.WithDefaults(":0").ShutdownTimeout
	require.Greater(t, stop, def+5*time.Second, "systemd must wait longer than services.*.shutdown_timeout")
	require.Contains(t, sections["Unit"], "StartLimitIntervalSec", "start limits belong in [Unit]")

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return
	}
	// Verify a copy whose ExecStart names a binary that exists here.
	dir := t.TempDir()
	raw, err := os.ReadFile(unit)
	require.NoError(t, err)
	copyUnit := filepath.Join(dir, "omnibridge.service")
	bin, err := exec.LookPath("true")
	require.NoError(t, err)
	fixed := strings.Replace(string(raw), "/usr/local/bin/omnibridge serve", bin+" serve", 1)
	require.NoError(t, os.WriteFile(copyUnit, []byte(fixed), 0o644))
	out, err := exec.Command(analyze, "verify", copyUnit).CombinedOutput()
	if err != nil && strings.Contains(string(out), "System has not been booted with systemd") {
		t.Logf("systemd-analyze cannot run here: %s", out)
		return
	}
	require.NoError(t, err, "%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has remarks")
}
