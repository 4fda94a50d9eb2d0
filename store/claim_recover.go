package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// reclaimSQL gives expired claims back. SKIP LOCKED leaves alone the rows
// their holder is completing or failing at this moment: if they are still
// processing afterwards, the next run takes them.
var reclaimSQL = `
WITH expired AS (
    SELECT id, created_at FROM omnibridge.hook_events
    WHERE status = 'processing' AND claimed_at < now() - $1::interval
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE omnibridge.hook_events e
SET status = 'pending', claimed_at = NULL, claim_id = NULL,
    processing_errors = ` + appendErrorSQL("e", `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        || ' attempt ' || (e.retry_count + 1) || ': lease expired (claim ' || e.claim_id
        || ' taken at ' || to_char(e.claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ')'`) + `
FROM expired
WHERE e.id = expired.id AND e.created_at = expired.created_at`

// reclaimBatch bounds the rows one reclaim statement changes, so that its
// transaction stays short however many leases expired at once.
const reclaimBatch = 5000

// ReclaimExpired gives back events whose claim is older than lease (their
// holder crashed or hung): they become pending again, claimable at once, with
// their retry count unchanged and "lease expired" noted in processing_errors.
// The old holder can then no longer complete, fail or release them. It returns
// how many events it reclaimed. lease must be positive.
//
// ADR-016 has no counterpart; DESIGN.md's coordinator runs it as its lease
// reaper.
func (s *Store) ReclaimExpired(ctx context.Context, lease time.Duration) (int, error) {
	if lease <= 0 {
		return 0, fmt.Errorf("store: reclaim expired: lease %v must be positive", lease)
	}
	total := 0
	for {
		tag, err := s.db.Exec(ctx, reclaimSQL, lease, reclaimBatch)
		if err != nil {
			return total, fmt.Errorf("store: reclaim expired: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < reclaimBatch {
			return total, nil
		}
	}
}

var replaySQL = `
UPDATE omnibridge.hook_events e
SET status = 'pending', next_attempt_at = now(), retry_count = 0,
    claimed_at = NULL, claim_id = NULL, processed_at = NULL,
    processing_errors = ` + appendErrorSQL("e", `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        || ' replayed from ' || e.status || ' after ' || e.retry_count || ' failed attempts'`) + `
WHERE e.id = ANY ($1) AND e.status IN ('dead', 'processed')`

// Replay sends dead or processed events through processing again: they become
// pending, claimable now, with a retry count of 0; their error history stays
// (with a note of the replay). Events that are pending or processing, or do
// not exist, are skipped. It returns how many events it replayed.
//
// ADR-016 has no counterpart; `omnibridge events replay` runs it.
func (s *Store) Replay(ctx context.Context, ids ...uuid.UUID) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.db.Exec(ctx, replaySQL, ids)
	if err != nil {
		return 0, fmt.Errorf("store: replay: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
