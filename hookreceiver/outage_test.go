package hookreceiver_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/internal/testdb"
)

// The outage tests put the receiver's own database through the faults of a
// restart or a failover without one (TestCrashRecovery restarts a private
// cluster under load): its connections terminated, new ones refused, the
// events table locked past the commit timeout. A sender that retries must
// get its event in exactly once, and every answer before that must be a 503
// that says when to retry.

// requireRetryLater checks an answer that stored nothing: 503 with a code of
// the database's and a Retry-After of whole seconds.
func requireRetryLater(t *testing.T, rep reply) {
	t.Helper()
	require.Equal(t, http.StatusServiceUnavailable, rep.Status, rep.Raw)
	require.Equal(t, hookreceiver.CodeUnavailable, rep.Code, rep.Raw)
	secs, err := strconv.Atoi(rep.RetryAfter)
	require.NoError(t, err, "Retry-After %q", rep.RetryAfter)
	require.GreaterOrEqual(t, secs, 1)
}

// deliverOnce resends an event until it is answered 2xx and then checks that
// one row holds it and that a redelivery is answered as a duplicate.
func deliverOnce(t *testing.T, b *bundle, delivery string) {
	t.Helper()
	tok := bearer(internalToken)
	var first reply
	require.Eventually(t, func() bool {
		first = b.post(t, "internal", envelope(delivery), tok)
		if first.Status != http.StatusServiceUnavailable {
			require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, first.Status, first.Raw)
			return true
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "%s is accepted once the database is back", delivery)
	// The redelivery may still meet a terminated connection the pool had
	// kept (one batch fails on each): the sender retries it too.
	var again reply
	require.Eventually(t, func() bool {
		again = b.post(t, "internal", envelope(delivery), tok)
		if again.Status == http.StatusServiceUnavailable {
			requireRetryLater(t, again)
			return false
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "%s redelivered", delivery)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.True(t, again.Duplicate)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, 1, b.countEvents(t, "internal", delivery))
}

// TestDatabaseGoneIs503AndRecovers: a webhook whose connection was
// terminated under it, or that arrives while the database refuses
// connections, is answered 503 database_unavailable with Retry-After within
// the commit timeout, never a 500 or a 2xx; once the database takes
// connections again the same delivery is stored once.
func TestDatabaseGoneIs503AndRecovers(t *testing.T) {
	t.Parallel()
	const commitTimeout = 2 * time.Second
	b := startBundle(t, func(o *options) {
		o.cfg.CommitTimeout = commitTimeout
		o.cfg.Batch = hookreceiver.BatchConfig{Writers: 1}
	})
	db := testdb.NewOutage(t, b.dbURL)
	tok := bearer(internalToken)
	rep := b.post(t, "internal", envelope("d-out-0"), tok)
	require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)

	// Connections lost while the server is up: the insert that was on one
	// fails (it may have been sent, so it is not sent again); the sender's
	// retry gets a new connection.
	for i := range 3 {
		delivery := "d-term-" + strconv.Itoa(i)
		require.Positive(t, db.Terminate(t, hookreceiver.ServiceName), "the receiver had connections")
		rep = b.post(t, "internal", envelope(delivery), tok)
		t.Logf("%s after its connection was terminated: %d %s", delivery, rep.Status, rep.Code)
		if rep.Status != http.StatusAccepted {
			requireRetryLater(t, rep)
		}
		deliverOnce(t, b, delivery)
	}

	// Every connection gone and new ones refused, as while a server
	// restarts.
	db.AllowConnections(t, false)
	db.Terminate(t, hookreceiver.ServiceName)
	for range 3 {
		start := time.Now()
		rep = b.post(t, "internal", envelope("d-refused"), tok)
		requireRetryLater(t, rep)
		require.Less(t, time.Since(start), commitTimeout+10*time.Second, "answered within the commit timeout")
	}
	require.Zero(t, b.countEvents(t, "internal", "d-refused"))

	db.AllowConnections(t, true)
	deliverOnce(t, b, "d-refused")
}

// TestCommitTimeoutIs503AndRecovers: an insert that waits behind a lock past
// the commit timeout is cancelled and answered 503 with Retry-After; the
// event is not stored behind the sender's back once the lock goes, and its
// redelivery is stored once.
func TestCommitTimeoutIs503AndRecovers(t *testing.T) {
	t.Parallel()
	const commitTimeout = 300 * time.Millisecond
	b := startBundle(t, func(o *options) {
		o.cfg.CommitTimeout = commitTimeout
		o.cfg.Batch = hookreceiver.BatchConfig{Writers: 1}
	})
	ctx := context.Background()
	tx, err := b.db.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Exec(ctx, `LOCK TABLE omnibridge.hook_events, omnibridge.hook_event_deliveries IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	tok := bearer(internalToken)
	start := time.Now()
	rep := b.post(t, "internal", envelope("d-locked"), tok)
	requireRetryLater(t, rep)
	require.Less(t, time.Since(start), commitTimeout+10*time.Second, "answered at the commit timeout")
	// The cancelled insert no longer waits for the lock.
	require.Eventually(t, func() bool {
		var waiting int
		err := b.db.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		return err == nil && waiting == 0
	}, 10*time.Second, 10*time.Millisecond, "the insert was cancelled on the server")
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, b.countEvents(t, "internal", "d-locked"), "nothing stored after a 503")

	deliverOnce(t, b, "d-locked")
}
