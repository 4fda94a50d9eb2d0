package deploy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/internal/app"
	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/kafka"
)

// exported is what the services export: each metric name with the labels
// it carries (constant and variable), and the kind of those that have series
// ("counter", "gauge", "histogram", …; absent for a vector without series).
type exported struct {
	labels map[string]map[string]bool
	kinds  map[string]string
}

func newExported() exported {
	return exported{labels: map[string]map[string]bool{}, kinds: map[string]string{}}
}

func (e exported) labelsOf(name string) map[string]bool {
	l := e.labels[name]
	if l == nil {
		l = map[string]bool{}
		e.labels[name] = l
	}
	return l
}

// labelsOf parses the labels out of a Desc's String form, the only way the
// client library shows them.
var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descConst  = regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	descVar    = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	constLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)=`)
)

func (e exported) addDesc(d *prometheus.Desc) {
	s := d.String()
	m := descName.FindStringSubmatch(s)
	if m == nil {
		return
	}
	labels := e.labelsOf(m[1])
	if c := descConst.FindStringSubmatch(s); c != nil {
		for _, l := range constLabel.FindAllStringSubmatch(c[1], -1) {
			labels[l[1]] = true
		}
	}
	if v := descVar.FindStringSubmatch(s); v != nil {
		for _, l := range strings.Split(v[1], ",") {
			l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "c("), ")")
			if l != "" {
				labels[l] = true
			}
		}
	}
}

// exportedByServices starts the three services the way `omnibridge serve`
// does (their own pools on a real database, the coordinator's producer on
// the in-process Kafka broker, a webhook source) and collects every metric
// their registries describe, including vectors that have no series yet, and
// every family they gather.
func exportedByServices(t *testing.T) exported {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	broker, err := kafka.StartBroker()
	require.NoError(t, err)
	t.Cleanup(broker.Close)

	cfg := config.Default()
	cfg.Database.URL = testdb.New(t)
	cfg.Kafka = broker.Config()
	cfg.Services.HookReceiver.Receiver.Sources = []hookreceiver.SourceConfig{{
		Name: "github", Verifier: hookreceiver.VerifierGitHub, Secrets: []string{"deploy-test-secret-0123456789"},
	}}
	cfg.Services.ModelMetrics.API.Token = "deploy-test-token-0123456789"
	listeners := map[string]net.Listener{}
	for _, name := range app.AllServices {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		listeners[name] = ln
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svcs, err := app.StartServices(ctx, cfg, log, app.AllServices, app.ServeOptions{Listeners: listeners})
	require.NoError(t, err)
	require.Len(t, svcs.Runtimes, len(app.AllServices))

	// Run them for a moment, so that what registers on start registers, then
	// stop them.
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svcs.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	time.Sleep(500 * time.Millisecond)

	out := newExported()
	for _, rt := range svcs.Runtimes {
		ch := make(chan *prometheus.Desc, 64)
		go func() {
			rt.Registry.Describe(ch)
			close(ch)
		}()
		for d := range ch {
			out.addDesc(d)
		}
		fams, err := rt.Registry.Gather()
		require.NoError(t, err)
		for _, f := range fams {
			labels := out.labelsOf(f.GetName())
			out.kinds[f.GetName()] = strings.ToLower(f.GetType().String())
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = true
				}
			}
		}
	}
	return out
}

// lookup resolves a name used in PromQL: a histogram's series are its name
// plus _bucket (with the label le), _sum and _count; a summary's _sum and
// _count. A metric whose kind is unknown (a vector without series) may be
// either.
func (e exported) lookup(name string) (labels map[string]bool, ok bool) {
	if l, ok := e.labels[name]; ok {
		return l, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(name, suffix)
		if !found {
			continue
		}
		l, ok := e.labels[base]
		if !ok {
			continue
		}
		switch kind, known := e.kinds[base]; {
		case !known, kind == "histogram", kind == "gauge_histogram":
		case kind == "summary" && suffix != "_bucket":
		default:
			return nil, false
		}
		if suffix == "_bucket" {
			l = cloneWith(l, "le")
		}
		return l, true
	}
	return nil, false
}

func cloneWith(m map[string]bool, extra string) map[string]bool {
	out := map[string]bool{extra: true}
	for k := range m {
		out[k] = true
	}
	return out
}
