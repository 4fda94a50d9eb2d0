package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// seedEvents inserts n pending events and returns their ids in input order.
func (b *eventsBundle) seedEvents(t testing.TB, n int) []uuid.UUID {
	t.Helper()
	batch := make([]store.NewEvent, n)
	for i := range batch {
		batch[i] = newEvent(i)
	}
	res, err := b.store.InsertEvents(testCtx(t), batch)
	require.NoError(t, err)
	ids := make([]uuid.UUID, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

// makeDue makes every pending event claimable now, as if its backoff passed.
func (b *eventsBundle) makeDue(t testing.TB) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(),
		`UPDATE omnibridge.hook_events SET next_attempt_at = now() - interval '1 millisecond' WHERE status = 'pending'`)
	require.NoError(t, err)
}

func TestClaimCompleteRecordsMetrics(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	ids := b.seedEvents(t, 5)

	claimed, claimID, err := b.store.Claim(ctx, 3)
	require.NoError(t, err)
	require.Len(t, claimed, 3)
	require.NotEqual(t, uuid.Nil, claimID)
	for _, e := range claimed {
		require.Equal(t, store.EventProcessing, e.Status)
		require.Equal(t, claimID, e.ClaimID)
		require.NotNil(t, e.ClaimedAt)
		require.Zero(t, e.RetryCount)
		require.Equal(t, 1, e.Attempt())
	}
	// Oldest due first: the batch shares next_attempt_at, so insertion order.
	require.ElementsMatch(t, ids[:3], []uuid.UUID{claimed[0].ID, claimed[1].ID, claimed[2].ID})

	done := make([]store.Completion, len(claimed))
	for i, e := range claimed {
		done[i] = store.Completion{ID: e.ID, CreatedAt: e.CreatedAt, ProcessingTimeMS: float64(10 * (i + 1))}
	}
	n, err := b.store.Complete(ctx, claimID, done)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	for _, e := range claimed {
		got, err := b.store.GetEvent(ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, store.EventProcessed, got.Status)
		require.True(t, got.Processed)
		require.NotNil(t, got.ProcessedAt)
	}
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM omnibridge.event_metrics
		WHERE kafka_publish_success AND error_message IS NULL AND processing_time_ms IN (10, 20, 30)`))

	// Completing again changes nothing: the events are no longer processing.
	n, err = b.store.Complete(ctx, claimID, done)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM omnibridge.event_metrics`))

	// The rest, completed by id only.
	rest, claimID2, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, rest, 2)
	n, err = b.store.Complete(ctx, claimID2, []store.Completion{{ID: rest[0].ID}, {ID: rest[1].ID, ProcessingTimeMS: 1.5}})
	require.NoError(t, err)
	require.Equal(t, 2, n)

	none, _, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = b.store.Complete(ctx, claimID2, []store.Completion{{ID: rest[0].ID, ProcessingTimeMS: -1}})
	require.Error(t, err)
	_, _, err = b.store.Claim(ctx, 0)
	require.Error(t, err)
}

func TestClaimConcurrentClaimersTakeEachEventOnce(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	const events, claimers = 600, 8
	ids := b.seedEvents(t, events)

	var mu sync.Mutex
	seen := make(map[uuid.UUID]int)
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for range claimers {
		wg.Go(func() {
			for {
				got, claimID, err := b.store.Claim(ctx, 7)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				done := make([]store.Completion, len(got))
				mu.Lock()
				for i, e := range got {
					seen[e.ID]++
					done[i] = store.Completion{ID: e.ID, CreatedAt: e.CreatedAt}
				}
				mu.Unlock()
				if n, err := b.store.Complete(ctx, claimID, done); err != nil || n != len(done) {
					errs <- fmt.Errorf("complete: %d of %d: %v", n, len(done), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, events, "every event was claimed")
	for _, id := range ids {
		require.Equal(t, 1, seen[id], "event %s claimed once", id)
	}
	require.Equal(t, events, b.count(t, `SELECT count(*) FROM omnibridge.hook_events WHERE status = 'processed'`))
	require.Equal(t, events, b.count(t, `SELECT count(*) FROM omnibridge.event_metrics`))
}

func TestReclaimExpiredLease(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	b.seedEvents(t, 3)

	old, oldClaim, err := b.store.Claim(ctx, 2)
	require.NoError(t, err)
	require.Len(t, old, 2)
	fresh, freshClaim, err := b.store.Claim(ctx, 1)
	require.NoError(t, err)
	require.Len(t, fresh, 1)

	// Nothing is older than the lease yet.
	n, err := b.store.ReclaimExpired(ctx, time.Hour)
	require.NoError(t, err)
	require.Zero(t, n)

	// The old holder hangs for two hours.
	_, err = b.pool.Exec(ctx, `UPDATE omnibridge.hook_events SET claimed_at = claimed_at - interval '2 hours' WHERE claim_id = $1`, oldClaim)
	require.NoError(t, err)
	n, err = b.store.ReclaimExpired(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	for _, e := range old {
		got, err := b.store.GetEvent(ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, store.EventPending, got.Status)
		require.Zero(t, got.RetryCount, "a reclaim does not spend an attempt")
		require.Nil(t, got.ClaimedAt)
		require.Len(t, got.ProcessingErrors, 1)
		require.Contains(t, got.ProcessingErrors[0], "lease expired")
		require.Contains(t, got.ProcessingErrors[0], oldClaim.String())
	}

	// Someone else claims them; the old holder can no longer touch them.
	again, newClaim, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, again, 2)
	done := []store.Completion{{ID: old[0].ID, CreatedAt: old[0].CreatedAt}, {ID: old[1].ID, CreatedAt: old[1].CreatedAt}}
	n, err = b.store.Complete(ctx, oldClaim, done)
	require.NoError(t, err)
	require.Zero(t, n, "the old claim completes nothing")
	failed, err := b.store.Fail(ctx, oldClaim, []store.Failure{{ID: old[0].ID, Err: "late"}}, store.RetryPolicy{})
	require.NoError(t, err)
	require.Empty(t, failed)
	n, err = b.store.Release(ctx, oldClaim)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, b.count(t, `SELECT count(*) FROM omnibridge.event_metrics`))

	n, err = b.store.Complete(ctx, newClaim, done)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	// The unexpired claim was left alone.
	n, err = b.store.Complete(ctx, freshClaim, []store.Completion{{ID: fresh[0].ID}})
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, err = b.store.ReclaimExpired(ctx, 0)
	require.Error(t, err)
}

func TestFailBackoffScheduleAndDeadLetter(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	b.seedEvents(t, 1)

	policy := store.RetryPolicy{BaseDelay: time.Second, MaxDelay: 5 * time.Second, MaxAttempts: 5, Jitter: store.NoJitter}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second}
	var id, claimID uuid.UUID
	for attempt := 1; attempt <= 5; attempt++ {
		b.makeDue(t)
		claimed, cid, err := b.store.Claim(ctx, 10)
		claimID = cid
		require.NoError(t, err)
		require.Len(t, claimed, 1, "attempt %d", attempt)
		id = claimed[0].ID
		require.Equal(t, attempt, claimed[0].Attempt())

		var before time.Time
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT now()`).Scan(&before))
		res, err := b.store.Fail(ctx, claimID, []store.Failure{{ID: id, Err: fmt.Sprintf("broker said no #%d", attempt), ProcessingTimeMS: 2}}, policy)
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.Equal(t, id, res[0].ID)
		require.Equal(t, attempt, res[0].Attempt)
		if attempt < 5 {
			require.False(t, res[0].Dead)
			require.Equal(t, want[attempt-1], res[0].Delay, "attempt %d", attempt)
			require.Equal(t, want[attempt-1], policy.Delay(attempt, 0.3))
			require.False(t, res[0].NextAttemptAt.Before(before.Add(res[0].Delay)))
			none, _, err := b.store.Claim(ctx, 10)
			require.NoError(t, err)
			require.Empty(t, none, "not claimable before its backoff")
			dead, err := b.store.DeadBy(ctx, claimID, []uuid.UUID{id})
			require.NoError(t, err)
			require.Empty(t, dead, "pending again, not dead")
		} else {
			require.True(t, res[0].Dead)
			require.Zero(t, res[0].Delay)
		}
	}
	got, err := b.store.GetEvent(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.EventDead, got.Status)
	require.Equal(t, 5, got.RetryCount)
	require.Nil(t, got.ClaimedAt)
	require.Equal(t, claimID, got.ClaimID, "a dead event keeps the claim of its last attempt")
	require.Len(t, got.ProcessingErrors, 5)
	require.Contains(t, got.ProcessingErrors[0], "attempt 1: broker said no #1")
	require.Contains(t, got.ProcessingErrors[4], "attempt 5: broker said no #5")
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM omnibridge.event_metrics
		WHERE NOT kafka_publish_success AND error_message LIKE 'broker said no #%' AND processing_time_ms = 2`))

	dead, err := b.store.DeadLetters(ctx, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, id, dead[0].ID)

	// A retry of the last Fail, whose reply was lost, finds the event gone
	// from the claim, and DeadBy tells it that its earlier try made it dead.
	res, err := b.store.Fail(ctx, claimID, []store.Failure{{ID: id, Err: "broker said no #5", ProcessingTimeMS: 2}}, policy)
	require.NoError(t, err)
	require.Empty(t, res)
	byClaim, err := b.store.DeadBy(ctx, claimID, []uuid.UUID{id, uuid.New()})
	require.NoError(t, err)
	require.Len(t, byClaim, 1)
	require.Equal(t, store.FailResult{ID: id, Attempt: 5, Dead: true, NextAttemptAt: got.NextAttemptAt}, byClaim[0])
	byClaim, err = b.store.DeadBy(ctx, uuid.New(), []uuid.UUID{id})
	require.NoError(t, err)
	require.Empty(t, byClaim, "another claim's")

	// A dead event is not claimed again.
	b.makeDue(t)
	none, _, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestFailJitterIsReproducibleAndErrorsBounded(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	b.seedEvents(t, 3)

	// The same seed gives the same delays as RetryPolicy.Delay.
	draws := newSeededDraws(42)
	expect := newSeededDraws(42)
	policy := store.RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Hour, MaxAttempts: 15, Rand: draws}
	long := strings.Repeat("x", 3000) + "\x00\xff"
	for attempt := 1; attempt <= 12; attempt++ {
		b.makeDue(t)
		claimed, claimID, err := b.store.Claim(ctx, 10)
		require.NoError(t, err)
		require.Len(t, claimed, 3)
		failures := make([]store.Failure, len(claimed))
		for i, e := range claimed {
			failures[i] = store.Failure{ID: e.ID, Err: fmt.Sprintf("e%d %s", attempt, long)}
		}
		res, err := b.store.Fail(ctx, claimID, failures, policy)
		require.NoError(t, err)
		require.Len(t, res, 3)
		// Draws are taken in input order; results come in any order.
		wantByID := map[uuid.UUID]time.Duration{}
		for _, f := range failures {
			wantByID[f.ID] = policy.Delay(attempt, expect())
		}
		for _, r := range res {
			require.Equal(t, wantByID[r.ID], r.Delay, "attempt %d", attempt)
			require.LessOrEqual(t, r.Delay, policy.Backoff(attempt))
		}
	}
	got, err := b.store.GetEvent(ctx, mustFirstID(t, b))
	require.NoError(t, err)
	require.Equal(t, 12, got.RetryCount)
	require.Equal(t, store.EventPending, got.Status)
	require.Len(t, got.ProcessingErrors, store.MaxProcessingErrors, "only the last errors are kept")
	require.Contains(t, got.ProcessingErrors[0], "attempt 3: e3 ")
	require.Contains(t, got.ProcessingErrors[9], "attempt 12: e12 ")
	for _, msg := range got.ProcessingErrors {
		require.LessOrEqual(t, len(msg), store.MaxErrorBytes+64, "message cut to MaxErrorBytes plus its prefix")
		require.True(t, strings.HasSuffix(msg, "…"))
	}
}

func mustFirstID(t testing.TB, b *eventsBundle) uuid.UUID {
	var id uuid.UUID
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT id FROM omnibridge.hook_events ORDER BY id LIMIT 1`).Scan(&id))
	return id
}

func TestRetryPolicySchedule(t *testing.T) {
	t.Parallel()
	p := store.RetryPolicy{}.WithDefaults()
	require.NoError(t, p.Validate())
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600}
	for i, w := range want {
		require.Equal(t, w*time.Second, p.Backoff(i+1), "attempt %d", i+1)
	}
	require.Equal(t, 10*time.Minute, p.Backoff(1000))
	require.Equal(t, time.Second, p.Backoff(0))

	require.Equal(t, 2*time.Second-time.Microsecond, p.Delay(2, 0.999999999), "full jitter stays below the backoff")
	require.Equal(t, time.Duration(0), p.Delay(2, 0))
	require.Equal(t, time.Second, p.Delay(2, 0.5))
	eq := store.RetryPolicy{Jitter: store.EqualJitter}
	require.Equal(t, time.Second, eq.Delay(2, 0))
	require.Equal(t, 1500*time.Millisecond, eq.Delay(2, 0.5))
	none := store.RetryPolicy{Jitter: store.NoJitter}
	require.Equal(t, 4*time.Second, none.Delay(3, 0.1))

	bad := store.RetryPolicy{BaseDelay: -1, MaxDelay: -2, MaxAttempts: -1, Jitter: 7}
	err := bad.Validate()
	require.Error(t, err)
	for _, field := range []string{"BaseDelay", "MaxDelay", "MaxAttempts", "Jitter"} {
		require.Contains(t, err.Error(), field)
	}
}

func TestReleaseKeepsAttempts(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	b.seedEvents(t, 3)

	claimed, claimID, err := b.store.Claim(ctx, 3)
	require.NoError(t, err)
	require.Len(t, claimed, 3)
	n, err := b.store.Release(ctx, claimID, claimed[0].ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err := b.store.GetEvent(ctx, claimed[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.EventPending, got.Status)
	require.Zero(t, got.RetryCount)
	require.Equal(t, claimed[0].NextAttemptAt, got.NextAttemptAt, "keeps its place in the queue")

	n, err = b.store.Release(ctx, claimID)
	require.NoError(t, err)
	require.Equal(t, 2, n, "no ids releases the rest of the claim")
	again, _, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, again, 3)
	require.Equal(t, 1, again[0].Attempt())
}

func TestReplayDeadAndProcessed(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	b.seedEvents(t, 3)

	claimed, claimID, err := b.store.Claim(ctx, 3)
	require.NoError(t, err)
	deadID, processedID, pendingID := claimed[0].ID, claimed[1].ID, claimed[2].ID
	_, err = b.store.Fail(ctx, claimID, []store.Failure{{ID: deadID, Err: "poison"}}, store.RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	_, err = b.store.Complete(ctx, claimID, []store.Completion{{ID: processedID}})
	require.NoError(t, err)
	_, err = b.store.Release(ctx, claimID, pendingID)
	require.NoError(t, err)

	n, err := b.store.Replay(ctx, deadID, processedID, pendingID, uuid.Must(uuid.NewV7()))
	require.NoError(t, err)
	require.Equal(t, 2, n, "only dead and processed events are replayed")

	dead, err := b.store.GetEvent(ctx, deadID)
	require.NoError(t, err)
	require.Equal(t, store.EventPending, dead.Status)
	require.Zero(t, dead.RetryCount)
	require.Len(t, dead.ProcessingErrors, 2, "the history stays")
	require.Contains(t, dead.ProcessingErrors[0], "poison")
	require.Contains(t, dead.ProcessingErrors[1], "replayed from dead")
	processed, err := b.store.GetEvent(ctx, processedID)
	require.NoError(t, err)
	require.Equal(t, store.EventPending, processed.Status)
	require.Nil(t, processed.ProcessedAt)

	again, _, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, again, 3)
	n, err = b.store.Replay(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestClaimUsesClaimableIndex(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	// Mostly processed history and a small pending backlog, as in production.
	_, err := b.pool.Exec(ctx, `
INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, status, processed_at, created_at)
SELECT gen_random_uuid(), 'github', 'push', 'repository', i::text, '{}',
       CASE WHEN i % 100 = 0 THEN 'pending' ELSE 'processed' END,
       CASE WHEN i % 100 = 0 THEN NULL ELSE now() END,
       now() - (i % 3) * interval '1 day'
FROM generate_series(1, 30000) AS i;
ANALYZE omnibridge.hook_events`)
	require.NoError(t, err)

	var plan strings.Builder
	rows, err := b.pool.Query(ctx, `EXPLAIN `+store.ClaimDueSQLForTest, 100)
	require.NoError(t, err)
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan.WriteString(line + "\n")
	}
	require.NoError(t, rows.Err())
	require.Contains(t, plan.String(), "next_attempt_at_idx", plan.String())
	require.NotContains(t, plan.String(), "Seq Scan", plan.String())

	// Runs and claims only the pending backlog.
	claimed, _, err := b.store.Claim(ctx, 1000)
	require.NoError(t, err)
	require.Len(t, claimed, 300)
}

// newSeededDraws returns a reproducible source of numbers in [0, 1).
func newSeededDraws(seed uint64) func() float64 {
	var mu sync.Mutex
	state := seed
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		// splitmix64
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		return float64(z>>11) / (1 << 53)
	}
}
