package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// TestReplaySameEventTwice: an id given twice, in any of the forms a UUID
// can be written, is one event; replaying it again once it is pending is
// refused and says why.
func TestReplaySameEventTwice(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	st := openStore(t, url)
	id := deadEvent(t, st, store.NewEvent{Source: "ci", Action: "a", Resource: "r", ResourceID: "1",
		Payload: json.RawMessage(`{}`)}, "broker said no")

	s := id.String()
	out, err := run(t, "events", "replay", s, strings.ToUpper(s), "{"+s+"}", "urn:uuid:"+s, "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "replayed 1 of 1 events")

	out, err = run(t, "events", "replay", s, s, "--database-url", url)
	require.ErrorContains(t, err, "1 events were not replayed: unknown, or still pending or processing")
	require.Contains(t, out, "replayed 0 of 1 events")
}

// TestRepeatedCommandsAreHarmless: running migrate up, migrate down,
// cleanup or an import again changes nothing and says so.
func TestRepeatedCommandsAreHarmless(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmpty(t)
	out, err := run(t, "migrate", "down", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "nothing to roll back: no migration is applied")
	for range 2 {
		_, err = run(t, "migrate", "up", "--database-url", url)
		require.NoError(t, err)
	}
	for range 2 {
		out, err = run(t, "cleanup", "--database-url", url)
		require.NoError(t, err)
		require.Contains(t, out, "removed 0 rows")
	}
	file := writeLines(t,
		`{"source":"ci","action":"a","resource":"r","resource_id":"1","payload":{},"delivery_id":"d-1"}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"2","payload":{},"id":"0195f2a0-0000-7000-8000-000000000001","created_at":"2025-03-01T12:00:00Z"}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"1","payload":{},"delivery_id":"d-1"}`,
	)
	sum, err := importJSON(t, url, file)
	require.NoError(t, err)
	require.Equal(t, importSummary{Lines: 3, Imported: 2, Duplicates: 1}, withoutRejected(sum))
	sum, err = importJSON(t, url, file)
	require.NoError(t, err)
	require.Equal(t, importSummary{Lines: 3, Duplicates: 3}, withoutRejected(sum))

	for range 2 {
		_, err = run(t, "migrate", "down", "--all", "--database-url", url)
		require.NoError(t, err)
	}
	out, err = run(t, "migrate", "down", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "nothing to roll back")
}

func withoutRejected(s importSummary) importSummary {
	s.Rejected = nil
	return s
}

// TestListsSayWhenTheyAreCut: a listing cut at --limit says how to see the
// rest instead of looking complete.
func TestListsSayWhenTheyAreCut(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	st := openStore(t, url)
	ctx := context.Background()
	for _, r := range []string{"1", "2"} {
		deadEvent(t, st, store.NewEvent{Source: "ci", Action: "a", Resource: "r", ResourceID: r,
			Payload: json.RawMessage(`{}`)}, "broker said no")
		_, err := st.CreateSession(ctx, store.Session{ServiceName: "hook_receiver", InstanceID: "host-" + r})
		require.NoError(t, err)
	}

	out, err := run(t, "events", "dead-letters", "--limit", "1", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "more: omnibridge events list --status dead --limit 1 --cursor ")
	cursor := out[strings.LastIndex(out, " ")+1 : len(out)-1]
	out, err = run(t, "events", "list", "--status", "dead", "--cursor", cursor, "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "r/1")
	require.NotContains(t, out, "more:")

	out, err = run(t, "events", "dead-letters", "--limit", "1", "--json", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, `"next_cursor"`)
	out, err = run(t, "events", "dead-letters", "--json", "--database-url", url)
	require.NoError(t, err)
	require.NotContains(t, out, `"next_cursor"`)

	out, err = run(t, "sessions", "list", "--limit", "1", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "host-2")
	require.Contains(t, out, "(the newest 1; there may be more: raise --limit, at most 1000)")
	out, err = run(t, "sessions", "list", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "host-1")
	require.NotContains(t, out, "there may be more")
}
