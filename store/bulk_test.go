package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestBulkInsertAnyTableBothMethods(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	_, err := b.pool.Exec(ctx, `CREATE TABLE public.bulk_target (
		id bigint PRIMARY KEY, name text NOT NULL, score float8, tags text[], doc jsonb, at timestamptz)`)
	require.NoError(t, err)
	table := pgx.Identifier{"public", "bulk_target"}
	columns := []string{"id", "name", "score", "tags", "doc", "at"}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	rowsFrom := func(from, n int) [][]any {
		rows := make([][]any, n)
		for i := range rows {
			id := from + i
			var score any = float64(id) / 2
			if id%5 == 0 {
				score = nil
			}
			rows[i] = []any{int64(id), fmt.Sprintf("name %d", id), score, []string{"a", fmt.Sprint(id)},
				json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)), at.Add(time.Duration(id) * time.Second)}
		}
		return rows
	}

	opts := store.BulkOptions{}
	small, large := store.DefaultCopyThreshold-1, store.DefaultCopyThreshold*4
	require.Equal(t, store.BulkValues, opts.Method(small))
	require.Equal(t, store.BulkCopy, opts.Method(store.DefaultCopyThreshold))
	require.Equal(t, store.BulkCopy, opts.Method(large))

	n, err := b.store.BulkInsert(ctx, table, columns, rowsFrom(0, small))
	require.NoError(t, err)
	require.EqualValues(t, small, n)
	n, err = b.store.BulkInsert(ctx, table, columns, rowsFrom(small, large))
	require.NoError(t, err)
	require.EqualValues(t, large, n)
	require.Equal(t, small+large, b.count(t, `SELECT count(*) FROM public.bulk_target`))

	// Values arrive intact whichever way they were sent.
	copied := small + 1
	if copied%5 == 0 {
		copied++
	}
	for _, id := range []int{3, copied} {
		var name string
		var score *float64
		var tags []string
		var doc json.RawMessage
		var gotAt time.Time
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT name, score, tags, doc, at FROM public.bulk_target WHERE id = $1`, id).
			Scan(&name, &score, &tags, &doc, &gotAt))
		require.Equal(t, fmt.Sprintf("name %d", id), name)
		require.NotNil(t, score)
		require.InDelta(t, float64(id)/2, *score, 0)
		require.Equal(t, []string{"a", fmt.Sprint(id)}, tags)
		require.JSONEq(t, fmt.Sprintf(`{"id":%d}`, id), string(doc))
		require.True(t, at.Add(time.Duration(id)*time.Second).Equal(gotAt))
	}
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM public.bulk_target WHERE id = 5 AND score IS NULL`))

	// More rows than one statement's parameters allow: several pipelined
	// statements, still all or nothing.
	never := store.BulkOptions{CopyThreshold: 1 << 30}
	many := rowsFrom(100000, 12000) // 72000 parameters
	n, err = b.store.BulkInsertWith(ctx, never, table, columns, many)
	require.NoError(t, err)
	require.EqualValues(t, 12000, n)
	bad := rowsFrom(200000, 12000)
	bad[11999][0] = int64(100000) // a key taken above, in the second statement
	_, err = b.store.BulkInsertWith(ctx, never, table, columns, bad)
	require.Error(t, err)
	require.Zero(t, b.count(t, `SELECT count(*) FROM public.bulk_target WHERE id >= 200000`), "all or nothing")
	_, err = b.store.BulkInsert(ctx, table, columns, bad)
	require.Error(t, err)
	require.Zero(t, b.count(t, `SELECT count(*) FROM public.bulk_target WHERE id >= 200000`), "COPY too")

	// Shapes that do not fit.
	_, err = b.store.BulkInsert(ctx, table, columns, [][]any{{int64(1)}})
	require.ErrorIs(t, err, store.ErrBulkShape)
	_, err = b.store.BulkInsert(ctx, nil, columns, nil)
	require.ErrorIs(t, err, store.ErrBulkShape)
	_, err = b.store.BulkInsert(ctx, table, nil, nil)
	require.ErrorIs(t, err, store.ErrBulkShape)
	n, err = b.store.BulkInsert(ctx, table, columns, nil)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = b.store.BulkInsertWith(ctx, store.BulkOptions{CopyThreshold: -1}, table, columns, nil)
	require.ErrorContains(t, err, "CopyThreshold")
}

func TestBulkInsertEventsDeduplicatesOnBothSides(t *testing.T) {
	t.Parallel()
	for _, size := range []int{store.DefaultEventsCopyThreshold / 8, store.DefaultEventsCopyThreshold + 200} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			b := setupEvents(t)
			ctx := testCtx(t)

			pre := newEvent(-1)
			pre.DeliveryID = "d-3"
			preID, _, err := b.store.InsertEvent(ctx, pre)
			require.NoError(t, err)

			events := make([]store.NewEvent, size)
			for i := range events {
				events[i] = newEvent(i)
				if i%2 == 0 {
					events[i].DeliveryID = fmt.Sprintf("d-%d", i%(size/2)) // the second half repeats the first
				}
				if i%3 == 0 {
					events[i].Metadata = json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`)
				}
			}
			events[3].DeliveryID = "d-3" // taken before the call

			res, err := b.store.BulkInsertEvents(ctx, events)
			require.NoError(t, err)
			require.Equal(t, store.BulkOptions{}.EventsMethod(size), res.Method)
			require.Len(t, res.Results, size)

			firstOf := map[string]int{}
			wantDup := 0
			for i, e := range events {
				r := res.Results[i]
				switch {
				case e.DeliveryID == "d-3":
					require.True(t, r.Duplicate)
					require.Equal(t, preID, r.ID)
					wantDup++
				case e.DeliveryID == "":
					require.False(t, r.Duplicate, i)
				default:
					if first, ok := firstOf[e.DeliveryID]; ok {
						require.True(t, r.Duplicate, i)
						require.Equal(t, res.Results[first].ID, r.ID)
						wantDup++
					} else {
						require.False(t, r.Duplicate, i)
						firstOf[e.DeliveryID] = i
					}
				}
			}
			require.Equal(t, wantDup, res.Duplicates)
			require.Equal(t, size-wantDup, res.Inserted)
			require.Equal(t, 1+res.Inserted, b.eventCount(t))

			got, err := b.store.GetEvent(ctx, res.Results[6].ID)
			require.NoError(t, err)
			require.JSONEq(t, `{"i":6}`, string(got.Metadata))
			require.Equal(t, events[6].DeliveryID, got.DeliveryID)
			got, err = b.store.GetEvent(ctx, res.Results[1].ID)
			require.NoError(t, err)
			require.JSONEq(t, `{}`, string(got.Metadata))
			require.Empty(t, got.DeliveryID)

			// The same call again: every event with a delivery id is a duplicate.
			again, err := b.store.BulkInsertEvents(ctx, events)
			require.NoError(t, err)
			for i, e := range events {
				require.Equal(t, e.DeliveryID != "", again.Results[i].Duplicate, i)
				if e.DeliveryID != "" {
					require.Equal(t, res.Results[i].ID, again.Results[i].ID)
				}
			}
		})
	}
}

func TestBulkInsertEventsExplicitIDsAndTimes(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	size := store.DefaultEventsCopyThreshold + 10
	created := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

	// Creation times without ids: the COPY path keeps them.
	timed := make([]store.NewEvent, size)
	for i := range timed {
		timed[i] = newEvent(i)
		if i%2 == 0 {
			timed[i].CreatedAt = created.Add(time.Duration(i) * time.Minute)
		}
	}
	res, err := b.store.BulkInsertEvents(ctx, timed)
	require.NoError(t, err)
	require.Equal(t, store.BulkCopy, res.Method)
	got, err := b.store.GetEvent(ctx, res.Results[4].ID)
	require.NoError(t, err)
	require.True(t, created.Add(4*time.Minute).Equal(got.CreatedAt))
	got, err = b.store.GetEvent(ctx, res.Results[5].ID)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), got.CreatedAt, time.Hour)

	// Explicit ids: a second import is all duplicates.
	exported := make([]store.NewEvent, size)
	for i := range exported {
		exported[i] = newEvent(i)
		exported[i].ID = uuid.Must(uuid.NewV7())
		exported[i].CreatedAt = created.Add(time.Duration(i) * time.Second)
	}
	first, err := b.store.BulkInsertEvents(ctx, exported)
	require.NoError(t, err)
	require.Equal(t, size, first.Inserted)
	second, err := b.store.BulkInsertEvents(ctx, exported)
	require.NoError(t, err)
	require.Equal(t, size, second.Duplicates)
	for i, r := range second.Results {
		require.Equal(t, exported[i].ID, r.ID)
	}
	require.Equal(t, 2*size, b.eventCount(t))

	// A bad event rejects the call by its index.
	exported[size-1].Payload = json.RawMessage(`[]`)
	_, err = b.store.BulkInsertEvents(ctx, exported)
	var verr *store.ValidationError
	require.ErrorAs(t, err, &verr)
	require.Equal(t, size-1, verr.Index)
}

func TestBulkInsertEventsConcurrentSameDeliveries(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	const writers = 4
	size := store.DefaultEventsCopyThreshold + 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			events := make([]store.NewEvent, size)
			for i := range events {
				k := (i + w*17) % size
				events[i] = newEvent(k)
				events[i].DeliveryID = fmt.Sprint(k)
			}
			_, err := b.store.BulkInsertEvents(context.WithoutCancel(ctx), events)
			errs <- err
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	require.Equal(t, size, b.eventCount(t))
}
