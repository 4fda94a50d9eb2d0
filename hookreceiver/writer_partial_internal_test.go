package hookreceiver

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// failingLookups is a store.DB whose delivery lookups (the second statement
// of a batch with duplicates) fail as if the connection dropped.
type failingLookups struct{ store.DB }

func (f failingLookups) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, "JOIN unnest") {
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	}
	return f.DB.Query(ctx, sql, args...)
}

// TestWriterAnswersWhatCommittedBeforeAFailure: a batch's insert commits
// before the lookup of its duplicates; when the lookup fails, the events the
// insert stored are answered as stored, not 503 — an event without a
// delivery id would be stored a second time by its sender's retry.
func TestWriterAnswersWhatCommittedBeforeAFailure(t *testing.T) {
	t.Parallel()
	wb := startWritersOn(t, BatchConfig{MaxSize: 8, Writers: 1}, 4, func(db store.DB) store.DB { return failingLookups{db} })
	ctx := context.Background()
	_, _, err := store.New(wb.pool).InsertEvent(ctx, writerEvent("w-earlier"))
	require.NoError(t, err)

	// Hold the writer on a first event, so that the two below share a batch.
	tx, err := wb.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE omnibridge.hook_event_deliveries IN SHARE MODE`)
	require.NoError(t, err)
	blocker := wb.submit(t, writerEvent("w-blocker"))
	require.Eventually(t, func() bool { return wb.r.committing.Load() == 1 && len(wb.r.queue.ch) == 0 },
		30*time.Second, time.Millisecond)
	plain := writerEvent("") // no delivery id
	plainP := wb.submit(t, plain)
	repeatP := wb.submit(t, writerEvent("w-earlier"))
	require.NoError(t, tx.Rollback(ctx))
	require.Nil(t, (<-blocker.done).err)

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
