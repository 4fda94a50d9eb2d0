package store_test

import (
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// TestInsertEventsReportsWhatCommittedBeforeAFailure: the insert statement of
// a batch commits before the lookup of its duplicates; when that lookup
// fails, the error says which events are stored, so that the caller does not
// report them as not stored (a sender would then store them again).
func TestInsertEventsReportsWhatCommittedBeforeAFailure(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	delivered := func(i int, delivery string) store.NewEvent {
		e := newEvent(i)
		e.DeliveryID = delivery
		return e
	}
	first, dup, err := b.store.InsertEvent(ctx, delivered(1, "d-1"))
	require.NoError(t, err)
	require.False(t, dup)

	plain := newEvent(2)         // no delivery id: never deduplicated, a second try would store it again
	again := delivered(1, "d-1") // the delivery stored above
	withDelivery := delivered(3, "d-3")
	inBatchRepeat := delivered(3, "d-3")
	flaky := store.New(testdb.FailingQueries{DB: b.client, Match: "JOIN unnest"}) // the delivery lookup
	_, err = flaky.InsertEvents(ctx, []store.NewEvent{plain, again, withDelivery, inBatchRepeat})
	var pe *store.PartialInsertError
	require.ErrorAs(t, err, &pe)
	var opErr *net.OpError
	require.ErrorAs(t, err, &opErr, "the cause stays visible")
	require.Equal(t, []bool{true, false, true, true}, pe.Done)
	require.False(t, pe.Results[0].Duplicate)
	require.False(t, pe.Results[2].Duplicate)
	require.Equal(t, store.InsertResult{ID: pe.Results[2].ID, Duplicate: true}, pe.Results[3])
	for _, i := range []int{0, 2} {
		stored, err := b.store.GetEvent(ctx, pe.Results[i].ID)
		require.NoError(t, err, "event %d is stored under the reported id", i)
		require.Equal(t, []store.NewEvent{plain, again, withDelivery}[i].ResourceID, stored.ResourceID)
	}
	require.Equal(t, 3, b.eventCount(t))

	// Sent again, the not-done event is found to be a duplicate.
	res, err := b.store.InsertEvents(ctx, []store.NewEvent{again})
	require.NoError(t, err)
	require.Equal(t, []store.InsertResult{{ID: first, Duplicate: true}}, res)

	// A failure before anything committed is returned as it is.
	_, err = flaky.InsertEvents(ctx, []store.NewEvent{again, delivered(1, "d-1")})
	require.ErrorAs(t, err, &opErr)
	require.False(t, errors.As(err, &pe), "nothing was stored: %v", err)
}
