package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestListEventsPagesAndFilters(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	base := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	events := make([]store.NewEvent, 25)
	for i := range events {
		events[i] = newEvent(i)
		events[i].CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if i%5 == 0 {
			events[i].Source = "gitlab"
		}
	}
	// Two events share a creation time: the id breaks the tie.
	events[24].CreatedAt = events[23].CreatedAt
	_, err := b.store.InsertEvents(ctx, events)
	require.NoError(t, err)

	var seen []store.HookEvent
	var after *store.Cursor
	pages := 0
	for {
		page, err := b.store.ListEvents(ctx, store.EventFilter{Limit: 10, After: after})
		require.NoError(t, err)
		pages++
		seen = append(seen, page.Events...)
		if page.Next == nil {
			break
		}
		// The cursor survives a trip through a URL.
		c, err := store.ParseCursor(page.Next.String())
		require.NoError(t, err)
		require.True(t, page.Next.CreatedAt.Equal(c.CreatedAt))
		require.Equal(t, page.Next.ID, c.ID)
		after = &c
	}
	require.Equal(t, 3, pages)
	require.Len(t, seen, 25)
	ids := map[uuid.UUID]bool{}
	for i, e := range seen {
		ids[e.ID] = true
		if i > 0 {
			prev := seen[i-1]
			require.True(t, prev.CreatedAt.After(e.CreatedAt) ||
				(prev.CreatedAt.Equal(e.CreatedAt) && prev.ID.String() > e.ID.String()), "newest first at %d", i)
		}
	}
	require.Len(t, ids, 25, "no event twice across pages")

	page, err := b.store.ListEvents(ctx, store.EventFilter{Source: "gitlab"})
	require.NoError(t, err)
	require.Len(t, page.Events, 5)
	require.Nil(t, page.Next)

	page, err = b.store.ListEvents(ctx, store.EventFilter{
		Since: base.Add(5 * time.Minute), Until: base.Add(10 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, page.Events, 5, "since inclusive, until exclusive")
	require.True(t, page.Events[0].CreatedAt.Equal(base.Add(9*time.Minute)))

	claimed, _, err := b.store.Claim(ctx, 3)
	require.NoError(t, err)
	page, err = b.store.ListEvents(ctx, store.EventFilter{Status: store.EventProcessing})
	require.NoError(t, err)
	require.Len(t, page.Events, len(claimed))
	page, err = b.store.ListEvents(ctx, store.EventFilter{Status: store.EventPending, Limit: 100000})
	require.NoError(t, err)
	require.Len(t, page.Events, 22, "a limit above MaxListLimit is capped, not refused")

	_, err = b.store.ListEvents(ctx, store.EventFilter{Status: "lost"})
	require.ErrorContains(t, err, `unknown status "lost"`)
	_, err = store.ParseCursor("not-a-cursor")
	require.ErrorIs(t, err, store.ErrInvalidCursor)
}

func TestNotifyWakesListeners(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, fmt.Sprintf("LISTEN %s", store.NotifyChannel))
	require.NoError(t, err)

	require.NoError(t, b.store.Notify(ctx))
	n, err := conn.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, store.NotifyChannel, n.Channel)
}
