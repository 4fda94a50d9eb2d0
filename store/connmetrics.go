package store

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// ConnectionSnapshot is one pool snapshot of a service instance
// (connection_metrics). The JSON form is what the ModelMetrics API serves.
type ConnectionSnapshot struct {
	// ServiceName and InstanceID name the pool's owner. Both are required:
	// LatestConnectionMetrics lists snapshots per (service, instance).
	ServiceName string `json:"service_name"`
	InstanceID  string `json:"instance_id"`
	// PoolSize is the pool's maximum size; Active, Idle and Waiting count
	// connections in use, idle connections and callers waiting for one.
	PoolSize int `json:"pool_size"`
	Active   int `json:"active_connections"`
	Idle     int `json:"idle_connections"`
	Waiting  int `json:"waiting_connections"`
	// TotalQueries and FailedQueries count queries since the pool opened.
	TotalQueries  int64 `json:"total_queries"`
	FailedQueries int64 `json:"failed_queries"`
	// AvgQueryTimeMS is the mean query time in milliseconds. A NaN, infinite
	// or negative value is stored as NULL (unknown), which reads back as 0.
	AvgQueryTimeMS float64 `json:"avg_query_time_ms"`
	// PotentialLeaks counts connections held longer than the leak threshold.
	PotentialLeaks int `json:"potential_leaks"`
	// UtilizationPercent is Active / PoolSize × 100; stored like
	// AvgQueryTimeMS.
	UtilizationPercent float64 `json:"utilization_percent"`
	// RecordedAt is when the snapshot was taken; the database's now() when
	// zero.
	RecordedAt time.Time `json:"recorded_at"`
}

func (c *ConnectionSnapshot) check() *InputError {
	const rec = "connection snapshot"
	if r := checkName(c.ServiceName, MaxSessionText, true); r != "" {
		return inputError(rec, "service_name", "%s", r)
	}
	if r := checkName(c.InstanceID, MaxSessionText, true); r != "" {
		return inputError(rec, "instance_id", "%s", r)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"pool_size", int64(c.PoolSize)}, {"active_connections", int64(c.Active)},
		{"idle_connections", int64(c.Idle)}, {"waiting_connections", int64(c.Waiting)},
		{"total_queries", c.TotalQueries}, {"failed_queries", c.FailedQueries},
		{"potential_leaks", int64(c.PotentialLeaks)},
	} {
		if f.v < 0 {
			return inputError(rec, f.name, "%d is negative", f.v)
		}
		if f.name != "total_queries" && f.v > math.MaxInt32 {
			return inputError(rec, f.name, "%d does not fit an integer column", f.v)
		}
	}
	return nil
}

// nullableFloat is NULL for a value that says nothing (NaN, infinite, negative).
func nullableFloat(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return nil
	}
	return f
}

// RecordConnectionMetrics stores one pool snapshot. Bad input returns an
// *InputError and writes nothing. The statement does not read back what it
// wrote, so a service role with INSERT only can run it.
func (s *Store) RecordConnectionMetrics(ctx context.Context, c ConnectionSnapshot) error {
	if e := c.check(); e != nil {
		return e
	}
	_, err := s.db.Exec(ctx, `
		INSERT INTO omnibridge.connection_metrics (service_name, instance_id, pool_size,
			active_connections, idle_connections, waiting_connections, total_queries, failed_queries,
			avg_query_time_ms, potential_leaks, utilization_percent, recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, now()))`,
		c.ServiceName, c.InstanceID, c.PoolSize, c.Active, c.Idle, c.Waiting, c.TotalQueries,
		c.FailedQueries, nullableFloat(c.AvgQueryTimeMS), c.PotentialLeaks,
		nullableFloat(c.UtilizationPercent), timeOrNil(c.RecordedAt))
	if err != nil {
		return fmt.Errorf("store: record connection metrics of %s/%s: %w", c.ServiceName, c.InstanceID, err)
	}
	return nil
}

// ConnectionMetricsHorizon is how far back LatestConnectionMetrics looks: an
// instance that has not reported for this long is gone and not listed.
const ConnectionMetricsHorizon = 24 * time.Hour

// latestConnectionMetricsSQL walks the distinct (service_name, instance_id)
// pairs of the last ConnectionMetricsHorizon with a recursive skip scan over
// idx_connection_metrics_instance, then takes each pair's newest row from the
// same index: a few index probes per instance instead of reading every
// snapshot in the horizon, which DISTINCT ON would. Rows with a NULL service
// or instance (written outside this package) are not listed.
const latestConnectionMetricsSQL = `
WITH RECURSIVE instances AS (
    (SELECT service_name, instance_id FROM omnibridge.connection_metrics
     WHERE recorded_at >= now() - $1::interval AND service_name IS NOT NULL AND instance_id IS NOT NULL
     ORDER BY service_name, instance_id LIMIT 1)
  UNION ALL
    SELECT n.service_name, n.instance_id FROM instances i
    CROSS JOIN LATERAL (
        SELECT c.service_name, c.instance_id FROM omnibridge.connection_metrics c
        WHERE c.recorded_at >= now() - $1::interval AND c.instance_id IS NOT NULL
          AND (c.service_name, c.instance_id) > (i.service_name, i.instance_id)
        ORDER BY c.service_name, c.instance_id LIMIT 1) n
)
SELECT l.service_name, l.instance_id, l.pool_size, l.active_connections, l.idle_connections,
       l.waiting_connections, l.total_queries, l.failed_queries, coalesce(l.avg_query_time_ms, 0),
       l.potential_leaks, coalesce(l.utilization_percent, 0), l.recorded_at
FROM instances i
CROSS JOIN LATERAL (
    SELECT * FROM omnibridge.connection_metrics c
    WHERE c.service_name = i.service_name AND c.instance_id = i.instance_id
      AND c.recorded_at >= now() - $1::interval
    ORDER BY c.recorded_at DESC LIMIT 1) l
ORDER BY l.service_name, l.instance_id`

// LatestConnectionMetrics returns the newest snapshot of every (service_name,
// instance_id) that reported in the last ConnectionMetricsHorizon, ordered by
// service and instance. An unknown average query time or utilization comes
// back as 0.
func (s *Store) LatestConnectionMetrics(ctx context.Context) ([]ConnectionSnapshot, error) {
	rows, err := s.db.Query(ctx, latestConnectionMetricsSQL, ConnectionMetricsHorizon)
	if err != nil {
		return nil, fmt.Errorf("store: latest connection metrics: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConnectionSnapshot, error) {
		var c ConnectionSnapshot
		err := row.Scan(&c.ServiceName, &c.InstanceID, &c.PoolSize, &c.Active, &c.Idle, &c.Waiting,
			&c.TotalQueries, &c.FailedQueries, &c.AvgQueryTimeMS, &c.PotentialLeaks,
			&c.UtilizationPercent, &c.RecordedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: latest connection metrics: %w", err)
	}
	return out, nil
}

// RunConnectionMetrics records snapshot() now and then every interval until
// ctx ends, and returns nil then. Each write has a deadline of the interval
// (at most 10 s); a failed write is logged and the loop goes on, so a database
// outage costs snapshots, never the service. interval must be positive.
func (s *Store) RunConnectionMetrics(ctx context.Context, interval time.Duration, snapshot func() ConnectionSnapshot) error {
	if interval <= 0 {
		return inputError("filter", "interval", "%s must be positive", interval)
	}
	timeout := min(interval, 10*time.Second)
	record := func() {
		c := snapshot()
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := s.RecordConnectionMetrics(wctx, c); err != nil && ctx.Err() == nil {
			s.log.Warn("store: record connection metrics failed",
				slog.String("service_name", c.ServiceName), slog.String("instance_id", c.InstanceID),
				slog.String("error", err.Error()))
		}
	}
	record()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			record()
		}
	}
}
