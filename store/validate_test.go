package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// badEventCases are events that must be refused, with the field and code
// expected.
func badEventCases() []struct {
	name  string
	edit  func(*store.NewEvent)
	field string
	code  store.ValidationCode
} {
	long := strings.Repeat("é", store.MaxFieldLength+1) // 256 characters, 512 bytes
	deep := strings.Repeat(`{"a":`, store.MaxJSONDepth) + "1" + strings.Repeat("}", store.MaxJSONDepth)
	return []struct {
		name  string
		edit  func(*store.NewEvent)
		field string
		code  store.ValidationCode
	}{
		{"empty source", func(e *store.NewEvent) { e.Source = "" }, "source", store.CodeMissingField},
		{"empty action", func(e *store.NewEvent) { e.Action = "" }, "action", store.CodeMissingField},
		{"empty resource", func(e *store.NewEvent) { e.Resource = "" }, "resource", store.CodeMissingField},
		{"empty resource id", func(e *store.NewEvent) { e.ResourceID = "" }, "resource_id", store.CodeMissingField},
		{"long source", func(e *store.NewEvent) { e.Source = long }, "source", store.CodeFieldTooLong},
		{"long action", func(e *store.NewEvent) { e.Action = long }, "action", store.CodeFieldTooLong},
		{"long resource", func(e *store.NewEvent) { e.Resource = long }, "resource", store.CodeFieldTooLong},
		{"long resource id", func(e *store.NewEvent) { e.ResourceID = long }, "resource_id", store.CodeFieldTooLong},
		{"long delivery id", func(e *store.NewEvent) { e.DeliveryID = long }, "delivery_id", store.CodeFieldTooLong},
		{"invalid UTF-8 source", func(e *store.NewEvent) { e.Source = "git\xffhub" }, "source", store.CodeInvalidUTF8},
		{"NUL in action", func(e *store.NewEvent) { e.Action = "pu\x00sh" }, "action", store.CodeNULCharacter},
		{"missing payload", func(e *store.NewEvent) { e.Payload = nil }, "payload", store.CodeMissingField},
		{"payload array", func(e *store.NewEvent) { e.Payload = json.RawMessage(`[1,2]`) }, "payload", store.CodeNotAnObject},
		{"payload string", func(e *store.NewEvent) { e.Payload = json.RawMessage(`"x"`) }, "payload", store.CodeNotAnObject},
		{"payload null", func(e *store.NewEvent) { e.Payload = json.RawMessage(` null `) }, "payload", store.CodeNotAnObject},
		{"payload not JSON", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{"a":}`) }, "payload", store.CodeInvalidJSON},
		{"payload two values", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{} {}`) }, "payload", store.CodeInvalidJSON},
		{"payload NUL escape", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{"a":"x\u0000y"}`) }, "payload", store.CodeNULCharacter},
		{"payload NUL escape in key", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{"a\u0000":1}`) }, "payload", store.CodeNULCharacter},
		{"payload invalid UTF-8", func(e *store.NewEvent) { e.Payload = json.RawMessage("{\"a\":\"\xc3\x28\"}") }, "payload", store.CodeInvalidUTF8},
		{"payload lone surrogate", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{"a":"\ud800"}`) }, "payload", store.CodeInvalidJSON},
		{"payload huge number", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{"a":1e131072}`) }, "payload", store.CodeInvalidJSON},
		{"payload too deep", func(e *store.NewEvent) { e.Payload = json.RawMessage(`{"x":` + deep + `}`) }, "payload", store.CodeNestingTooDeep},
		{"metadata array", func(e *store.NewEvent) { e.Metadata = json.RawMessage(`[]`) }, "metadata", store.CodeNotAnObject},
		{"metadata NUL escape", func(e *store.NewEvent) { e.Metadata = json.RawMessage(`{"k":"\u0000"}`) }, "metadata", store.CodeNULCharacter},
		{"id without created_at", func(e *store.NewEvent) { e.ID = uuid.Must(uuid.NewV7()) }, "created_at", store.CodeMissingField},
		{"created_at far ahead", func(e *store.NewEvent) { e.CreatedAt = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }, "created_at", store.CodeInvalidValue},
		{"created_at over a day ahead", func(e *store.NewEvent) { e.CreatedAt = time.Now().Add(store.MaxCreatedAhead + time.Minute) }, "created_at", store.CodeInvalidValue},
	}
}

func TestValidateRejectsBadEventsAndWritesNothing(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	for _, tc := range badEventCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := newEvent(1)
			e.DeliveryID = "d-" + tc.name
			tc.edit(&e)

			var verr *store.ValidationError
			err := e.Validate()
			require.ErrorAs(t, err, &verr)
			require.Equal(t, -1, verr.Index)
			require.Equal(t, tc.field, verr.Field)
			require.Equal(t, tc.code, verr.Code, verr.Reason)
			require.Contains(t, err.Error(), tc.field)

			_, _, err = b.store.InsertEvent(ctx, e)
			require.ErrorAs(t, err, &verr)
			require.Equal(t, -1, verr.Index)

			// In a batch, the bad event rejects the whole batch by its index.
			batch := []store.NewEvent{newEvent(10), newEvent(11), e, newEvent(12)}
			_, err = b.store.InsertEvents(ctx, batch)
			require.ErrorAs(t, err, &verr)
			require.Equal(t, 2, verr.Index)
			require.Equal(t, tc.field, verr.Field)
			require.Contains(t, err.Error(), "index 2")
		})
	}
	require.Zero(t, b.eventCount(t), "nothing was written")
	require.Zero(t, b.count(t, `SELECT count(*) FROM omnibridge.hook_event_deliveries`))
}

func TestValidateAcceptsEdgeValues(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)

	deep := strings.Repeat(`[`, store.MaxJSONDepth-1) + strings.Repeat("]", store.MaxJSONDepth-1)
	e := newEvent(1)
	e.Source = strings.Repeat("é", store.MaxFieldLength) // 255 characters in 510 bytes
	e.DeliveryID = strings.Repeat("x", store.MaxFieldLength)
	e.Payload = json.RawMessage(`{"deep":` + deep + `,"escaped":"\\u0000 is not NUL","pair":"\ud83d\ude00",` +
		`"n":[-0, 1e1000, 1.5E-16382, 0.000e-16380, 123456789e131062],"s":"\u00e9\t\"\/",` +
		`"emoji":"😀", "k\u00e9y" : [true,false,null,{}]}`)
	e.Metadata = json.RawMessage(" {\n} ")
	require.NoError(t, e.Validate())
	id, _, err := b.store.InsertEvent(ctx, e)
	require.NoError(t, err)
	got, err := b.store.GetEvent(ctx, id)
	require.NoError(t, err)
	require.Equal(t, e.Source, got.Source)
}

// TestValidateAgreesWithPostgres checks the single-pass JSON validation against
// PostgreSQL's jsonb input on hand-picked edge cases and on thousands of random
// mutations of JSON documents: an accepted document must be storable and a
// refused one must be one PostgreSQL refuses (nesting depth, a policy of ours,
// aside).
func TestValidateAgreesWithPostgres(t *testing.T) {
	t.Parallel()
	b := setupEvents(t)
	ctx := testCtx(t)
	_, err := b.pool.Exec(ctx, `
CREATE FUNCTION public.jsonb_accepts(doc bytea) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM convert_from(doc, 'UTF8')::jsonb;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END $$`)
	require.NoError(t, err)

	docs := jsonEdgeCases()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 6000 {
		docs = append(docs, mutateJSON(rng, randomJSON(rng, 0)))
	}
	for range 1500 {
		docs = append(docs, randomNumber(rng))
	}

	raw := make([][]byte, len(docs))
	for i, d := range docs {
		raw[i] = []byte(`{"v":` + d + `}`)
	}
	rows, err := b.pool.Query(ctx, `SELECT public.jsonb_accepts(d) FROM unnest($1::bytea[]) WITH ORDINALITY AS t(d, n) ORDER BY n`, raw)
	require.NoError(t, err)
	pgOK, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	require.NoError(t, err)
	require.Len(t, pgOK, len(docs))

	accepted, refused := 0, 0
	for i, d := range docs {
		e := newEvent(1)
		e.Payload = raw[i]
		err := e.Validate()
		var verr *store.ValidationError
		if err != nil && errors.As(err, &verr) && verr.Code == store.CodeNestingTooDeep {
			continue
		}
		require.Equal(t, pgOK[i], err == nil, "document %q: PostgreSQL accepts: %v, we say: %v", d, pgOK[i], err)
		if err == nil {
			accepted++
		} else {
			refused++
		}
	}
	t.Logf("%d documents: %d accepted, %d refused by both", len(docs), accepted, refused)
	require.Greater(t, accepted, 1000)
	require.Greater(t, refused, 1000)
}

func jsonEdgeCases() []string {
	return []string{
		`1e1000`, `1e1001`, `1e-1000`, `1e-16383`, `1e-16384`, `0.0000001e-1000`, `1e131071`, `1e131072`,
		`9.99e131071`, `0.1e131072`, `0.01e131073`, `1e200000`, `0e200000`, `0e1073741822`, `0e1073741823`,
		`0e-1073741822`, `1e2147483647`, `1e99999999999999999999`, `-0`, `-0.0`, `0.0e-16383`, `0.0e-16384`,
		`1.` + strings.Repeat("0", 16383), `1.` + strings.Repeat("0", 16384), "1" + strings.Repeat("0", 131071),
		"1" + strings.Repeat("0", 131072), `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `-01`, `+1`, `1E+2`, `1e05`,
		`NaN`, `Infinity`, `-Infinity`, `0x10`, `1_000`,
		`"\u0000"`, `"\\u0000"`, `"\ud800"`, `"\udc00"`, `"\ud800\udc00"`, `"\ud800x"`, `"\ud800\ud800"`,
		`"\udbff\udfff"`, `"\uDBFF\uDFFF"`, `"\ud800\u0041"`, `"\u00"`, `"\u00zz"`, `"\x"`, `"\'"`, `"\/"`,
		"\"a\tb\"", "\"a\x7fb\"", "\"\x01\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xc0\xaf\"",
		"\"\xef\xbb\xbf\"", "\xef\xbb\xbf{}", `[1,]`, `{"a":1,}`, `[,1]`, `{,}`, `{"a" 1}`, `{1:2}`, `[1 2]`,
		`true`, `tru`, `truex`, `nul`, `null`, `false`, `[]`, `{}`, `[[]]`, `{"":""}`, `"`, `"abc`, `[`, `]`,
		` [ 1 , 2 ] `, "\t\r\n[1]\n", "\v1", "\f1", `{"a":1}{"b":2}`, "\"\x00\"", `"é"`, `"\u00e9"`, `"\uFFFF"`,
	}
}

// randomJSON builds a random document from pieces that exercise the validator.
func randomJSON(rng *rand.Rand, depth int) string {
	k := rng.IntN(10)
	if depth > 4 {
		k = 5 + rng.IntN(5)
	}
	switch k {
	case 0, 1:
		var sb strings.Builder
		sb.WriteByte('{')
		for i := range rng.IntN(4) {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(randomString(rng) + ":" + randomJSON(rng, depth+1))
		}
		sb.WriteByte('}')
		return sb.String()
	case 2, 3:
		parts := make([]string, rng.IntN(4))
		for i := range parts {
			parts[i] = randomJSON(rng, depth+1)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case 4, 5:
		return randomString(rng)
	case 6, 7:
		return randomNumber(rng)
	default:
		return []string{"true", "false", "null"}[rng.IntN(3)]
	}
}

func randomString(rng *rand.Rand) string {
	pieces := []string{"a", "Z", " ", "é", "😀", `\"`, `\\`, `\/`, `\n`, `\t`, `\u0041`, `\u00e9`, `\u0000`,
		`\ud83d\ude00`, `\ud800`, `\udc00`, `\uzzzz`, `\q`, "\x01", "\x7f", "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80"}
	bad := map[string]bool{`\u0000`: true, `\ud800`: true, `\udc00`: true, `\uzzzz`: true, `\q`: true,
		"\x01": true, "\x7f": true, "\xff": true, "\xc3": true, "\xe2\x82": true, "\xed\xa0\x80": true}
	var sb strings.Builder
	sb.WriteByte('"')
	for range rng.IntN(6) {
		p := pieces[rng.IntN(len(pieces))]
		// Keep most strings valid so that the mutations test the rest.
		if bad[p] && rng.IntN(4) != 0 {
			p = "b"
		}
		sb.WriteString(p)
	}
	sb.WriteByte('"')
	return sb.String()
}

func randomNumber(rng *rand.Rand) string {
	var sb strings.Builder
	if rng.IntN(3) == 0 {
		sb.WriteByte('-')
	}
	switch rng.IntN(4) {
	case 0:
		sb.WriteByte('0')
	default:
		sb.WriteString(fmt.Sprint(1 + rng.IntN(999)))
		for range rng.IntN(3) {
			sb.WriteString(strings.Repeat("0", rng.IntN(8)) + fmt.Sprint(rng.IntN(1000)))
		}
	}
	if rng.IntN(2) == 0 {
		sb.WriteString("." + strings.Repeat("0", rng.IntN(5)) + fmt.Sprint(rng.IntN(1000)))
	}
	if rng.IntN(2) == 0 {
		sb.WriteString([]string{"e", "E", "e+", "e-", "E-"}[rng.IntN(5)])
		bases := []int{0, 5, 1000, 16380, 16383, 16384, 131068, 131071, 131072, 1073741822, 1073741823}
		sb.WriteString(fmt.Sprint(bases[rng.IntN(len(bases))] + rng.IntN(7) - 3))
	}
	s := sb.String()
	s = strings.Replace(s, "-", "", strings.Count(s, "-")-strings.Count(s, "e-")-strings.Count(s, "E-")-1)
	return s
}

// mutateJSON makes a small random change to a document, most of the time.
func mutateJSON(rng *rand.Rand, doc string) string {
	if rng.IntN(3) == 0 || doc == "" {
		return doc
	}
	b := []byte(doc)
	i := rng.IntN(len(b))
	junk := []byte(`{}[],:"\ u0e-+.1 tfn` + "\x00\x80\xff\t\n")
	switch rng.IntN(3) {
	case 0:
		b[i] = junk[rng.IntN(len(junk))]
	case 1:
		b = append(b[:i], b[i+1:]...)
	default:
		b = append(b[:i], append([]byte{junk[rng.IntN(len(junk))]}, b[i:]...)...)
	}
	return string(b)
}

func BenchmarkValidate(b *testing.B) {
	payload := realisticPayload(0)
	big := []byte(`{"items":[`)
	for i := range 200 {
		if i > 0 {
			big = append(big, ',')
		}
		big = append(big, payload...)
	}
	big = append(big, "]}"...)
	for _, bc := range []struct {
		name string
		doc  []byte
	}{{"500B", payload}, {"100KB", big}} {
		e := newEvent(1)
		e.Payload = bc.doc
		b.Run("ours/"+bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.doc)))
			for b.Loop() {
				if err := e.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("json.Valid/"+bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.doc)))
			for b.Loop() {
				if !json.Valid(bc.doc) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// realisticPayload is a GitHub-like push payload of about 500 bytes.
func realisticPayload(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"ref":"refs/heads/main","before":"9049f1265b7d61be4a8904a9a27120d2064dab3b",`+
		`"after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"id":%d,"name":"omnibridge",`+
		`"full_name":"omnibridge/omnibridge","private":false},"pusher":{"name":"octocat","email":"octo@example.com"},`+
		`"head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Update README (#%d)",`+
		`"timestamp":"%s","added":[],"removed":[],"modified":["README.md"]}}`,
		1296269+i, i, time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Second).Format(time.RFC3339)))
}
