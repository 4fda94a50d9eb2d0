package metricsapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnibridge/omnibridge/store"
)

// Deps are what the API works with.
type Deps struct {
	// Store is the data layer on the service's pool. Required.
	Store *store.Store
	// Audit receives a rate-limited row for every refused request. Nil
	// audits nothing (the failures are still counted and logged).
	Audit *store.AuditWriter
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registerer receives the API's metrics. Nil registers nothing. The
	// runtime serves /metrics from its own registry.
	Registerer prometheus.Registerer
}

// ErrMissingStore is returned by New without Deps.Store.
var ErrMissingStore = errors.New("metricsapi: Deps.Store is required (pass store.New on the service's pool)")

// API serves the ModelMetrics endpoints and the dashboard. Create it with New
// and mount it with Register. It is safe for concurrent use.
type API struct {
	cfg   Config
	store *store.Store
	audit *store.AuditWriter
	log   *slog.Logger
	auth  *authenticator
	m     *metrics
	cache *resultCache
	now   func() time.Time

	routes  []route
	openapi []byte
	page    []byte // the rendered dashboard page
}

// route is one endpoint: what Register mounts, what the OpenAPI test checks.
type route struct {
	method string
	path   string // http.ServeMux syntax
	name   string // the route label of the metrics
	auth   bool
	h      func(http.ResponseWriter, *http.Request) error
}

// New fills cfg's defaults, checks it and d, and returns the API with its
// metrics registered on d.Registerer. It fails with ErrNoToken when no token
// is configured and cfg.AllowNoToken is not set, with every invalid field of
// cfg (see Config.Validate), with ErrMissingStore, or when the Registerer
// already holds an API's metrics. It does not touch the database.
func New(cfg Config, d Deps) (*API, error) {
	cfg = cfg.WithDefaults()
	var errs []error
	if cfg.Token == "" && !cfg.AllowNoToken {
		errs = append(errs, ErrNoToken)
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if d.Store == nil {
		errs = append(errs, ErrMissingStore)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{
		cfg:     cfg,
		store:   d.Store,
		audit:   d.Audit,
		log:     log,
		auth:    newAuthenticator(cfg.Token),
		cache:   newResultCache(cfg.CacheTTL),
		now:     time.Now,
		openapi: openapiDoc,
	}
	page, err := renderDashboard(cfg)
	if err != nil {
		return nil, err
	}
	a.page = page
	a.routes = []route{
		{"GET", "/api/v1/performance", "performance", true, a.performance},
		{"GET", "/api/v1/performance/series", "performance_series", true, a.performanceSeries},
		{"GET", "/api/v1/pools", "pools", true, a.pools},
		{"GET", "/api/v1/sessions", "sessions", true, a.sessions},
		{"GET", "/api/v1/events", "events_list", true, a.listEvents},
		{"GET", "/api/v1/events/{id}", "event_get", true, a.getEvent},
		{"GET", "/api/v1/audit", "audit_list", true, a.listAudit},
		{"GET", "/api/v1/openapi.json", "openapi", false, a.serveOpenAPI},
		{"GET", "/{$}", "dashboard", false, a.serveDashboard},
		{"GET", "/dashboard/{file}", "dashboard_asset", false, a.serveAsset},
	}
	a.m = newMetrics(a.routes)
	if err := a.m.register(d.Registerer); err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		log.Warn("metricsapi: no token configured: the API serves every request unauthenticated (development only)")
	}
	return a, nil
}

// Register mounts every endpoint on mux, with a JSON 405 for other methods on
// the same paths and a JSON 404 for unknown paths under /api/. It panics, as
// http.ServeMux does, when mux already has one of these patterns.
func (a *API) Register(mux *http.ServeMux) {
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range a.routes {
		mux.Handle(rt.method+" "+rt.path, a.handler(rt))
		if _, seen := allowed[rt.path]; !seen {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	for _, p := range paths {
		mux.Handle(p, a.methodNotAllowed(allowed[p]))
	}
	mux.Handle("/api/", a.notFound())
}

func (a *API) handler(rt route) http.Handler {
	requests := a.m.requests.MustCurryWith(prometheus.Labels{"route": rt.name})
	duration := a.m.duration.WithLabelValues(rt.name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			duration.Observe(time.Since(start).Seconds())
			requests.WithLabelValues(strconv.Itoa(sw.status)).Inc()
		}()
		if rt.auth {
			if reason := a.auth.check(r); reason != "" {
				a.refuse(sw, r, reason)
				return
			}
		}
		if err := rt.h(sw, r); err != nil {
			a.writeError(sw, r, err)
		}
	})
}

func (a *API) methodNotAllowed(methods []string) http.Handler {
	allowed := strings.Join(slices.Compact(slices.Sorted(slices.Values(methods))), ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowed)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{
			Error: fmt.Sprintf("method %s is not allowed here (allowed: %s)", r.Method, allowed), Code: CodeMethodNotAllowed})
	})
}

func (a *API) notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{
			Error: "no such endpoint (GET /api/v1/openapi.json lists them)", Code: CodeNotFound})
	})
}

// statusWriter remembers the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.status, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
