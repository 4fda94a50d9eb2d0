package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// TestRetentionKeepsEventDeadAfterLateLastAttempt: an event that waited longer
// than the dead-event retention (a backlog, an outage) and then fails its last
// attempt is kept for the whole retention after that attempt, both in a dated
// partition (which must not be dropped) and in the DEFAULT partition (where
// its row must not be deleted).
func TestRetentionKeepsEventDeadAfterLateLastAttempt(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	s := &retentionSeed{b: b, t: t}
	s.partition("hook_events", 40*day)

	// Received and due 40 days ago (dated partition) and 60 days ago (no
	// partition: DEFAULT), never attempted until now.
	ages := []time.Duration{40 * day, 60 * day}
	var ids []uuid.UUID
	for _, ago := range ages {
		ids = append(ids, s.event("pending", ago, ago, "late"))
	}

	claimed, claimID, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, claimed, len(ids))
	failures := make([]store.Failure, len(claimed))
	for i, e := range claimed {
		failures[i] = store.Failure{ID: e.ID, Err: "broker said no"}
	}
	var before time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT now()`).Scan(&before))
	res, err := b.store.Fail(ctx, claimID, failures, store.RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	require.Len(t, res, len(ids))
	for _, r := range res {
		require.True(t, r.Dead)
	}

	rep, err := b.store.RunRetention(ctx, store.RetentionPolicy{}, false)
	require.NoError(t, err)
	for i, id := range ids {
		got, err := b.store.GetEvent(ctx, id)
		require.NoError(t, err, "the event received %d days ago, dead just now, is kept", ages[i]/day)
		require.Equal(t, store.EventDead, got.Status)
		require.False(t, got.NextAttemptAt.Before(before), "a dead event's next_attempt_at is its last attempt")
	}
	require.Zero(t, rep.Tables[0].RowsDeleted, "hook_events")
	require.Zero(t, rep.Tables[0].PartitionsDropped, "hook_events")

	// A replay makes it claimable now again, whatever its next_attempt_at was.
	n, err := b.store.Replay(ctx, ids...)
	require.NoError(t, err)
	require.Equal(t, len(ids), n)
	again, _, err := b.store.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, again, len(ids))
}

// TestRetentionKeepsDeliveriesOfEventsItCouldNotRemove: when an expired
// hook_events partition cannot be dropped (a lock held past the lock timeout),
// its events stay, and so must their delivery ids: a redelivery is still a
// duplicate of the stored event. The next run removes both.
func TestRetentionKeepsDeliveriesOfEventsItCouldNotRemove(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	s := &retentionSeed{b: b, t: t}
	s.partition("hook_events", 40*day)
	id := s.event("processed", 40*day, 40*day, "p40") // delivery github/d1
	s.session("ended", 8*day)

	holder, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `LOCK TABLE omnibridge.hook_events IN ACCESS SHARE MODE`)
	require.NoError(t, err)

	rep, err := b.store.RunRetention(ctx, store.RetentionPolicy{LockTimeout: 50 * time.Millisecond}, false)
	require.Error(t, err)
	byTable := map[string]store.TableReport{}
	for _, tr := range rep.Tables {
		byTable[tr.Table] = tr
	}
	require.Contains(t, byTable["hook_events"].Error, "lock timeout")
	require.NoError(t, holder.Rollback(ctx))

	_, err = b.store.GetEvent(ctx, id)
	require.NoError(t, err, "the event is still there")
	got, dup, err := b.store.InsertEvent(ctx, store.NewEvent{Source: "github", Action: "push",
		Resource: "repo", ResourceID: "1", DeliveryID: "d1", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.True(t, dup, "a redelivery is recognised while its event exists")
	require.Equal(t, id, got)

	// The delivery id stays with its event; the other tables ran.
	require.Empty(t, byTable["hook_event_deliveries"].Error)
	require.Zero(t, byTable["hook_event_deliveries"].RowsDeleted)
	require.Equal(t, int64(1), byTable["service_sessions"].RowsDeleted, "the other tables are still done")

	// Once the lock is gone, the event and its delivery id go together.
	rep, err = b.store.RunRetention(ctx, store.RetentionPolicy{}, false)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Tables[0].PartitionsDropped)
	require.Equal(t, int64(1), rep.Tables[1].RowsDeleted, "hook_event_deliveries")
	require.Zero(t, b.scalar(t, `SELECT count(*) FROM omnibridge.hook_event_deliveries`))
}

// TestRetentionKeepsDeliveryOfEventStillThere: the deliveries step runs after
// the events step, and an event may expire between the two (processed just
// then) or stay behind after it. A delivery id goes only once its event row is
// gone, so a redelivery in between is still a duplicate; a dry run, which
// removes no event, counts the delivery ids of the events that would go.
func TestRetentionKeepsDeliveryOfEventStillThere(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	s := &retentionSeed{b: b, t: t}
	s.partition("hook_events", 40*day)
	id := s.event("processed", 40*day, 40*day, "late") // delivery github/d1

	const cutoff = `now() - interval '30 days'`
	deleteBatch := `SELECT deleted FROM omnibridge.retention_delete_batch(
		'omnibridge.hook_event_deliveries', ` + cutoff + `, ` + cutoff + `, NULL, 100)`
	require.Equal(t, int64(1), b.scalar(t, `SELECT omnibridge.retention_count(
		'omnibridge.hook_event_deliveries', `+cutoff+`, `+cutoff+`)`), "a dry run counts it")
	require.Zero(t, b.scalar(t, deleteBatch), "the event is still there")
	got, dup, err := b.store.InsertEvent(opsCtx(t), store.NewEvent{Source: "github", Action: "push",
		Resource: "repo", ResourceID: "1", DeliveryID: "d1", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.True(t, dup, "a redelivery is recognised while its event exists")
	require.Equal(t, id, got)

	b.exec(t, `DELETE FROM omnibridge.hook_events WHERE id = $1`, id)
	require.Equal(t, int64(1), b.scalar(t, deleteBatch), "gone with its event")
}
