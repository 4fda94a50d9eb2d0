package hookreceiver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// TestWriterAnswersWhatCommittedBeforeAFailure: a batch's insert commits
// before the lookup of its duplicates; when the lookup fails, the events the
// insert stored are answered as stored, not 503 — an event without a
// delivery id would be stored a second time by its sender's retry.
func TestWriterAnswersWhatCommittedBeforeAFailure(t *testing.T) {
	t.Parallel()
	wb := startWritersOn(t, BatchConfig{MaxSize: 8, Writers: 1}, 4, func(db store.DB) store.DB {
		return testdb.FailingQueries{DB: db, Match: "JOIN unnest"} // the delivery lookup
	})
	ctx := context.Background()
	_, _, err := store.New(wb.pool).InsertEvent(ctx, writerEvent("w-earlier"))
	require.NoError(t, err)

	// Hold the writer on a first event, so that the two below share a batch.
	release := wb.hold(t)
	plainP := wb.submit(t, writerEvent("")) // no delivery id
	repeatP := wb.submit(t, writerEvent("w-earlier"))
	release()

	stored, repeat := <-plainP.done, <-repeatP.done
	require.Nil(t, stored.err, "stored before the failure: answered as stored")
	require.False(t, stored.res.Duplicate)
	require.NotNil(t, repeat.err, "its lookup failed")
	require.Equal(t, kindUnavailable, repeat.err.kind)

	var n int
	require.NoError(t, wb.pool.QueryRow(ctx,
		`SELECT count(*) FROM omnibridge.hook_events WHERE delivery_id IS NULL AND id = $1`, stored.res.ID).Scan(&n))
	require.Equal(t, 1, n)
}
