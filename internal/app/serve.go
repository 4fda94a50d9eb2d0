package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

// AllServices are the services `serve` runs by default, in start order.
var AllServices = []string{config.HookReceiverName, config.WorkflowCoordinatorName, config.ModelMetricsName}

// sessionNames are the services' names in sessions, application_name and
// metrics: the names of their database roles.
var sessionNames = map[string]string{
	config.HookReceiverName:        "hook_receiver",
	config.WorkflowCoordinatorName: "workflow_coordinator",
	config.ModelMetricsName:        "model_metrics",
}

// ServeOptions tune StartServices.
type ServeOptions struct {
	// Version is recorded in each service session.
	Version string
	// Listeners, keyed by service name, replace listening on the configured
	// address (tests and `dev` pass listeners on free ports).
	Listeners map[string]net.Listener
	// AllowNoToken lets the ModelMetrics API run without a token (dev only).
	AllowNoToken bool
}

// Services is a set of running services in one process, each with its own
// pool (connection isolation).
type Services struct {
	Runtimes map[string]*service.Runtime
	// Receiver is the HookReceiver when it runs (dev prints a signed curl
	// from its sources).
	Receiver *hookreceiver.Receiver
	order    []string
	log      *slog.Logger
}

// ParseServices checks a --services list: names from AllServices separated
// by commas, a name given twice counted once; an empty list means all.
func ParseServices(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return AllServices, nil
	}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, fmt.Errorf("empty service name in %q: separate names with single commas", list)
		}
		if !slices.Contains(AllServices, n) {
			return nil, fmt.Errorf("unknown service %q: choose from %s", n, strings.Join(AllServices, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// StartServices opens each named service: its pool, session, HTTP listener and
// its own parts. Nothing serves until Run. On error, what was opened is closed.
func StartServices(ctx context.Context, cfg config.Config, log *slog.Logger, names []string, o ServeOptions) (*Services, error) {
	if cfg.Database.URL == "" {
		return nil, errors.New("serve needs a database URL: set --database-url, OMNIBRIDGE_DATABASE_URL or DATABASE_URL")
	}
	s := &Services{Runtimes: map[string]*service.Runtime{}, log: log}
	for _, name := range AllServices {
		if !slices.Contains(names, name) {
			continue
		}
		if err := s.start(ctx, cfg, name, o); err != nil {
			return nil, errors.Join(fmt.Errorf("%s: %w", name, err), s.abort())
		}
		s.order = append(s.order, name)
	}
	return s, nil
}

func (s *Services) start(ctx context.Context, cfg config.Config, name string, o ServeOptions) error {
	var rcfg service.Config
	switch name {
	case config.HookReceiverName:
		rcfg = cfg.Services.HookReceiver.Runtime
	case config.WorkflowCoordinatorName:
		rcfg = cfg.Services.WorkflowCoordinator.Runtime
	case config.ModelMetricsName:
		rcfg = cfg.Services.ModelMetrics.Runtime
	}
	rt, err := service.New(ctx, service.Options{
		Name: sessionNames[name], Version: o.Version, Config: rcfg,
		Database: cfg.Database, Logger: s.log, Listener: o.Listeners[name],
	})
	if err != nil {
		return err
	}
	s.Runtimes[name] = rt
	switch name {
	case config.HookReceiverName:
		r, err := hookreceiver.New(cfg.Services.HookReceiver.Receiver, hookreceiver.Deps{
			Store: rt.Store, Audit: rt.Audit, Logger: rt.Log, Registerer: rt.Registry,
		})
		if err != nil {
			return err
		}
		r.Mount(rt)
		s.Receiver = r
	case config.WorkflowCoordinatorName:
		return mountCoordinator(ctx, cfg, rt)
	case config.ModelMetricsName:
		acfg := cfg.Services.ModelMetrics.API
		acfg.AllowNoToken = o.AllowNoToken
		api, err := metricsapi.New(acfg, metricsapi.Deps{
			Store: rt.Store, Audit: rt.Audit, Logger: rt.Log, Registerer: rt.Registry,
		})
		if err != nil {
			return err
		}
		api.Register(rt.Mux)
	}
	return nil
}

// mountCoordinator adds the WorkflowCoordinator, its Kafka producer, and the
// maintenance every deployment needs exactly once: retention with partitions
// ahead (leader-elected among coordinators) and the session reaper.
func mountCoordinator(ctx context.Context, cfg config.Config, rt *service.Runtime) error {
	producer, err := kafka.NewProducer(ctx, cfg.Kafka, rt.Log, rt.Registry)
	if err != nil {
		return err
	}
	connCfg := rt.DB.Pool().Config().ConnConfig
	c, err := coordinator.New(cfg.Services.WorkflowCoordinator.Coordinator, coordinator.Deps{
		Store:     rt.Store,
		Publisher: producer,
		// LISTEN needs a session of its own, outside the pool.
		Listen:     func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, connCfg.Copy()) },
		Logger:     rt.Log,
		Registerer: rt.Registry,
	})
	if err != nil {
		producer.Close()
		return err
	}
	rt.Go(c.Run)
	rt.AddReadyCheck("kafka", c.Ready)
	rt.OnDrain(func(context.Context) error { producer.Close(); return nil })
	m, err := newMaintainer(rt, cfg.Retention, connCfg)
	if err != nil {
		return err
	}
	rt.Go(m.Run)
	reapAfter := service.DefaultSessionReapMultiplier * maxHeartbeat(cfg.Services)
	rt.Go(func(ctx context.Context) error { return reapSessions(ctx, rt, reapAfter) })
	return nil
}

// maxHeartbeat is the longest heartbeat interval of the configured services.
// The reaper closes the sessions of every service, not only the coordinator's,
// so it must wait for the slowest of them: a receiver that heartbeats every
// minute is not silent after three of the coordinator's 10 s intervals.
func maxHeartbeat(s config.ServicesConfig) time.Duration {
	return max(s.HookReceiver.Runtime.HeartbeatInterval,
		s.WorkflowCoordinator.Runtime.HeartbeatInterval,
		s.ModelMetrics.Runtime.HeartbeatInterval)
}

// newMaintainer builds the retention maintainer: its leader lock lives on a
// dedicated connection, and every run it leads is exported as metrics.
func newMaintainer(rt *service.Runtime, policy store.RetentionPolicy, connCfg *pgx.ConnConfig) (*store.Maintainer, error) {
	lastSuccess := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "omnibridge_retention_last_success_timestamp_seconds",
		Help: "Unix time of the last successful retention run this instance led; 0 before the first.",
	})
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnibridge_retention_runs_total",
		Help: "Retention runs this instance led, by result.",
	}, []string{"result"})
	deleted := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omnibridge_retention_rows_deleted_total",
		Help: "Rows removed by retention runs this instance led (deleted or in dropped partitions).",
	})
	if err := errors.Join(rt.Registry.Register(lastSuccess), rt.Registry.Register(runs), rt.Registry.Register(deleted)); err != nil {
		return nil, err
	}
	runs.WithLabelValues("success")
	runs.WithLabelValues("error")
	return store.NewMaintainer(rt.Store, store.MaintainerConfig{
		Policy: policy,
		Open:   store.ConfigConnOpener(connCfg),
		Logger: rt.Log,
		OnRun: func(rep store.RetentionReport, err error) {
			deleted.Add(float64(rep.RowsDeleted))
			if err != nil {
				runs.WithLabelValues("error").Inc()
				return
			}
			runs.WithLabelValues("success").Inc()
			lastSuccess.Set(float64(time.Now().Unix()))
		},
	})
}

// reapSessions marks sessions silent for too long as terminated.
func reapSessions(ctx context.Context, rt *service.Runtime, silentFor time.Duration) error {
	t := time.NewTicker(silentFor)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n, err := rt.Store.ReapSessions(ctx, silentFor)
			if err != nil && ctx.Err() == nil {
				rt.Log.Warn("sessions: reap failed", "err", err)
			} else if n > 0 {
				rt.Log.Info("sessions: reaped silent sessions", "count", n, "silent_for", silentFor)
			}
		}
	}
}

// Run serves every service until ctx ends or one fails; then all shut down
// (each in its own order: HTTP, work, drains, session, pool). It returns the
// failures.
func (s *Services) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(s.order))
	var wg sync.WaitGroup
	for i, name := range s.order {
		rt := s.Runtimes[name]
		wg.Go(func() {
			if err := rt.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", name, err)
			}
			cancel() // one service ending ends them all
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// abort closes services that were opened but never run.
func (s *Services) abort() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run returns at once and shuts down
	var errs []error
	for _, rt := range s.Runtimes {
		errs = append(errs, rt.Run(ctx))
	}
	return errors.Join(errs...)
}
