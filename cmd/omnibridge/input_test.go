package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGroupCommandsRefuseUnknownSubcommands: a mistyped subcommand is an
// error (exit 2), not the help with exit status 0.
func TestGroupCommandsRefuseUnknownSubcommands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ group, sub, lists string }{
		{"events", "lst", "dead-letters, import, list, replay, show"},
		{"migrate", "sideways", "down, status, up"},
		{"bench", "everything", "bulk, drain, ingest, pool"},
		{"config", "edit", "print"},
		{"sessions", "kill", "list"},
	} {
		_, err := run(t, tc.group, tc.sub)
		require.ErrorContains(t, err, `unknown command "`+tc.sub+`" for "omnibridge `+tc.group+`"`)
		require.ErrorContains(t, err, tc.lists)

		out, err := run(t, tc.group)
		require.NoError(t, err, tc.group)
		require.Contains(t, out, "Available Commands:", tc.group)
	}
}

// TestBadFlagsAndArgumentsAreRefusedFirst: every bad flag value or argument
// is refused with an error that names it, before the command connects to a
// database or starts one (no database URL is set here: a command that got
// past its checks would fail with errNoDatabase or start an embedded
// PostgreSQL instead).
func TestBadFlagsAndArgumentsAreRefusedFirst(t *testing.T) {
	t.Parallel()
	const id = "0195f2a0-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		// Malformed values.
		{[]string{"events", "list", "--limit", "ten"}, []string{`invalid argument "ten" for "--limit"`}},
		{[]string{"events", "list", "--since", "yesterday"}, []string{`invalid argument "yesterday" for "--since"`}},
		{[]string{"stats", "--window", "5"}, []string{`invalid argument "5" for "--window"`, "missing unit"}},
		{[]string{"events", "import", "f", "--batch", "1.5"}, []string{`invalid argument "1.5" for "--batch"`}},
		{[]string{"health", "--json=maybe"}, []string{`invalid argument "maybe" for "--json"`}},
		{[]string{"events", "list", "--colour"}, []string{"unknown flag: --colour"}},
		{[]string{"bench", "bulk", "--sizes", "10,x"}, []string{`invalid argument "10,x" for "--sizes"`}},
		// Out of range: zero, negative, huge.
		{[]string{"events", "list", "--limit", "0"}, []string{"--limit 0: must be between 1 and 1000"}},
		{[]string{"events", "list", "--limit", "-5"}, []string{"--limit -5: must be between 1 and 1000"}},
		{[]string{"events", "list", "--limit", "1001"}, []string{"--limit 1001: must be between 1 and 1000"}},
		{[]string{"events", "list", "--limit", "99999999999999999999"}, []string{"--limit", "out of range"}},
		{[]string{"events", "list", "--since", "-1h"}, []string{"--since -1h0m0s: must not be negative"}},
		{[]string{"events", "list", "--limit", "0", "--since", "-1s"}, []string{"--limit 0", "--since -1s"}},
		{[]string{"events", "list", "--source", "ci\xff\x1b[2J"}, []string{`--source "ci\xff\x1b[2J": not valid UTF-8`}},
		{[]string{"events", "list", "--source", "c\x00i"}, []string{`--source "c\x00i": holds a NUL byte`}},
		{[]string{"sessions", "list", "--service", "\xfe"}, []string{`--service "\xfe": not valid UTF-8`}},
		{[]string{"events", "dead-letters", "--limit", "0"}, []string{"--limit 0: must be between 1 and 1000"}},
		{[]string{"events", "dead-letters", "--limit", "100000"}, []string{"--limit 100000: must be between 1 and 1000"}},
		{[]string{"events", "import", "f", "--batch", "-1"}, []string{"--batch -1: must be between 1 and 100000"}},
		{[]string{"events", "import", "f", "--batch", "1000000000"}, []string{"--batch 1000000000: must be between 1 and 100000"}},
		{[]string{"sessions", "list", "--limit", "0"}, []string{"--limit 0: must be between 1 and 1000"}},
		{[]string{"sessions", "list", "--limit", "5000"}, []string{"--limit 5000: must be between 1 and 1000"}},
		{[]string{"stats", "--window", "0s"}, []string{"--window 0s: must be positive and at most 744h0m0s"}},
		{[]string{"stats", "--window", "-1h"}, []string{"--window -1h0m0s: must be positive"}},
		{[]string{"stats", "--window", "745h"}, []string{"--window 745h0m0s: must be positive and at most 744h0m0s"}},
		{[]string{"health", "--timeout", "0s"}, []string{"--timeout 0s: must be positive"}},
		{[]string{"health", "--backlog-degraded", "-5m"}, []string{"--backlog-degraded -5m0s: must be positive"}},
		{[]string{"health", "--snapshot-max-age", "-1m"}, []string{"--snapshot-max-age -1m0s: must not be negative"}},
		{[]string{"bench", "pool", "--workers", "0", "--duration", "-1s"}, []string{"--workers 0: must be at least 1", "--duration -1s"}},
		{[]string{"bench", "ingest", "--concurrency", "-2"}, []string{"--concurrency -2: must be at least 1"}},
		{[]string{"bench", "ingest", "--count", "-1"}, []string{"--count -1: must be at least 0"}},
		{[]string{"bench", "ingest", "--duration", "0s"}, []string{"--duration 0s: must be positive"}},
		{[]string{"bench", "ingest", "--body-size", "2000000"}, []string{"--body-size 2000000: must be between 200 and 1048576"}},
		{[]string{"bench", "ingest", "--body-size", "199"}, []string{"--body-size 199: must be between 200 and 1048576"}},
		{[]string{"bench", "drain", "--events", "0"}, []string{"--events 0: must be at least 1"}},
		{[]string{"bench", "drain", "--ingest-rate", "-1"}, []string{"--ingest-rate -1: must be a finite number"}},
		{[]string{"bench", "drain", "--ingest-rate", "NaN"}, []string{"--ingest-rate NaN: must be a finite number"}},
		{[]string{"bench", "drain", "--ingest-rate", "+Inf"}, []string{"--ingest-rate +Inf: must be a finite number"}},
		{[]string{"bench", "drain", "--ingest-rate", "1000", "--latency-duration", "1s"}, []string{"--latency-duration 1s: must be longer than the 1s warm-up"}},
		{[]string{"bench", "drain", "--concurrency", "0"}, []string{"--concurrency 0: must be at least 1"}},
		{[]string{"bench", "bulk", "--sizes", "10,0,-3"}, []string{"--sizes 0: must be at least 1", "--sizes -3"}},
		// Unknown enum values, bad ids, wrong argument counts.
		{[]string{"serve", "--services", "hook-receiver,kafka"}, []string{`unknown service "kafka"`, "hook-receiver, workflow-coordinator, model-metrics"}},
		{[]string{"serve", "--services", "hook-receiver,,model-metrics"}, []string{`empty service name in "hook-receiver,,model-metrics"`}},
		{[]string{"events", "show", "42; DROP TABLE omnibridge.hook_events"}, []string{`"42; DROP TABLE omnibridge.hook_events" is not an event id`}},
		{[]string{"events", "show", "\x1b[2J"}, []string{`"\x1b[2J" is not an event id`}},
		{[]string{"events", "show", ""}, []string{`"" is not an event id`}},
		{[]string{"events", "replay", id, id + "0"}, []string{`"` + id + `0" is not an event id`}},
		{[]string{"events", "show"}, []string{"accepts 1 arg(s), received 0"}},
		{[]string{"events", "show", id, id}, []string{"accepts 1 arg(s), received 2"}},
		{[]string{"events", "replay"}, []string{"requires at least 1 arg(s)"}},
		{[]string{"events", "import", "a.ndjson", "b.ndjson"}, []string{"accepts 1 arg(s), received 2"}},
		{[]string{"migrate", "up", "now"}, []string{`unknown command "now" for "omnibridge migrate up"`}},
		{[]string{"version", "--short"}, []string{"unknown flag: --short"}},
	} {
		_, err := run(t, tc.args...)
		require.Error(t, err, "%q", tc.args)
		require.NotErrorIs(t, err, errNoDatabase, "%q: checked only after loading the configuration", tc.args)
		for _, w := range tc.want {
			require.ErrorContains(t, err, w, "%q", tc.args)
		}
		require.NotContains(t, err.Error(), "\x1b", "%q: the error echoes a raw escape", tc.args)
	}
}

// TestGoodFlagsPassTheChecks: values at the edges of what the checks allow
// reach the point where the command needs a database.
func TestGoodFlagsPassTheChecks(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"health", "--backlog-unhealthy", "3m"}, // below the default --backlog-degraded
		{"health", "--snapshot-max-age", "0s"},
		{"events", "list", "--limit", "1000", "--since", "0s"},
		{"sessions", "list", "--limit", "1"},
		{"stats", "--window", "744h"},
	} {
		_, err := run(t, args...)
		require.ErrorIs(t, err, errNoDatabase, "%q", args)
	}
}

// TestHugeArgumentsAreRefused: a very long argument is refused like a short
// one.
func TestHugeArgumentsAreRefused(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	_, err := run(t, "events", "show", huge)
	require.ErrorContains(t, err, "is not an event id")
	_, err = run(t, "serve", "--services", huge)
	require.ErrorContains(t, err, "unknown service")
}
