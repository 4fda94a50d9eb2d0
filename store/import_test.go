package store_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/store"
)

func TestImportNDJSONGoodDuplicateAndBadLines(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	exportedID := uuid.Must(uuid.NewV7())
	lines := []string{
		/* 1 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r1","payload":{"n":1},"delivery_id":"d1"}`,
		/* 2 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r2","payload":{"n":2},"metadata":{"ip":"10.0.0.2"}}`,
		/* 3 */ ``,
		/* 4 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r1","payload":{"n":1},"delivery_id":"d1"}`,
		/* 5 */ `not json`,
		/* 6 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r6","payload":[1]}`,
		/* 7 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r7","payload":{"s":"a\u0000b"}}`,
		/* 8 */ `{"source":"` + strings.Repeat("s", 256) + `","action":"push","resource":"repository","resource_id":"r8","payload":{}}`,
		/* 9 */ `{"source":"github","action":"push","resource":"repository","payload":{}}`,
		/* 10 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r10","payload":{},"id":"` + exportedID.String() + `","created_at":"2024-05-01T12:00:00.5Z","status":"processed"}`,
		/* 11 */ "{\"source\":\"git\xffhub\",\"action\":\"push\",\"resource\":\"repository\",\"resource_id\":\"r11\",\"payload\":{}}",
		/* 12 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r12","payload":{},"delivery_id":"d12"}` + "\r",
		/* 13 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r13","payload":{},"created_at":"yesterday"}`,
		/* 14 */ `{"source":42,"action":"push","resource":"repository","resource_id":"r14","payload":{}}`,
		/* 15 */ `{"source":"github","action":"push","resource":"repository","resource_id":"r15","payload":{"big":"` + strings.Repeat("x", 600) + `"}}`,
		/* 16 */ `["an array"]`,
		/* 17 */ `{"source":"gh\u0069","action":"push","resource":"repository","resource_id":"r17","payload":{"deep":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`,
		/* 18 */ `  {"source":"github","action":"push","resource":"repository","resource_id":"r18","payload":{},"delivery_id":null,"metadata":null}  `,
	}
	input := strings.Join(lines, "\n") + "\n"

	var progress []int64
	sum, err := b.store.ImportNDJSON(ctx, strings.NewReader(input), store.ImportOptions{
		BatchSize: 2, MaxLineBytes: 512, Progress: func(done int64) { progress = append(progress, done) },
	})
	require.NoError(t, err)
	require.Equal(t, 18, sum.Lines)
	require.Equal(t, 5, sum.Imported, "lines 1, 2, 10, 12, 18")
	require.Equal(t, 1, sum.Duplicates, "line 4")

	wantRejected := map[int]store.ValidationCode{
		5: store.CodeInvalidJSON, 6: store.CodeNotAnObject, 7: store.CodeNULCharacter, 8: store.CodeFieldTooLong,
		9: store.CodeMissingField, 11: store.CodeInvalidUTF8, 13: store.CodeInvalidValue, 14: store.CodeWrongType,
		15: store.CodeTooLarge, 16: store.CodeNotAnObject, 17: store.CodeNestingTooDeep,
	}
	require.Equal(t, len(wantRejected), sum.RejectedCount)
	require.Len(t, sum.Rejected, len(wantRejected))
	prev := 0
	for _, le := range sum.Rejected {
		require.Greater(t, le.Line, prev, "in input order")
		prev = le.Line
		var verr *store.ValidationError
		require.True(t, errors.As(le.Err, &verr), "line %d: %v", le.Line, le.Err)
		require.Equal(t, wantRejected[le.Line], verr.Code, "line %d: %v", le.Line, le.Err)
		require.Contains(t, le.Error(), fmt.Sprintf("line %d: ", le.Line))
	}
	byLine := map[int]*store.ValidationError{}
	for _, le := range sum.Rejected {
		var verr *store.ValidationError
		errors.As(le.Err, &verr)
		byLine[le.Line] = verr
	}
	require.Equal(t, "payload", byLine[7].Field)
	require.Equal(t, "source", byLine[8].Field)
	require.Equal(t, "resource_id", byLine[9].Field)
	require.Equal(t, "source", byLine[11].Field)
	require.Equal(t, "created_at", byLine[13].Field)
	require.Equal(t, "payload", byLine[17].Field)

	require.Equal(t, 5, b.eventCount(t))
	got, err := b.store.GetEvent(ctx, exportedID)
	require.NoError(t, err)
	require.True(t, time.Date(2024, 5, 1, 12, 0, 0, 5e8, time.UTC).Equal(got.CreatedAt))
	require.Equal(t, store.EventPending, got.Status, "unknown keys such as status are ignored")
	page, err := b.store.ListEvents(ctx, store.EventFilter{Source: "github"})
	require.NoError(t, err)
	byResource := map[string]store.HookEvent{}
	for _, e := range page.Events {
		byResource[e.ResourceID] = e
	}
	require.Equal(t, "d12", byResource["r12"].DeliveryID, "CRLF line endings are fine")
	require.JSONEq(t, `{"ip":"10.0.0.2"}`, string(byResource["r2"].Metadata))

	require.NotEmpty(t, progress)
	require.Equal(t, int64(len(input)), progress[len(progress)-1], "progress ends at the input size")
	for i := 1; i < len(progress); i++ {
		require.GreaterOrEqual(t, progress[i], progress[i-1])
	}

	// Importing the same file again stores only the events without a delivery
	// id or explicit id.
	again, err := b.store.ImportNDJSON(ctx, strings.NewReader(input), store.ImportOptions{MaxLineBytes: 512})
	require.NoError(t, err)
	require.Equal(t, 2, again.Imported, "lines 2 and 18")
	require.Equal(t, 4, again.Duplicates, "lines 1, 4, 10, 12")
	require.Equal(t, 7, b.eventCount(t))
}

func TestImportNDJSONLimitsAndErrors(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	// A huge line is skipped without being held, and the next line still counts.
	good := `{"source":"s","action":"a","resource":"r","resource_id":"1","payload":{}}`
	input := io.MultiReader(strings.NewReader(`{"payload":"`), strings.NewReader(strings.Repeat("x", 5<<20)),
		strings.NewReader("\"}\n"+good))
	sum, err := b.store.ImportNDJSON(ctx, input, store.ImportOptions{MaxLineBytes: 4096, MaxRejected: 1})
	require.NoError(t, err)
	require.Equal(t, 2, sum.Lines)
	require.Equal(t, 1, sum.Imported)
	require.Equal(t, 1, sum.RejectedCount)
	require.Equal(t, 1, sum.Rejected[0].Line)

	// Only MaxRejected errors are kept, all are counted.
	sum, err = b.store.ImportNDJSON(ctx, strings.NewReader("x\ny\nz\n"), store.ImportOptions{MaxRejected: 2})
	require.NoError(t, err)
	require.Equal(t, 3, sum.RejectedCount)
	require.Len(t, sum.Rejected, 2)

	// A read error stops the import and says where.
	broken := io.MultiReader(strings.NewReader(good+"\n"), errReader{})
	sum, err = b.store.ImportNDJSON(ctx, broken, store.ImportOptions{})
	require.ErrorContains(t, err, "read line 2")
	require.Equal(t, 1, sum.Lines)

	_, err = b.store.ImportNDJSON(ctx, strings.NewReader(""), store.ImportOptions{BatchSize: -1, MaxLineBytes: 1})
	require.ErrorContains(t, err, "BatchSize")
	require.ErrorContains(t, err, "MaxLineBytes")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestImportCountsWhatAFailedBatchStored: a batch whose insert committed
// before a later statement of it failed (the lookup of its duplicates) is
// counted in the summary for what it stored, so that "imported" means stored.
func TestImportCountsWhatAFailedBatchStored(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	line := func(rid, delivery string) string {
		return fmt.Sprintf(`{"source":"s","action":"a","resource":"r","resource_id":%q,"payload":{},"delivery_id":%q}`, rid, delivery)
	}
	sum, err := b.store.ImportNDJSON(ctx, strings.NewReader(line("1", "d-1")), store.ImportOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, sum.Imported)

	flaky := store.New(testdb.FailingQueries{DB: b.client, Match: "JOIN unnest"}) // the delivery lookup
	input := strings.Join([]string{line("2", "d-2"), line("1", "d-1"), line("3", "d-3")}, "\n")
	sum, err = flaky.ImportNDJSON(ctx, strings.NewReader(input), store.ImportOptions{})
	var pe *store.PartialInsertError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 2, sum.Imported, "d-2 and d-3 are stored")
	require.Zero(t, sum.Duplicates, "d-1's duplicate was not resolved")
	require.Equal(t, 3, b.eventCount(t))
}
