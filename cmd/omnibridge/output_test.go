package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                        "",
		"build.finished":          "build.finished",
		"naïve 日本 🚀":              "naïve 日本 🚀",
		"a\tb\nc\r":               `a\tb\nc\r`,
		"\x1b[2J\x1b]0;title\x07": `\x1b[2J\x1b]0;title\a`,
		"\u009b31m":               `\u009b31m`,
		"abc\u202edef":            `abc\u202edef`,
		"nul\x00":                 `nul\x00`,
		"bad\xff\xfeutf8":         `bad\xff\xfeutf8`,
		"cut\xe6\x97":             `cut\xe6\x97`,
		"real \ufffd kept":        "real \ufffd kept",
		"\x7f":                    `\x7f`,
	} {
		require.Equal(t, want, printable(in), "%q", in)
	}
	require.Equal(t, "bad --limit\nbad \\x1b[2J source", printableLines("bad --limit\nbad \x1b[2J source"))
}

// deadEvent stores an event and dead-letters it with lastErr.
func deadEvent(t *testing.T, st *store.Store, e store.NewEvent, lastErr string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id, _, err := st.InsertEvent(ctx, e)
	require.NoError(t, err)
	evs, claim, err := st.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	_, err = st.Fail(ctx, claim, []store.Failure{{ID: id, Err: lastErr}}, store.RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	return id
}

// TestTablesEscapeHostileText: text that webhook senders and services
// control reaches the tables escaped, so it cannot drive the operator's
// terminal or fake rows; --json keeps it exact.
func TestTablesEscapeHostileText(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	st := openStore(t, url)
	ctx := context.Background()
	const hostile = "\x1b]0;pwned\x07\x1b[2J"
	const escaped = `\x1b]0;pwned\a\x1b[2J`
	deadEvent(t, st, store.NewEvent{Source: "ci\u202e", Action: hostile, Resource: "r\tfake", ResourceID: "1\nFAKE ROW",
		Payload: json.RawMessage(`{}`)}, "broker said \x1b[31mno")
	_, err := st.CreateSession(ctx, store.Session{ServiceName: "hook_receiver", InstanceID: hostile})
	require.NoError(t, err)
	require.NoError(t, st.RecordConnectionMetrics(ctx, store.ConnectionSnapshot{ServiceName: "hook_receiver",
		InstanceID: hostile, PoolSize: 10, Idle: 10, PotentialLeaks: 1, RecordedAt: time.Now()}))

	for _, args := range [][]string{
		{"events", "list"}, {"events", "dead-letters"}, {"sessions", "list"}, {"stats"}, {"health"},
	} {
		out, err := run(t, append(args, "--database-url", url)...)
		if args[0] != "health" {
			require.NoError(t, err, "%v", args)
		}
		require.Contains(t, out, escaped, "%v", args)
		for _, raw := range []string{"\x1b", "\x07", "\u202e", "\nFAKE ROW"} {
			require.NotContains(t, out, raw, "%v", args)
		}
		if args[0] == "events" {
			require.Contains(t, out, `ci\u202e`)
			require.Contains(t, out, `r\tfake/1\nFAKE ROW`)
			require.Contains(t, out, `broker said \x1b[31mno`)
		}
	}

	out, err := run(t, "events", "list", "--json", "--database-url", url)
	require.NoError(t, err)
	var page struct {
		Events []struct {
			Action     string `json:"action"`
			ResourceID string `json:"resource_id"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &page), out)
	require.Equal(t, hostile, page.Events[0].Action)
	require.Equal(t, "1\nFAKE ROW", page.Events[0].ResourceID)
}
