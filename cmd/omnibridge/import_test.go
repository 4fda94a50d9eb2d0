package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

// writeLines writes an NDJSON file.
func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	return file
}

// importSummary is the JSON summary of events import.
type importSummary struct {
	Lines         int    `json:"lines"`
	Imported      int    `json:"imported"`
	Duplicates    int    `json:"duplicates"`
	RejectedCount int    `json:"rejected_count"`
	Error         string `json:"error"`
	Rejected      []struct {
		Line  int    `json:"line"`
		Error string `json:"error"`
	} `json:"rejected"`
}

func importJSON(t *testing.T, url, file string, flags ...string) (importSummary, error) {
	t.Helper()
	out, err := run(t, append([]string{"events", "import", file, "--json", "--database-url", url}, flags...)...)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	return sum, err
}

// TestEventsImportHostileLines: malformed, oversized and hostile lines are
// each rejected with their line number; the good lines around them are
// stored; the summary prints no raw control character.
func TestEventsImportHostileLines(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	good := func(id string) string {
		return `{"source":"ci","action":"a","resource":"r","resource_id":"` + id + `","payload":{},"delivery_id":"` + id + `"}`
	}
	rejected := map[int]string{
		2:  "longer than",        // over store.DefaultImportMaxLineBytes
		3:  "nul_character",      // \u0000 in a field
		4:  "nul_character",      // \u0000 in the payload
		5:  "invalid_utf8",       // raw invalid UTF-8
		6:  "invalid_json",       // a raw escape sequence, not JSON
		7:  "not_an_object",      // JSON, not an object
		8:  "invalid_json",       // truncated
		9:  "field_too_long",     // a 256-character action
		10: "missing_field",      // no payload
		11: "wrong_type",         // a number for a string
		12: "must be a UUID",     // a bad id
		13: "RFC 3339",           // a bad created_at
		14: "nesting_too_deep",   // nested past store.MaxJSONDepth
		15: "invalid_json",       // SQL, not JSON
		16: "must be a JSON obj", // a payload that is a string
	}
	file := writeLines(t,
		good("1"),
		`{"source":"ci","action":"a","resource":"r","resource_id":"2","payload":{"pad":"`+strings.Repeat("x", store.DefaultImportMaxLineBytes)+`"}}`,
		`{"source":"ci\u0000","action":"a","resource":"r","resource_id":"3","payload":{}}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"4","payload":{"k":"\u0000"}}`,
		"{\"source\":\"ci\",\"action\":\"a\xff\xfe\",\"resource\":\"r\",\"resource_id\":\"5\",\"payload\":{}}",
		"\x1b]0;pwned\x07\x1b[2J",
		`[{"source":"ci"}]`,
		`{"source":"ci","action":"a",`,
		`{"source":"ci","action":"`+strings.Repeat("a", store.MaxFieldLength+1)+`","resource":"r","resource_id":"9","payload":{}}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"10"}`,
		`{"source":"ci","action":7,"resource":"r","resource_id":"11","payload":{}}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"12","payload":{},"id":"'; DROP TABLE x; --"}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"13","payload":{},"created_at":"last tuesday"}`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"14","payload":`+strings.Repeat(`{"a":`, store.MaxJSONDepth+1)+`1`+strings.Repeat(`}`, store.MaxJSONDepth+1)+`}`,
		`'; DROP TABLE omnibridge.hook_events; --`,
		`{"source":"ci","action":"a","resource":"r","resource_id":"16","payload":"{}"}`,
		"",
		"\t ",
		good("19")+"\r",
	)

	sum, err := importJSON(t, url, file)
	require.Equal(t, exitCodeError{code: 1}, err)
	require.Equal(t, 19, sum.Lines)
	require.Equal(t, 2, sum.Imported)
	require.Equal(t, len(rejected), sum.RejectedCount)
	for _, r := range sum.Rejected {
		require.Contains(t, r.Error, rejected[r.Line], "line %d", r.Line)
	}

	out, err := run(t, "events", "import", file, "--database-url", url)
	require.Equal(t, exitCodeError{code: 1}, err)
	require.Contains(t, out, "imported 0, duplicates 2, rejected 15 (of 19 lines)")
	require.NotContains(t, out, "\x1b")
	require.NotContains(t, out, "\x00")

	// Filters are values, never SQL.
	out, err = run(t, "events", "list", "--source", "ci' OR '1'='1", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "(no events)")
	out, err = run(t, "sessions", "list", "--all", "--service", "x'; DELETE FROM omnibridge.hook_events; --", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "(no sessions)")

	out, err = run(t, "events", "list", "--json", "--database-url", url)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(out, `"source": "ci"`), "nothing rejected was stored")
}

// TestEventsImportStopsAndSaysHowFar: when a batch cannot be stored, the
// import stops with exit status 2 and still prints what it stored before.
func TestEventsImportStopsAndSaysHowFar(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `
		CREATE FUNCTION public.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN IF NEW.resource_id = 'boom' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END$$;
		CREATE TRIGGER refuse_boom BEFORE INSERT ON omnibridge.hook_events
		FOR EACH ROW EXECUTE FUNCTION public.refuse_boom();`)
	require.NoError(t, err)

	ev := func(id string) string {
		return `{"source":"ci","action":"a","resource":"r","resource_id":"` + id + `","payload":{},"delivery_id":"` + id + `"}`
	}
	file := writeLines(t, ev("1"), ev("2"), ev("boom"), ev("4"))

	out, err := run(t, "events", "import", file, "--batch", "2", "--database-url", url)
	require.ErrorContains(t, err, "import stopped (the events counted as imported are stored, the rest are not)")
	require.ErrorContains(t, err, "batch ending at line 4")
	require.ErrorContains(t, err, "refused by a test trigger")
	require.NotErrorAs(t, err, &exitCodeError{}, "an error: exit status 2")
	require.Contains(t, out, "imported 2, duplicates 0, rejected 0 (of 4 lines)")

	sum, err := importJSON(t, url, file, "--batch", "2")
	require.Error(t, err)
	require.Equal(t, 2, sum.Duplicates, "the first batch was stored by the first run")
	require.Contains(t, sum.Error, "refused by a test trigger")
}

// TestEventsImportInputs replaces os.Stdin, so it does not run in parallel.
func TestEventsImportInputs(t *testing.T) {
	url := testdb.New(t)
	_, err := run(t, "events", "import", t.TempDir(), "--database-url", url)
	require.ErrorContains(t, err, "is a directory: give an NDJSON file, or - for standard input")

	empty := filepath.Join(t.TempDir(), "empty.ndjson")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	out, err := run(t, "events", "import", empty, "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "imported 0, duplicates 0, rejected 0 (of 0 lines)")

	// Standard input, without a final newline.
	stdin, err := os.CreateTemp(t.TempDir(), "stdin")
	require.NoError(t, err)
	_, err = stdin.WriteString(`{"source":"ci","action":"a","resource":"r","resource_id":"1","payload":{},"delivery_id":"s-1"}`)
	require.NoError(t, err)
	_, err = stdin.Seek(0, 0)
	require.NoError(t, err)
	saved := os.Stdin
	os.Stdin = stdin
	t.Cleanup(func() { os.Stdin = saved; stdin.Close() })
	out, err = run(t, "events", "import", "-", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "imported 1, duplicates 0, rejected 0 (of 1 lines)")
}
