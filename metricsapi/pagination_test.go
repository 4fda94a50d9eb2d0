package metricsapi_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestEventsPaginationRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	// 25 events, some sharing a created_at (ties are broken by id).
	base := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	var evs []store.NewEvent
	for i := range 25 {
		evs = append(evs, store.NewEvent{
			ID: uuid.Must(uuid.NewV7()), CreatedAt: base.Add(time.Duration(i/3) * time.Second),
			Source: "src", Action: "a", Resource: "r", ResourceID: fmt.Sprint(i), Payload: json.RawMessage(`{}`),
		})
	}
	_, err := b.store.InsertEvents(ctx, evs)
	require.NoError(t, err)

	walk := func(query string) []uuid.UUID {
		var seen []uuid.UUID
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100, "the listing ends")
			q := query
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			page := decode[eventList](t, b.get(t, "/api/v1/events?"+q))
			for i := 1; i < len(page.Events); i++ {
				require.False(t, page.Events[i].CreatedAt.After(page.Events[i-1].CreatedAt))
			}
			seen = append(seen, ids(page.Events)...)
			if page.NextCursor == nil {
				return seen
			}
			require.NotEmpty(t, page.Events, "a page with a next cursor is not empty")
			cursor = *page.NextCursor
		}
	}
	all := walk("limit=10")
	require.Len(t, all, 25)
	require.ElementsMatch(t, ids(func() []eventJSON {
		out := make([]eventJSON, len(evs))
		for i, e := range evs {
			out[i].ID = e.ID
		}
		return out
	}()), all, "every event exactly once")

	// Page sizes: 10, 10, 5; a page size that divides the total ends with
	// an empty-free last page.
	first := decode[eventList](t, b.get(t, "/api/v1/events?limit=10"))
	require.Len(t, first.Events, 10)
	require.NotNil(t, first.NextCursor)
	require.Len(t, walk("limit=5"), 25)
	require.Len(t, walk("limit=25"), 25)
	require.Len(t, walk("limit=1"), 25)

	// Events that arrive during the walk do not shift later pages.
	second := decode[eventList](t, b.get(t, "/api/v1/events?limit=10&cursor="+url.QueryEscape(*first.NextCursor)))
	_, err = b.store.InsertEvents(ctx, []store.NewEvent{{Source: "src", Action: "a", Resource: "r", ResourceID: "new", Payload: json.RawMessage(`{}`)}})
	require.NoError(t, err)
	again := decode[eventList](t, b.get(t, "/api/v1/events?limit=10&cursor="+url.QueryEscape(*first.NextCursor)))
	require.Equal(t, ids(second.Events), ids(again.Events))

	// Filters combine with the cursor.
	filtered := walk("limit=4&status=pending&source=src&since=1h")
	require.Len(t, filtered, 26)
}

func TestAuditPaginationRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	var evs []store.AuditEvent
	base := time.Now().Add(-time.Hour).UTC()
	for i := range 23 {
		evs = append(evs, store.AuditEvent{
			Type: "api.auth_failed", Success: i%4 == 0, CreatedAt: base.Add(time.Duration(i/2) * time.Minute),
			ClientInfo: map[string]any{"n": i},
		})
	}
	require.NoError(t, b.store.AppendAudits(ctx, evs))

	walk := func(query string) []int64 {
		var seen []int64
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 30)
			q := query
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			page := decode[auditList](t, b.get(t, "/api/v1/audit?"+q))
			for _, e := range page.Events {
				seen = append(seen, e.ID)
			}
			if page.NextCursor == nil {
				return seen
			}
			cursor = *page.NextCursor
		}
	}
	all := walk("limit=7")
	require.Len(t, all, 23)
	unique := map[int64]bool{}
	for _, id := range all {
		unique[id] = true
	}
	require.Len(t, unique, 23, "no event twice")
	failed := walk("limit=3&success=false")
	require.Len(t, failed, 23-6)
	// An events cursor is not an audit cursor.
	ev := decode[eventList](t, b.get(t, "/api/v1/events?limit=1"))
	require.Nil(t, ev.NextCursor)
	badCursor := store.Cursor{CreatedAt: time.Now(), ID: uuid.New()}.String()
	e := requireError(t, b.get(t, "/api/v1/audit?cursor="+badCursor), 400, "invalid_parameter")
	require.Equal(t, "cursor", e.Parameter)
}
