package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// eventsBundle is what the event tests share: a store on a pgclient.Client
// over a fresh migrated database, and the client's bare pool for checks in
// SQL and for baselines.
type eventsBundle struct {
	store  *store.Store
	client *pgclient.Client
	pool   *pgxpool.Pool
}

func setupEvents(t testing.TB) *eventsBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := pgclient.Open(ctx, pgclient.Config{
		URL:         testdb.New(t),
		ServiceName: "store-test",
		MinConns:    2,
		MaxConns:    20,
		Logger:      slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return &eventsBundle{store: store.New(client), client: client, pool: client.Pool()}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// count runs a count(*) query.
func (b *eventsBundle) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (b *eventsBundle) eventCount(t testing.TB) int {
	return b.count(t, `SELECT count(*) FROM omnibridge.hook_events`)
}

func newEvent(i int) store.NewEvent {
	return store.NewEvent{
		Source:     "github",
		Action:     "push",
		Resource:   "repository",
		ResourceID: fmt.Sprintf("repo-%d", i),
		Payload:    json.RawMessage(fmt.Sprintf(`{"n":%d,"ref":"refs/heads/main"}`, i)),
	}
}

func TestInsertEventStoresEveryField(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	e := newEvent(1)
	e.DeliveryID = "d-1"
	e.Metadata = json.RawMessage(`{"ip":"10.0.0.1"}`)
	before := time.Now()
	id, dup, err := b.store.InsertEvent(ctx, e)
	require.NoError(t, err)
	require.False(t, dup)
	require.Equal(t, uuid.Version(7), id.Version(), "new ids are UUIDv7")

	got, err := b.store.GetEvent(ctx, id)
	require.NoError(t, err)
	require.Equal(t, id, got.ID)
	require.Equal(t, "github", got.Source)
	require.Equal(t, "push", got.Action)
	require.Equal(t, "repository", got.Resource)
	require.Equal(t, "repo-1", got.ResourceID)
	require.Equal(t, "d-1", got.DeliveryID)
	require.JSONEq(t, string(e.Payload), string(got.Payload))
	require.JSONEq(t, `{"ip":"10.0.0.1"}`, string(got.Metadata))
	require.Equal(t, store.EventPending, got.Status)
	require.False(t, got.Processed)
	require.Zero(t, got.RetryCount)
	require.Equal(t, 1, got.Attempt())
	require.Nil(t, got.ClaimedAt)
	require.Nil(t, got.ProcessedAt)
	require.Equal(t, uuid.Nil, got.ClaimID)
	require.Empty(t, got.ProcessingErrors)
	require.WithinDuration(t, before, got.CreatedAt, time.Minute)
	require.False(t, got.NextAttemptAt.After(time.Now().Add(time.Minute)))

	// Without metadata and delivery id.
	id2, dup, err := b.store.InsertEvent(ctx, newEvent(2))
	require.NoError(t, err)
	require.False(t, dup)
	got2, err := b.store.GetEvent(ctx, id2)
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(got2.Metadata))
	require.Empty(t, got2.DeliveryID)
	require.Equal(t, 2, b.eventCount(t))
}

func TestInsertEventDeduplicatesDeliveries(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	e := newEvent(1)
	e.DeliveryID = "abc"
	first, dup, err := b.store.InsertEvent(ctx, e)
	require.NoError(t, err)
	require.False(t, dup)

	again, dup, err := b.store.InsertEvent(ctx, e)
	require.NoError(t, err)
	require.True(t, dup)
	require.Equal(t, first, again, "a redelivery returns the first event's id")

	// The same delivery id from another source is another delivery.
	other := e
	other.Source = "gitlab"
	otherID, dup, err := b.store.InsertEvent(ctx, other)
	require.NoError(t, err)
	require.False(t, dup)
	require.NotEqual(t, first, otherID)

	// Events without a delivery id are never deduplicated.
	plain := newEvent(1)
	for range 2 {
		_, dup, err := b.store.InsertEvent(ctx, plain)
		require.NoError(t, err)
		require.False(t, dup)
	}
	require.Equal(t, 4, b.eventCount(t))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM omnibridge.hook_event_deliveries`))
}

func TestInsertEventConcurrentSameDelivery(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	const n = 16
	e := newEvent(7)
	e.DeliveryID = "same-delivery"
	ids := make([]uuid.UUID, n)
	dups := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], dups[i], errs[i] = b.store.InsertEvent(ctx, e)
		})
	}
	close(start)
	wg.Wait()

	fresh := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, ids[0], ids[i], "every insert reports the one stored event")
		if !dups[i] {
			fresh++
		}
	}
	require.Equal(t, 1, fresh, "exactly one insert is not a duplicate")
	require.Equal(t, 1, b.eventCount(t))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM omnibridge.hook_events WHERE id = $1`, ids[0]))
}

func TestInsertEventsBatch(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	// A delivery stored before the batch.
	pre := newEvent(100)
	pre.DeliveryID = "d-pre"
	preID, _, err := b.store.InsertEvent(ctx, pre)
	require.NoError(t, err)

	batch := make([]store.NewEvent, 6)
	for i := range batch {
		batch[i] = newEvent(i)
	}
	batch[0].DeliveryID = "d-a"
	batch[1].DeliveryID = "d-b"
	batch[2].DeliveryID = "d-a" // duplicate within the batch
	batch[3].DeliveryID = "d-pre"
	// batch[4] and batch[5] have no delivery id.
	res, err := b.store.InsertEvents(ctx, batch)
	require.NoError(t, err)
	require.Len(t, res, len(batch))

	require.False(t, res[0].Duplicate)
	require.False(t, res[1].Duplicate)
	require.True(t, res[2].Duplicate)
	require.Equal(t, res[0].ID, res[2].ID, "the first of the batch wins")
	require.True(t, res[3].Duplicate)
	require.Equal(t, preID, res[3].ID)
	require.False(t, res[4].Duplicate)
	require.False(t, res[5].Duplicate)

	require.Equal(t, 1+4, b.eventCount(t))
	for _, i := range []int{0, 1, 4, 5} {
		got, err := b.store.GetEvent(ctx, res[i].ID)
		require.NoError(t, err)
		require.Equal(t, batch[i].ResourceID, got.ResourceID, "results are in input order")
	}

	// Running the same batch again stores only the events without delivery ids.
	res2, err := b.store.InsertEvents(ctx, batch)
	require.NoError(t, err)
	for i, r := range res2 {
		if batch[i].DeliveryID != "" {
			require.True(t, r.Duplicate, i)
		} else {
			require.False(t, r.Duplicate, i)
		}
	}
	require.Equal(t, res[0].ID, res2[0].ID)
	require.Equal(t, res[1].ID, res2[1].ID)
	require.Equal(t, 1+4+2, b.eventCount(t))

	empty, err := b.store.InsertEvents(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestInsertEventsExplicitIDs(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	created := time.Date(2024, 3, 1, 12, 0, 0, 123000, time.UTC)
	e := newEvent(1)
	e.ID = uuid.Must(uuid.NewV7())
	e.CreatedAt = created
	batch := []store.NewEvent{e, e, newEvent(2)}
	res, err := b.store.InsertEvents(ctx, batch)
	require.NoError(t, err)
	require.Equal(t, store.InsertResult{ID: e.ID}, res[0])
	require.Equal(t, store.InsertResult{ID: e.ID, Duplicate: true}, res[1])
	require.False(t, res[2].Duplicate)

	got, err := b.store.GetEvent(ctx, e.ID)
	require.NoError(t, err)
	require.True(t, created.Equal(got.CreatedAt))

	// Importing it again is a duplicate, by (id, created_at).
	id, dup, err := b.store.InsertEvent(ctx, e)
	require.NoError(t, err)
	require.True(t, dup)
	require.Equal(t, e.ID, id)
	require.Equal(t, 2, b.eventCount(t))
}

func TestInsertEventsConcurrentOverlappingBatches(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	// Eight writers store the same 50 deliveries in different orders: no
	// deadlock, and each delivery is stored once.
	const writers, deliveries = 8, 50
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			batch := make([]store.NewEvent, deliveries)
			for i := range batch {
				k := (i*7 + w*13) % deliveries
				batch[i] = newEvent(k)
				batch[i].DeliveryID = fmt.Sprintf("d-%d", k)
			}
			_, errs[w] = b.store.InsertEvents(ctx, batch)
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, deliveries, b.eventCount(t))
	require.Equal(t, deliveries, b.count(t, `SELECT count(DISTINCT delivery_id) FROM omnibridge.hook_events`))
}

func TestGetEventNotFound(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	_, err := b.store.GetEvent(testCtx(t), uuid.Must(uuid.NewV7()))
	require.ErrorIs(t, err, store.ErrEventNotFound)
}
