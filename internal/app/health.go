package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// Health statuses, worst last; `omnibridge health` exits with their index.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
)

var statusRank = map[string]int{Healthy: 0, Degraded: 1, Unhealthy: 2}

// ExitCode is the process exit code of a health status: 0, 1 or 2.
func ExitCode(status string) int { return statusRank[status] }

// HealthThresholds say when the backlog and maintenance count as degraded or
// unhealthy.
type HealthThresholds struct {
	// BacklogDegraded and BacklogUnhealthy bound the age of the oldest pending
	// event. Default to 5m and 1h.
	BacklogDegraded, BacklogUnhealthy time.Duration
	// PoolUtilization (percent) of any service instance above which the pools
	// count as degraded. Defaults to 85.
	PoolUtilization float64
	// Timeout bounds each check. Defaults to 5s.
	Timeout time.Duration
	// SnapshotMaxAge: an instance whose newest pool snapshot is older than
	// this stopped (or cannot write); it is listed apart and does not count.
	// Defaults to three of the longest metrics_interval of the services in
	// this configuration, and at least 5 minutes (the services may run with
	// longer intervals than the configuration the CLI reads).
	SnapshotMaxAge time.Duration
}

func (h HealthThresholds) withDefaults() HealthThresholds {
	if h.BacklogDegraded <= 0 {
		h.BacklogDegraded = 5 * time.Minute
	}
	if h.BacklogUnhealthy <= 0 {
		h.BacklogUnhealthy = time.Hour
	}
	if h.PoolUtilization <= 0 {
		h.PoolUtilization = 85
	}
	if h.Timeout <= 0 {
		h.Timeout = 5 * time.Second
	}
	return h
}

// ComponentHealth is one check of `omnibridge health`.
type ComponentHealth struct {
	Name   string         `json:"name"`
	Status string         `json:"status"`
	Detail string         `json:"detail"`
	Data   map[string]any `json:"data,omitempty"`
}

// HealthReport is the whole system's health: the worst of its components.
type HealthReport struct {
	Status     string            `json:"status"`
	Components []ComponentHealth `json:"components"`
	CheckedAt  time.Time         `json:"checked_at"`
}

func (r *HealthReport) add(c ComponentHealth) {
	r.Components = append(r.Components, c)
	if statusRank[c.Status] > statusRank[r.Status] {
		r.Status = c.Status
	}
}

// CheckHealth checks every component: database (test query, breaker), the
// services' pools (their latest snapshots), migrations, Kafka, the backlog
// and maintenance. A database that cannot be reached makes the report
// unhealthy and the checks that need it are reported as such.
func CheckHealth(ctx context.Context, cfg config.Config, log *slog.Logger, th HealthThresholds) HealthReport {
	th = th.withDefaults()
	if th.SnapshotMaxAge <= 0 {
		sv := cfg.Services.WithDefaults()
		th.SnapshotMaxAge = max(5*time.Minute, 3*max(sv.HookReceiver.Runtime.MetricsInterval,
			sv.WorkflowCoordinator.Runtime.MetricsInterval, sv.ModelMetrics.Runtime.MetricsInterval))
	}
	rep := HealthReport{Status: Healthy, CheckedAt: time.Now()}
	// The database check is bounded like the others: an unreachable or
	// black-holed server must give "unhealthy", not a hung command.
	dctx, cancel := context.WithTimeout(ctx, th.Timeout)
	defer cancel()
	client, st, err := OpenStore(dctx, cfg, log)
	if err != nil {
		rep.add(ComponentHealth{Name: "database", Status: Unhealthy, Detail: err.Error()})
		return rep
	}
	defer client.Close()

	h := client.Health(dctx)
	dbc := ComponentHealth{Name: "database", Status: string(h.Status),
		Detail: fmt.Sprintf("test query %.1f ms", h.QueryTest.ResponseTimeMS),
		Data:   map[string]any{"query_test": h.QueryTest, "reasons": h.Reasons}}
	if len(h.Reasons) > 0 {
		dbc.Detail += "; " + fmt.Sprint(h.Reasons)
	}
	rep.add(dbc)
	if h.Status == pgclient.StatusUnhealthy {
		return rep
	}
	check := func(name string, fn func(context.Context) ComponentHealth) {
		cctx, cancel := context.WithTimeout(ctx, th.Timeout)
		defer cancel()
		c := fn(cctx)
		c.Name = name
		rep.add(c)
	}
	check("migrations", func(ctx context.Context) ComponentHealth { return checkMigrations(ctx, cfg.Database.URL) })
	check("pools", func(ctx context.Context) ComponentHealth { return checkPools(ctx, st, th) })
	check("backlog", func(ctx context.Context) ComponentHealth { return checkBacklog(ctx, st, th) })
	check("maintenance", func(ctx context.Context) ComponentHealth { return checkMaintenance(ctx, st, cfg.Retention) })
	check("kafka", func(ctx context.Context) ComponentHealth { return checkKafka(ctx, cfg.Kafka, log) })
	return rep
}

func checkMigrations(ctx context.Context, url string) ComponentHealth {
	db, err := migrations.OpenDB(ctx, url)
	if err != nil {
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	}
	defer db.Close()
	v, latest, err := migrations.Current(ctx, db)
	switch {
	case err != nil:
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	case v < latest:
		return ComponentHealth{Status: Unhealthy, Detail: fmt.Sprintf("schema at version %d, this binary needs %d: run omnibridge migrate up", v, latest)}
	case v > latest:
		return ComponentHealth{Status: Degraded, Detail: fmt.Sprintf("schema at version %d is newer than this binary's %d", v, latest)}
	}
	return ComponentHealth{Status: Healthy, Detail: fmt.Sprintf("schema current at version %d", v)}
}

// checkPools judges the pools by the newest snapshot of each instance that
// still reports; the snapshots of instances that stopped (older than
// th.SnapshotMaxAge, up to store.ConnectionMetricsHorizon) are listed apart.
func checkPools(ctx context.Context, st *store.Store, th HealthThresholds) ComponentHealth {
	snaps, err := st.LatestConnectionMetrics(ctx)
	if err != nil {
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	}
	live, stopped := []store.ConnectionSnapshot{}, []store.ConnectionSnapshot{}
	for _, s := range snaps {
		if time.Since(s.RecordedAt) > th.SnapshotMaxAge {
			stopped = append(stopped, s)
		} else {
			live = append(live, s)
		}
	}
	c := ComponentHealth{Status: Healthy, Detail: fmt.Sprintf("%d service instances reporting", len(live)),
		Data: map[string]any{"instances": live, "stopped": stopped}}
	for _, s := range live {
		switch {
		case s.PotentialLeaks > 0:
			c.Status = Degraded
			c.Detail = fmt.Sprintf("%s/%s reports %d potential connection leaks", s.ServiceName, s.InstanceID, s.PotentialLeaks)
		case s.UtilizationPercent > th.PoolUtilization:
			c.Status = Degraded
			c.Detail = fmt.Sprintf("%s/%s pool at %.0f%% utilization", s.ServiceName, s.InstanceID, s.UtilizationPercent)
		}
	}
	if len(stopped) > 0 {
		c.Detail += fmt.Sprintf("; %d stopped reporting (no snapshot for %s)", len(stopped), th.SnapshotMaxAge)
	}
	return c
}

func checkBacklog(ctx context.Context, st *store.Store, th HealthThresholds) ComponentHealth {
	p, err := st.Backlog(ctx)
	if err != nil {
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	}
	c := ComponentHealth{Status: Healthy,
		Detail: fmt.Sprintf("%d pending, %d processing, %d dead; oldest pending %s", p.Pending, p.Processing, p.Dead, p.OldestPendingAge.Round(time.Second)),
		Data:   map[string]any{"backlog": p.Pending + p.Processing, "dead": p.Dead, "oldest_pending_age_seconds": p.OldestPendingAge.Seconds()}}
	switch {
	case p.OldestPendingAge > th.BacklogUnhealthy:
		c.Status = Unhealthy
	case p.OldestPendingAge > th.BacklogDegraded, p.Dead > 0:
		c.Status = Degraded
	}
	return c
}

func checkMaintenance(ctx context.Context, st *store.Store, p store.RetentionPolicy) ComponentHealth {
	page, err := st.ListAudit(ctx, store.AuditFilter{Type: "retention.run", Limit: 1})
	if err != nil {
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	}
	if len(page.Events) == 0 {
		return ComponentHealth{Status: Degraded, Detail: "retention has never run (the workflow coordinator runs it; omnibridge cleanup runs it now)"}
	}
	last := page.Events[0]
	age := time.Since(last.CreatedAt)
	c := ComponentHealth{Status: Healthy, Detail: fmt.Sprintf("last retention run %s ago", age.Round(time.Second)),
		Data: map[string]any{"last_run": last.CreatedAt, "lag_seconds": age.Seconds()}}
	if age > 2*p.Interval {
		c.Status = Degraded
		c.Detail = fmt.Sprintf("last retention run %s ago, more than twice the interval (%s)", age.Round(time.Second), p.Interval)
	}
	if !last.Success {
		c.Status = Degraded
		c.Detail += "; it failed: " + last.ErrorDetails
	}
	return c
}

func checkKafka(ctx context.Context, kc kafka.Config, log *slog.Logger) ComponentHealth {
	if len(kc.Brokers) == 0 {
		return ComponentHealth{Status: Degraded, Detail: "no kafka.brokers configured: the coordinator cannot publish"}
	}
	p, err := kafka.NewProducer(ctx, kc, log, nil)
	if err != nil {
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	}
	defer p.Close()
	if err := p.Ping(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within the check timeout: %w", err)
		}
		return ComponentHealth{Status: Unhealthy, Detail: err.Error()}
	}
	return ComponentHealth{Status: Healthy, Detail: fmt.Sprintf("topic %s reachable", kc.Topic)}
}
