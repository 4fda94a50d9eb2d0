package store

import (
	"context"
	"fmt"
	"time"
)

// Backlog is the state of the events not yet processed, now: what the
// coordinator's lag and backlog gauges show. The figures are the same as
// PerformanceReport's Pending, Processing, Dead and OldestPendingAge.
type Backlog struct {
	// At is the database's now(), which OldestPendingAge is measured from.
	At time.Time
	// Pending, Processing and Dead count the events in those statuses,
	// whenever they were created.
	Pending    int64
	Processing int64
	Dead       int64
	// OldestPendingAge is how long the oldest pending event has waited since
	// it was created; 0 when nothing is pending.
	OldestPendingAge time.Duration
}

// backlogCountsSQL counts the events not yet processed, by status, and finds
// the oldest pending one: one index-only scan of idx_hook_events_unfinished,
// so its cost grows with the backlog, not with the table. Backlog and
// PerformanceReport share it.
const backlogCountsSQL = `
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'processing') AS processing,
           count(*) FILTER (WHERE status = 'dead') AS dead,
           min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending
    FROM omnibridge.hook_events WHERE status <> 'processed'`

// backlogSQL reads hook_events only, which every role that needs the backlog
// may read (the workflow coordinator may only insert into event_metrics).
const backlogSQL = `SELECT now(), u.pending, u.processing, u.dead, u.oldest_pending FROM (` + backlogCountsSQL + `) u`

// Backlog returns the current backlog: the pending, processing and dead
// events and the age of the oldest pending one, the backlog figures of ADR-016's
// get_performance_metrics without the window's. Unlike PerformanceReport it
// needs SELECT on hook_events only, so the workflow coordinator's role may run
// it.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	var (
		b             Backlog
		oldestPending *time.Time
	)
	err := s.db.QueryRow(ctx, backlogSQL).Scan(&b.At, &b.Pending, &b.Processing, &b.Dead, &oldestPending)
	if err != nil {
		return Backlog{}, fmt.Errorf("store: backlog: %w", err)
	}
	if oldestPending != nil && oldestPending.Before(b.At) {
		b.OldestPendingAge = b.At.Sub(*oldestPending)
	}
	return b, nil
}
