package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/omnibridge/omnibridge/internal/fielderr"
)

// Defaults of RetentionPolicy.
const (
	DefaultProcessedEventsRetention   = 30 * 24 * time.Hour
	DefaultDeadEventsRetention        = 30 * 24 * time.Hour
	DefaultEventMetricsRetention      = 90 * 24 * time.Hour
	DefaultEndedSessionsRetention     = 7 * 24 * time.Hour
	DefaultAuditRetention             = 180 * 24 * time.Hour
	DefaultConnectionMetricsRetention = 30 * 24 * time.Hour
	DefaultRetentionBatchSize         = 5000
	DefaultPartitionsAhead            = 7
	DefaultRetentionLockTimeout       = time.Second
	DefaultMaintenanceInterval        = time.Hour
)

// Limits that RetentionPolicy.Validate enforces.
const (
	// MinRetention is the shortest retention accepted, a guard against a unit
	// mistake that would empty a table.
	MinRetention       = time.Hour
	MaxRetentionBatch  = 100_000
	MaxPartitionsAhead = 365
	MaxLockTimeout     = time.Minute
	MinMaintenance     = time.Second
)

// RetentionPolicy says how long data is kept and how maintenance runs. The
// omnibridge configuration embeds it under "retention:"; durations are Go
// durations ("720h").
type RetentionPolicy struct {
	// ProcessedEvents is how long a processed hook event is kept after it was
	// created. Defaults to 30 days. Pending and processing events are never
	// removed.
	ProcessedEvents time.Duration `yaml:"processed_events"`
	// DeadEvents is how long a dead-lettered event is kept after its last
	// attempt (the latest of created_at, claimed_at and next_attempt_at; Fail
	// sets next_attempt_at to the time the last attempt failed), so that an
	// operator can inspect and replay it. Defaults to 30 days. Keep it
	// no longer than ProcessedEvents unless you must: a day's partition is
	// dropped whole only once its dead events have expired too; until then its
	// processed events are deleted row by row.
	DeadEvents time.Duration `yaml:"dead_events"`
	// EventMetrics is how long processing attempts are kept. Defaults to 90 days.
	EventMetrics time.Duration `yaml:"event_metrics"`
	// EndedSessions is how long a session is kept after it ended. Defaults to
	// 7 days. Active sessions are never removed.
	EndedSessions time.Duration `yaml:"ended_sessions"`
	// Audit is how long the security audit log is kept. Defaults to 180 days.
	// Audit rows leave only with whole monthly partitions, so a row stays up to
	// a month longer.
	Audit time.Duration `yaml:"audit"`
	// ConnectionMetrics is how long pool snapshots are kept. Defaults to 30 days.
	ConnectionMetrics time.Duration `yaml:"connection_metrics"`
	// BatchSize is the most rows one delete transaction removes. Defaults to 5000.
	BatchSize int `yaml:"batch_size"`
	// PartitionsAhead is how many days of partitions are created ahead.
	// Defaults to 7.
	PartitionsAhead int `yaml:"partitions_ahead"`
	// LockTimeout bounds every lock wait of maintenance, so that it never
	// holds up the services' queries for longer. Defaults to 1 s.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// Interval is how often the Maintainer runs. Defaults to 1 hour.
	Interval time.Duration `yaml:"interval"`
}

// DefaultRetentionPolicy returns the policy with every default.
func DefaultRetentionPolicy() RetentionPolicy { return RetentionPolicy{}.WithDefaults() }

// WithDefaults returns p with every zero field set to its default.
func (p RetentionPolicy) WithDefaults() RetentionPolicy {
	p.ProcessedEvents = cmp.Or(p.ProcessedEvents, DefaultProcessedEventsRetention)
	p.DeadEvents = cmp.Or(p.DeadEvents, DefaultDeadEventsRetention)
	p.EventMetrics = cmp.Or(p.EventMetrics, DefaultEventMetricsRetention)
	p.EndedSessions = cmp.Or(p.EndedSessions, DefaultEndedSessionsRetention)
	p.Audit = cmp.Or(p.Audit, DefaultAuditRetention)
	p.ConnectionMetrics = cmp.Or(p.ConnectionMetrics, DefaultConnectionMetricsRetention)
	p.BatchSize = cmp.Or(p.BatchSize, DefaultRetentionBatchSize)
	p.PartitionsAhead = cmp.Or(p.PartitionsAhead, DefaultPartitionsAhead)
	p.LockTimeout = cmp.Or(p.LockTimeout, DefaultRetentionLockTimeout)
	p.Interval = cmp.Or(p.Interval, DefaultMaintenanceInterval)
	return p
}

// Validate reports every invalid field at once, each with its YAML name and
// value. Call it after WithDefaults.
func (p RetentionPolicy) Validate() error {
	var errs []error
	bad := func(field string, v any, why string) {
		errs = append(errs, fielderr.New(field, v, why))
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"processed_events", p.ProcessedEvents}, {"dead_events", p.DeadEvents},
		{"event_metrics", p.EventMetrics}, {"ended_sessions", p.EndedSessions},
		{"audit", p.Audit}, {"connection_metrics", p.ConnectionMetrics},
	} {
		if f.v < MinRetention {
			bad(f.name, f.v, "must be at least "+MinRetention.String())
		}
	}
	if p.BatchSize < 1 || p.BatchSize > MaxRetentionBatch {
		bad("batch_size", p.BatchSize, fmt.Sprintf("must be between 1 and %d", MaxRetentionBatch))
	}
	if p.PartitionsAhead < 0 || p.PartitionsAhead > MaxPartitionsAhead {
		bad("partitions_ahead", p.PartitionsAhead, fmt.Sprintf("must be between 0 and %d", MaxPartitionsAhead))
	}
	if p.LockTimeout <= 0 || p.LockTimeout > MaxLockTimeout {
		bad("lock_timeout", p.LockTimeout, "must be positive and at most "+MaxLockTimeout.String())
	}
	if p.Interval < MinMaintenance {
		bad("interval", p.Interval, "must be at least "+MinMaintenance.String())
	}
	return errors.Join(errs...)
}

// RetentionReport is what a retention run did, or in a dry run would do. The
// JSON form is what `omnibridge cleanup --json` prints.
type RetentionReport struct {
	DryRun    bool      `json:"dry_run"`
	StartedAt time.Time `json:"started_at"`
	// Duration is the whole run's.
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
	// PartitionsCreated counts the partitions created ahead (0 in a dry run).
	PartitionsCreated int `json:"partitions_created"`
	// RowsDeleted and PartitionsDropped add up the tables.
	RowsDeleted       int64         `json:"rows_deleted"`
	PartitionsDropped int           `json:"partitions_dropped"`
	Tables            []TableReport `json:"tables"`
}

// TableReport is one table's share of a retention run.
type TableReport struct {
	Table string `json:"table"`
	// RowsDeleted counts the rows removed, by batches or with dropped
	// partitions; in a dry run, the rows that would be.
	RowsDeleted int64 `json:"rows_deleted"`
	// PartitionsDropped and DroppedPartitions: the partitions removed whole
	// (in a dry run, that would be).
	PartitionsDropped int      `json:"partitions_dropped"`
	DroppedPartitions []string `json:"dropped_partitions,omitempty"`
	// Batches counts the delete transactions.
	Batches    int           `json:"batches"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
	// Error is why the table's retention stopped early; "" when it did not.
	Error string `json:"error,omitempty"`
}

// RetentionAuditType is the audit event type of a retention run.
const RetentionAuditType = "retention.run"

// RunRetention applies p now. It creates partitions ahead, then for each table
// removes what p lets go: a dated partition whose every row has expired (and,
// for hook_events, that holds no pending or processing event and no unexpired
// dead one) is dropped whole; other expired rows, the DEFAULT partitions' too,
// are deleted BatchSize at a time, each batch its own short transaction, every
// lock wait bounded by LockTimeout. Pending, processing and unexpired dead
// events are never removed; a delivery id goes once its event row is gone (a
// dry run counts those of events that would go as well); audit rows
// go only with whole expired partitions (drop_expired_audit_partitions).
//
// With dryRun it changes nothing and reports what would go. A real run is
// written to the audit log as RetentionAuditType. A table that fails (a lock
// not obtained in time, say) does not stop the others: the report names its
// error, and the returned error joins them all. Concurrent runs are safe, only
// wasteful: the Maintainer makes sure one instance runs at a time.
func (s *Store) RunRetention(ctx context.Context, p RetentionPolicy, dryRun bool) (RetentionReport, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return RetentionReport{}, fmt.Errorf("store: retention policy: %w", err)
	}
	begin := time.Now()
	rep := RetentionReport{DryRun: dryRun, StartedAt: s.now()}
	r, err := s.newRetentionRun(ctx, p, dryRun)
	if err != nil {
		s.logRetentionFailure(ctx, []slog.Attr{slog.Bool("dry_run", dryRun)}, err)
		return rep, err
	}
	var errs []error
	if !dryRun {
		n, err := r.ensurePartitions(ctx)
		rep.PartitionsCreated = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.loadPartitions(ctx); err != nil {
		err = fmt.Errorf("store: retention: %w", errors.Join(append(errs, err)...))
		s.logRetentionFailure(ctx, []slog.Attr{slog.Bool("dry_run", dryRun)}, err)
		return rep, err
	}
	for _, t := range r.tables() {
		tr := TableReport{Table: t.name}
		tbegin := time.Now()
		if err := t.run(ctx, &tr); err != nil {
			tr.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
		}
		tr.Duration = time.Since(tbegin)
		tr.DurationMS = durationMS(tr.Duration)
		rep.RowsDeleted += tr.RowsDeleted
		rep.PartitionsDropped += tr.PartitionsDropped
		rep.Tables = append(rep.Tables, tr)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Duration = time.Since(begin)
	rep.DurationMS = durationMS(rep.Duration)
	err = errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("store: retention: %w", err)
	}
	attrs := []slog.Attr{slog.Bool("dry_run", dryRun),
		slog.Int64("rows_deleted", rep.RowsDeleted), slog.Int("partitions_dropped", rep.PartitionsDropped),
		slog.Int("partitions_created", rep.PartitionsCreated), slog.Duration("duration", rep.Duration)}
	if err != nil {
		s.logRetentionFailure(ctx, attrs, err)
	} else {
		s.log.LogAttrs(ctx, slog.LevelInfo, "store: retention run", attrs...)
	}
	if !dryRun {
		if aerr := s.auditRetention(ctx, rep, err); aerr != nil {
			err = errors.Join(err, aerr)
		}
	}
	return rep, err
}

// logRetentionFailure logs a failed run once, wherever it stopped: at WARN,
// or at INFO when ctx ended it (a shutdown, or a maintainer that lost its
// lock connection and says so itself).
func (s *Store) logRetentionFailure(ctx context.Context, attrs []slog.Attr, err error) {
	level, msg := slog.LevelWarn, "store: retention run failed"
	if ctx.Err() != nil {
		level, msg = slog.LevelInfo, "store: retention run cancelled"
	}
	s.log.LogAttrs(context.WithoutCancel(ctx), level, msg, append(attrs, slog.Any("err", err))...)
}

// auditRetention writes a run to the audit log: totals and per-table counts.
func (s *Store) auditRetention(ctx context.Context, rep RetentionReport, runErr error) error {
	tables := make(map[string]any, len(rep.Tables))
	for _, t := range rep.Tables {
		tables[t.Table] = map[string]any{
			"rows_deleted": t.RowsDeleted, "partitions_dropped": t.PartitionsDropped, "batches": t.Batches,
		}
	}
	ev := AuditEvent{
		Type:    RetentionAuditType,
		Success: runErr == nil,
		ClientInfo: map[string]any{
			"rows_deleted": rep.RowsDeleted, "partitions_dropped": rep.PartitionsDropped,
			"partitions_created": rep.PartitionsCreated, "duration_ms": rep.DurationMS, "tables": tables,
		},
	}
	if runErr != nil {
		ev.ErrorDetails = runErr.Error()
	}
	// The run's own context may have ended (shutdown); the record still goes.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.AppendAudit(actx, ev)
}
