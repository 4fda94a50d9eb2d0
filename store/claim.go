package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MaxClaim is the most events one Claim takes.
const MaxClaim = 10000

// claimDueSQL selects and locks due pending events, oldest due first, through
// the partial index idx_hook_events_claimable, skipping rows another claimer
// has locked. Ties of next_attempt_at (a batch inserted in one transaction
// shares it) come in index order, which is insertion order.
const claimDueSQL = `
SELECT id, created_at FROM omnibridge.hook_events
WHERE status = 'pending' AND next_attempt_at <= now()
ORDER BY next_attempt_at
LIMIT $1
FOR UPDATE SKIP LOCKED`

// claimSQL marks the events of claimDueSQL claimed by $2.
var claimSQL = `
WITH due AS (` + claimDueSQL + `
)
UPDATE omnibridge.hook_events e
SET status = 'processing', claimed_at = now(), claim_id = $2
FROM due
WHERE e.id = due.id AND e.created_at = due.created_at
RETURNING ` + hookEventColumnsOf("e")

// Claim takes up to limit due events for processing: pending events whose
// next_attempt_at has come, oldest due first. Each becomes processing, with
// claimed_at now and the returned claim id; its retry count is unchanged, so
// HookEvent.Attempt tells the attempt it is in. Concurrent claimers never get
// the same event (FOR UPDATE SKIP LOCKED): they skip each other's rows instead
// of waiting. Nothing due returns no events and a nil error.
//
// The claim holds the events until Complete, Fail or Release with the same
// claim id, or until ReclaimExpired finds the claim older than the lease. limit
// must be between 1 and MaxClaim.
//
// ADR-016 has no claim; DESIGN.md's WorkflowCoordinator needs it.
func (s *Store) Claim(ctx context.Context, limit int) ([]HookEvent, uuid.UUID, error) {
	if limit < 1 || limit > MaxClaim {
		return nil, uuid.Nil, fmt.Errorf("store: claim: limit %d out of range (1 to %d)", limit, MaxClaim)
	}
	claimID, err := uuid.NewV7()
	if err != nil {
		return nil, uuid.Nil, fmt.Errorf("store: claim: new claim id: %w", err)
	}
	rows, err := s.db.Query(ctx, claimSQL, limit, claimID)
	if err != nil {
		return nil, uuid.Nil, fmt.Errorf("store: claim: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanHookEvent)
	if err != nil {
		return nil, uuid.Nil, fmt.Errorf("store: claim: %w", err)
	}
	// RETURNING has no order.
	slices.SortFunc(events, func(a, b HookEvent) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), a.CreatedAt.Compare(b.CreatedAt),
			slices.Compare(a.ID[:], b.ID[:]))
	})
	return events, claimID, nil
}

// Completion is an event that was published.
type Completion struct {
	ID uuid.UUID
	// CreatedAt is the event's creation time, optional: given for every
	// completion of a call (as Claim returns it), the update goes straight to
	// the event's partition.
	CreatedAt time.Time
	// ProcessingTimeMS is how long the attempt took, recorded in event_metrics.
	ProcessingTimeMS float64
}

const completeSQL = `
WITH done AS (
    SELECT * FROM unnest($2::uuid[], $3::float8[]) AS t(id, ms)
), completed AS (
    UPDATE omnibridge.hook_events e
    SET status = 'processed', processed_at = now()
    FROM done
    WHERE e.id = done.id AND e.status = 'processing' AND e.claim_id = $1
    RETURNING e.id, done.ms
), metrics AS (
    INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success)
    SELECT id, ms, true FROM completed
)
SELECT count(*) FROM completed`

const completeKeyedSQL = `
WITH done AS (
    SELECT * FROM unnest($2::uuid[], $3::float8[], $4::timestamptz[]) AS t(id, ms, created_at)
), completed AS (
    UPDATE omnibridge.hook_events e
    SET status = 'processed', processed_at = now()
    FROM done
    WHERE e.id = done.id AND e.created_at = done.created_at
      AND e.status = 'processing' AND e.claim_id = $1
    RETURNING e.id, done.ms
), metrics AS (
    INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success)
    SELECT id, ms, true FROM completed
)
SELECT count(*) FROM completed`

// Complete marks events of a claim processed (processed_at now) and records an
// event_metrics row for each (kafka_publish_success true, its processing
// time), in one statement and so one transaction. Only events still held by
// claimID change: an event whose lease expired and was reclaimed, and perhaps
// claimed by someone else since, is left alone. It returns how many events it
// completed, which is less than len(done) when some were no longer held.
func (s *Store) Complete(ctx context.Context, claimID uuid.UUID, done []Completion) (int, error) {
	if len(done) == 0 {
		return 0, nil
	}
	ids := make([]uuid.UUID, len(done))
	ms := make([]float64, len(done))
	created := make([]time.Time, len(done))
	keyed := true
	for i, d := range done {
		if err := checkProcessingTime(d.ProcessingTimeMS); err != nil {
			return 0, fmt.Errorf("store: complete %s: %w", d.ID, err)
		}
		ids[i], ms[i], created[i] = d.ID, d.ProcessingTimeMS, d.CreatedAt
		keyed = keyed && !d.CreatedAt.IsZero()
	}
	sql, args := completeSQL, []any{claimID, ids, ms}
	if keyed {
		sql, args = completeKeyedSQL, append(args, created)
	}
	var n int
	if err := s.db.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: complete: %w", err)
	}
	return n, nil
}

// CompletedBy counts the events of done that are processed under claimID.
// Completed events keep the id of the claim that completed them, so after a
// Complete whose reply was lost (it may have committed all the same), a
// retry that completes fewer events than it was given can tell the events
// its earlier try completed from those whose lease had expired. With every
// CreatedAt set, each event is looked up in its own partition only.
func (s *Store) CompletedBy(ctx context.Context, claimID uuid.UUID, done []Completion) (int, error) {
	ids := make([]uuid.UUID, len(done))
	created := make([]time.Time, len(done))
	keyed := true
	for i, d := range done {
		ids[i], created[i] = d.ID, d.CreatedAt
		keyed = keyed && !d.CreatedAt.IsZero()
	}
	sql, args := `
SELECT count(*) FROM omnibridge.hook_events
WHERE id = ANY ($2) AND claim_id = $1 AND status = 'processed'`, []any{claimID, ids}
	if keyed {
		sql, args = `
SELECT count(*) FROM omnibridge.hook_events e
JOIN unnest($2::uuid[], $3::timestamptz[]) AS d(id, created_at) ON e.id = d.id AND e.created_at = d.created_at
WHERE e.claim_id = $1 AND e.status = 'processed'`, append(args, created)
	}
	var n int
	if err := s.db.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: completions of claim %s: %w", claimID, err)
	}
	return n, nil
}

// errBadProcessingTime is wrapped by checkProcessingTime.
var errBadProcessingTime = errors.New("processing time must be a finite number of milliseconds >= 0")

func checkProcessingTime(ms float64) error {
	if math.IsNaN(ms) || math.IsInf(ms, 0) || ms < 0 {
		return fmt.Errorf("%w, got %v", errBadProcessingTime, ms)
	}
	return nil
}

// Release gives events of a claim back without spending an attempt: they
// become pending again with their retry count and next_attempt_at unchanged,
// so they keep their place at the head of the queue. Use it on graceful
// shutdown, or when the broker as a whole is down and the events are not at
// fault. Without ids it releases every event the claim still holds. It returns
// how many events it released; events no longer held by claimID are left alone.
func (s *Store) Release(ctx context.Context, claimID uuid.UUID, ids ...uuid.UUID) (int, error) {
	tag, err := s.db.Exec(ctx, `
UPDATE omnibridge.hook_events
SET status = 'pending', claimed_at = NULL, claim_id = NULL
WHERE status = 'processing' AND claim_id = $1 AND ($2::uuid[] IS NULL OR id = ANY ($2))`,
		claimID, nilIfEmpty(ids))
	if err != nil {
		return 0, fmt.Errorf("store: release: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func nilIfEmpty(ids []uuid.UUID) []uuid.UUID {
	if len(ids) == 0 {
		return nil
	}
	return ids
}
