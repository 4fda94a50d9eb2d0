package metricsapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// queryContext bounds the database work of a request (see reads).
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.QueryTimeout)
	return reads(ctx), cancel
}

// reads marks ctx for statements that only read: pgclient may send them again
// after the connection was lost under them (a restarted or failed-over
// server), within the request's time.
func reads(ctx context.Context) context.Context { return pgclient.Idempotent(ctx) }

// performance serves GET /api/v1/performance?window=1h.
func (a *API) performance(w http.ResponseWriter, r *http.Request) error {
	p, err := parseParams(r, "window")
	if err != nil {
		return err
	}
	window, err := p.duration("window", a.cfg.DefaultWindow, time.Second, a.cfg.MaxWindow)
	if err != nil {
		return err
	}
	body, err := a.cache.get(r.Context(), "performance "+window.String(), a.cfg.QueryTimeout,
		func(ctx context.Context) (any, error) { return a.store.PerformanceReport(reads(ctx), window) })
	if err != nil {
		return err
	}
	writeRawJSON(w, body)
	return nil
}

// performanceSeries serves GET /api/v1/performance/series?window=1h&step=1m.
func (a *API) performanceSeries(w http.ResponseWriter, r *http.Request) error {
	p, err := parseParams(r, "window", "step")
	if err != nil {
		return err
	}
	window, err := p.duration("window", a.cfg.DefaultWindow, time.Second, a.cfg.MaxWindow)
	if err != nil {
		return err
	}
	step, err := p.duration("step", defaultStep(window, a.cfg.SeriesPoints), time.Second, window)
	if err != nil {
		return err
	}
	n := bucketCount(window, step)
	if n > MaxSeriesPoints {
		return paramError("step", "%s makes %d buckets of a %s window, want at most %d (use a longer step)",
			formatDuration(step), n, formatDuration(window), MaxSeriesPoints)
	}
	body, err := a.cache.get(r.Context(), "series "+step.String()+" "+strconv.Itoa(n), a.cfg.QueryTimeout,
		func(ctx context.Context) (any, error) { return a.store.PerformanceSeries(reads(ctx), step, n) })
	if err != nil {
		return err
	}
	writeRawJSON(w, body)
	return nil
}

// defaultStep divides window into points buckets, rounded up to whole
// seconds.
func defaultStep(window time.Duration, points int) time.Duration {
	step := (window + time.Duration(points) - 1) / time.Duration(points)
	return max(time.Second, (step + time.Second - 1).Truncate(time.Second))
}

// bucketCount is the number of step-long buckets that cover window.
func bucketCount(window, step time.Duration) int {
	return int((window + step - 1) / step)
}

// poolsResponse is the body of GET /api/v1/pools.
type poolsResponse struct {
	// Pools holds the newest snapshot of every service instance that
	// reported within HorizonSeconds, by service and instance.
	Pools          []store.ConnectionSnapshot `json:"pools"`
	HorizonSeconds float64                    `json:"horizon_seconds"`
}

// pools serves GET /api/v1/pools.
func (a *API) pools(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseParams(r); err != nil {
		return err
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	snaps, err := a.store.LatestConnectionMetrics(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, poolsResponse{
		Pools:          nonNil(snaps),
		HorizonSeconds: store.ConnectionMetricsHorizon.Seconds(),
	})
	return nil
}

// sessionsResponse is the body of GET /api/v1/sessions.
type sessionsResponse struct {
	Sessions []store.Session `json:"sessions"`
}

// sessions serves GET /api/v1/sessions[?status=active&service=…&limit=…].
func (a *API) sessions(w http.ResponseWriter, r *http.Request) error {
	p, err := parseParams(r, "status", "service", "limit")
	if err != nil {
		return err
	}
	status, err := p.oneOf("status", string(store.SessionActive))
	if err != nil {
		return err
	}
	service := p.get("service")
	if len([]rune(service)) > store.MaxSessionText {
		return paramError("service", "is longer than %d characters", store.MaxSessionText)
	}
	limit, err := p.limit(a.cfg.DefaultPageSize, min(a.cfg.MaxPageSize, store.MaxSessionLimit))
	if err != nil {
		return err
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	list, err := a.store.ListSessions(ctx, store.SessionFilter{
		ActiveOnly: status == string(store.SessionActive), Service: service, Limit: limit,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionsResponse{Sessions: nonNil(list)})
	return nil
}

// nonNil makes an empty listing encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
