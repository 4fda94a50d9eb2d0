package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// retentionStatementTimeout bounds one retention statement (a delete batch, a
// count), a safety net behind the batch size.
const retentionStatementTimeout = time.Minute

// lockRetries is how often a statement that could not get its locks within the
// lock timeout is tried again before its table reports the error.
const lockRetries = 3

// retentionRun is one run of RunRetention: the policy's cutoffs, computed once
// from the database clock, and the partitions.
type retentionRun struct {
	s   *Store
	p   RetentionPolicy
	dry bool

	processedCutoff, deadCutoff, metricsCutoff time.Time
	sessionsCutoff, auditCutoff, connCutoff    time.Time

	sessionsRel, deliveriesRel uint32
	parts                      []partitionInfo
}

// partitionInfo is a row of omnibridge.retention_partitions().
type partitionInfo struct {
	oid        uint32
	name       string // relation name, without the schema
	parent     string // the parent's relation name
	start, end *time.Time
}

func (s *Store) newRetentionRun(ctx context.Context, p RetentionPolicy, dry bool) (*retentionRun, error) {
	r := &retentionRun{s: s, p: p, dry: dry}
	var now time.Time
	err := s.db.QueryRow(ctx, `SELECT now(), 'omnibridge.service_sessions'::regclass::oid,
		'omnibridge.hook_event_deliveries'::regclass::oid`).Scan(&now, &r.sessionsRel, &r.deliveriesRel)
	if err != nil {
		return nil, fmt.Errorf("store: retention: %w", err)
	}
	r.processedCutoff = now.Add(-p.ProcessedEvents)
	r.deadCutoff = now.Add(-p.DeadEvents)
	r.metricsCutoff = now.Add(-p.EventMetrics)
	r.sessionsCutoff = now.Add(-p.EndedSessions)
	r.auditCutoff = now.Add(-p.Audit)
	r.connCutoff = now.Add(-p.ConnectionMetrics)
	return r, nil
}

// loadPartitions lists the partitions, oldest first per table, DEFAULT last.
func (r *retentionRun) loadPartitions(ctx context.Context) error {
	rows, err := r.s.db.Query(ctx, `
		SELECT c.oid, c.relname, pc.relname, p.range_start, p.range_end
		FROM omnibridge.retention_partitions() p
		JOIN pg_class c ON c.oid = p.part
		JOIN pg_class pc ON pc.oid = p.parent
		ORDER BY pc.relname, p.range_start NULLS LAST`)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	r.parts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (partitionInfo, error) {
		var pi partitionInfo
		err := row.Scan(&pi.oid, &pi.name, &pi.parent, &pi.start, &pi.end)
		return pi, err
	})
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	return nil
}

func (r *retentionRun) partsOf(parent string) []partitionInfo {
	var out []partitionInfo
	for _, p := range r.parts {
		if p.parent == parent {
			out = append(out, p)
		}
	}
	return out
}

// retentionTable is one table's retention step.
type retentionTable struct {
	name string
	run  func(context.Context, *TableReport) error
}

// tables lists the steps in order: deliveries after the events they guard,
// so that a run removes the delivery ids of the events it removed (a delivery
// id goes only once its event row is gone).
func (r *retentionRun) tables() []retentionTable {
	return []retentionTable{
		{"hook_events", func(ctx context.Context, tr *TableReport) error {
			return r.partitioned(ctx, tr, "hook_events", r.processedCutoff, &r.deadCutoff)
		}},
		{"hook_event_deliveries", func(ctx context.Context, tr *TableReport) error {
			return r.rows(ctx, tr, r.deliveriesRel, r.processedCutoff, &r.deadCutoff)
		}},
		{"event_metrics", func(ctx context.Context, tr *TableReport) error {
			return r.partitioned(ctx, tr, "event_metrics", r.metricsCutoff, nil)
		}},
		{"connection_metrics", func(ctx context.Context, tr *TableReport) error {
			return r.partitioned(ctx, tr, "connection_metrics", r.connCutoff, nil)
		}},
		{"service_sessions", func(ctx context.Context, tr *TableReport) error {
			return r.rows(ctx, tr, r.sessionsRel, r.sessionsCutoff, nil)
		}},
		{"security_audit_log", r.audit},
	}
}

// partitioned applies retention to the partitions of a time-partitioned table:
// drop the dated partitions that may go whole, delete expired rows in the
// others. Partitions that start at or after the cutoffs hold nothing expired
// and are skipped. An error in one partition does not stop the others; a
// partition whose drop failed keeps its rows until the next run.
func (r *retentionRun) partitioned(ctx context.Context, tr *TableReport, parent string, cutoff time.Time, deadCutoff *time.Time) error {
	latest := cutoff
	if deadCutoff != nil && deadCutoff.After(latest) {
		latest = *deadCutoff
	}
	var errs []error
	for _, part := range r.partsOf(parent) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if part.start != nil && !part.start.Before(latest) {
			continue
		}
		if part.end != nil && !part.end.After(cutoff) {
			n, dropped, err := r.drop(ctx, part, cutoff, deadCutoff)
			if err != nil {
				errs = append(errs, fmt.Errorf("partition %s: %w", part.name, err))
				continue
			}
			if dropped {
				tr.RowsDeleted += n
				tr.PartitionsDropped++
				tr.DroppedPartitions = append(tr.DroppedPartitions, part.name)
				continue
			}
		}
		if err := r.rows(ctx, tr, part.oid, cutoff, deadCutoff); err != nil {
			errs = append(errs, fmt.Errorf("partition %s: %w", part.name, err))
		}
	}
	return errors.Join(errs...)
}

// drop drops part when every row in it may go and returns its row count; in a
// dry run it only says whether it would, and how many rows would go.
func (r *retentionRun) drop(ctx context.Context, part partitionInfo, cutoff time.Time, deadCutoff *time.Time) (int64, bool, error) {
	if r.dry {
		var ok bool
		err := r.s.db.QueryRow(ctx, `SELECT omnibridge.retention_partition_droppable($1::oid::regclass, $2, $3)`,
			part.oid, cutoff, deadCutoff).Scan(&ok)
		if err != nil || !ok {
			return 0, false, err
		}
		n, err := r.count(ctx, part.oid, cutoff, deadCutoff)
		return n, err == nil, err
	}
	var n *int64
	err := r.exec(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT omnibridge.retention_drop_partition($1::oid::regclass, $2, $3)`,
			part.oid, cutoff, deadCutoff).Scan(&n)
	})
	if err != nil || n == nil {
		return 0, false, err
	}
	return *n, true, nil
}

// rows deletes the expired rows of one relation in batches, oldest first, each
// batch its own transaction; in a dry run it counts them.
func (r *retentionRun) rows(ctx context.Context, tr *TableReport, rel uint32, cutoff time.Time, deadCutoff *time.Time) error {
	if r.dry {
		n, err := r.count(ctx, rel, cutoff, deadCutoff)
		tr.RowsDeleted += n
		return err
	}
	var after *time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var (
			deleted int64
			last    *time.Time
		)
		err := r.exec(ctx, func(ctx context.Context, tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT deleted, last_key
				FROM omnibridge.retention_delete_batch($1::oid::regclass, $2, $3, $4, $5)`,
				rel, cutoff, deadCutoff, after, r.p.BatchSize).Scan(&deleted, &last)
		})
		if err != nil {
			return err
		}
		if deleted > 0 {
			tr.RowsDeleted += deleted
			tr.Batches++
		}
		if deleted < int64(r.p.BatchSize) || last == nil {
			return nil
		}
		after = last
	}
}

func (r *retentionRun) count(ctx context.Context, rel uint32, cutoff time.Time, deadCutoff *time.Time) (int64, error) {
	var n int64
	err := r.s.db.QueryRow(ctx, `SELECT omnibridge.retention_count($1::oid::regclass, $2, $3)`,
		rel, cutoff, deadCutoff).Scan(&n)
	return n, err
}

// audit removes expired audit partitions through drop_expired_audit_partitions,
// the only way audit rows leave; in a dry run it counts what that would remove.
func (r *retentionRun) audit(ctx context.Context, tr *TableReport) error {
	parts := r.partsOf("security_audit_log")
	if r.dry {
		for _, part := range parts {
			if part.end != nil && part.end.After(r.auditCutoff) {
				continue
			}
			n, err := r.count(ctx, part.oid, r.auditCutoff, nil)
			if err != nil {
				return err
			}
			tr.RowsDeleted += n
			if part.end != nil {
				tr.PartitionsDropped++
				tr.DroppedPartitions = append(tr.DroppedPartitions, part.name)
			}
		}
		return nil
	}
	var n int64
	err := r.exec(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT omnibridge.drop_expired_audit_partitions($1::interval)`, r.p.Audit).Scan(&n)
	})
	if err != nil {
		return err
	}
	tr.RowsDeleted = n
	if err := r.loadPartitions(ctx); err != nil {
		return err
	}
	remaining := r.partsOf("security_audit_log")
	for _, part := range parts {
		if !slices.ContainsFunc(remaining, func(p partitionInfo) bool { return p.oid == part.oid }) {
			tr.PartitionsDropped++
			tr.DroppedPartitions = append(tr.DroppedPartitions, part.name)
		}
	}
	return nil
}

// ensurePartitions creates the partitions of the coming PartitionsAhead days.
func (r *retentionRun) ensurePartitions(ctx context.Context) (int, error) {
	var n int
	err := r.exec(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT omnibridge.ensure_partitions($1)`, r.p.PartitionsAhead).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("ensure partitions: %w", err)
	}
	return n, nil
}

// exec runs fn in a short transaction whose lock waits are bounded by the
// policy's LockTimeout and whose statements by retentionStatementTimeout. A
// transaction that could not get its locks in time (or lost a deadlock) is
// tried again, up to lockRetries times, after a pause of one lock timeout.
func (r *retentionRun) exec(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	lockTimeout := strconv.FormatInt(max(r.p.LockTimeout.Milliseconds(), 1), 10)
	stmtTimeout := strconv.FormatInt(retentionStatementTimeout.Milliseconds(), 10)
	var err error
	for attempt := 1; ; attempt++ {
		err = r.s.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
				lockTimeout, stmtTimeout); err != nil {
				return err
			}
			return fn(ctx, tx)
		})
		if err == nil || attempt > lockRetries || !lockContended(err) {
			return err
		}
		t := time.NewTimer(r.p.LockTimeout)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// lockContended reports a lock wait that timed out or a lost deadlock.
func lockContended(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01")
}
