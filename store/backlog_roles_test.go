package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestBacklogUnderCoordinatorRole runs, as workflow_coordinator, the call the
// coordinator's lag loop makes, and checks its figures against the owner's
// performance report. The full report stays out of the coordinator's reach: it
// reads event_metrics, which the coordinator may only insert into.
func TestBacklogUnderCoordinatorRole(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	coord, _ := storeAs(t, b, "workflow_coordinator")

	empty, err := coord.Backlog(ctx)
	require.NoError(t, err)
	require.Zero(t, empty.Pending+empty.Processing+empty.Dead)
	require.Zero(t, empty.OldestPendingAge)
	require.False(t, empty.At.IsZero())

	seed := func(n int, status string, age time.Duration) {
		b.exec(t, seedEventsSQL, n, status, age, time.Minute)
	}
	seed(2, "pending", 30*time.Minute)
	seed(1, "pending", 2*time.Hour)
	seed(1, "pending", -time.Hour) // created in the future (clock skew): no negative age
	seed(2, "processing", 15*time.Minute)
	seed(1, "dead", 5*time.Hour)
	seed(3, "processed", time.Hour)

	got, err := coord.Backlog(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(4), got.Pending)
	require.Equal(t, int64(2), got.Processing)
	require.Equal(t, int64(1), got.Dead)
	require.InDelta(t, (2 * time.Hour).Seconds(), got.OldestPendingAge.Seconds(), 1)

	want, err := b.store.PerformanceReport(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, []int64{want.Pending, want.Processing, want.Dead}, []int64{got.Pending, got.Processing, got.Dead},
		"the backlog figures of the performance report")
	require.InDelta(t, want.OldestPendingAge.Seconds(), got.OldestPendingAge.Seconds(), 1)

	_, err = coord.PerformanceReport(ctx, time.Second)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "42501", pgErr.Code, "the coordinator may not read event_metrics")
}
