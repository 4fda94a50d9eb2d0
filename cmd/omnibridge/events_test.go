package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	c, err := pgclient.Open(context.Background(), pgclient.Config{URL: url, MinConns: -1, MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return store.New(c)
}

func TestEventsImportListShow(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	lines := []string{
		`{"source":"ci","action":"build.finished","resource":"build","resource_id":"1","payload":{"ok":true},"metadata":{},"delivery_id":"d-1"}`,
		`{"source":"ci","action":"build.finished","resource":"build","resource_id":"1","payload":{"ok":true},"metadata":{},"delivery_id":"d-1"}`,
		`not json at all`,
		`{"source":"ci","action":"","resource":"build","resource_id":"2","payload":{}}`,
		`{"source":"ci","action":"build.started","resource":"build","resource_id":"3","payload":{"n":3},"metadata":{"via":"import"}}`,
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600))

	out, err := run(t, "events", "import", file, "--json", "--database-url", url)
	require.Equal(t, exitCodeError{code: 1}, err, "rejected lines: exit status 1")
	var sum struct {
		Imported      int `json:"imported"`
		Duplicates    int `json:"duplicates"`
		RejectedCount int `json:"rejected_count"`
		Rejected      []struct {
			Line int `json:"line"`
		} `json:"rejected"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	require.Equal(t, 2, sum.Imported)
	require.Equal(t, 1, sum.Duplicates)
	require.Equal(t, 2, sum.RejectedCount)
	require.Equal(t, 3, sum.Rejected[0].Line)
	require.Equal(t, 4, sum.Rejected[1].Line)

	out, err = run(t, "events", "import", file, "--database-url", url)
	require.Equal(t, exitCodeError{code: 1}, err)
	// The event with a delivery id is a duplicate both times; the one with
	// neither delivery id nor id cannot be recognised and is stored again.
	require.Contains(t, out, "imported 1, duplicates 2, rejected 2")

	out, err = run(t, "events", "list", "--json", "--database-url", url)
	require.NoError(t, err)
	var page struct {
		Events []struct {
			ID     string `json:"id"`
			Action string `json:"action"`
			Status string `json:"status"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &page), out)
	require.Len(t, page.Events, 3)

	out, err = run(t, "events", "show", page.Events[0].ID, "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, `"status": "pending"`)
	require.Contains(t, out, page.Events[0].ID)

	out, err = run(t, "events", "list", "--status", "pending", "--limit", "1", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "more: --cursor ")

	// Every line stored or a duplicate: exit status 0.
	clean := filepath.Join(t.TempDir(), "clean.ndjson")
	require.NoError(t, os.WriteFile(clean, []byte(lines[0]+"\n\n"+`{"source":"ci","action":"a","resource":"r","resource_id":"9","payload":{}}`+"\n"), 0o600))
	out, err = run(t, "events", "import", clean, "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "imported 1, duplicates 1, rejected 0 (of 3 lines)")
}

func TestEventsBadInput(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	_, err := run(t, "events", "show", "not-a-uuid", "--database-url", url)
	require.ErrorContains(t, err, `"not-a-uuid" is not an event id`)
	_, err = run(t, "events", "show", "0195f2a0-0000-7000-8000-000000000000", "--database-url", url)
	require.ErrorIs(t, err, store.ErrEventNotFound)
	_, err = run(t, "events", "replay", "x", "--database-url", url)
	require.ErrorContains(t, err, "is not an event id")
	_, err = run(t, "events", "list", "--cursor", "garbage", "--database-url", url)
	require.ErrorContains(t, err, "--cursor")
	_, err = run(t, "events", "list", "--status", "exploded", "--database-url", url)
	require.Error(t, err)
	_, err = run(t, "events", "import", filepath.Join(t.TempDir(), "missing.ndjson"), "--database-url", url)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestDeadLettersAndReplay(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	st := openStore(t, url)
	ctx := context.Background()
	id, _, err := st.InsertEvent(ctx, store.NewEvent{Source: "ci", Action: "a", Resource: "r", ResourceID: "1",
		Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	evs, claim, err := st.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	_, err = st.Fail(ctx, claim, []store.Failure{{ID: id, Err: "broker said no"}}, store.RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)

	out, err := run(t, "events", "dead-letters", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, id.String())
	require.Contains(t, out, "broker said no")

	out, err = run(t, "events", "replay", id.String(), "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "replayed 1 of 1")
	ev, err := st.GetEvent(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.EventPending, ev.Status)

	// Replaying a pending event changes nothing and says so.
	_, err = run(t, "events", "replay", id.String(), "--database-url", url)
	require.ErrorContains(t, err, "1 events were not replayed")
}

func TestSessionsList(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	st := openStore(t, url)
	ctx := context.Background()
	a, err := st.CreateSession(ctx, store.Session{ServiceName: "hook_receiver", InstanceID: "host-1"})
	require.NoError(t, err)
	b, err := st.CreateSession(ctx, store.Session{ServiceName: "model_metrics", InstanceID: "host-2"})
	require.NoError(t, err)
	require.NoError(t, st.EndSession(ctx, b.ID, store.SessionEnded))

	out, err := run(t, "sessions", "list", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, a.ID.String())
	require.NotContains(t, out, b.ID.String())

	out, err = run(t, "sessions", "list", "--all", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, b.ID.String())
	require.Contains(t, out, "ended")
}
