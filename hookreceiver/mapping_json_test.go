package hookreceiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckJSON lists bodies with the verdict PostgreSQL 15 gives when casting
// them to jsonb (checked by hand with psql), except for duplicate keys, which
// jsonb accepts and we refuse on purpose.
func TestCheckJSON(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	cases := []struct {
		body string
		code string // "" = accepted
	}{
		{`{}`, ""},
		{` {"a": [1, -2.5e3, 0, -0, true, false, null, "x"]} `, ""},
		{"\t\r\n{\"a\":1}\n", ""},
		{`"top-level string"`, ""},
		{`{"é":"ünïcødé 😀"}`, ""},
		{`{"a":"\"\\\/\b\f\n\r\t"}`, ""},

		// NUL: escaped NUL is refused in values and keys, anywhere.
		{`{"a":"\u0000"}`, CodeNULCharacter},
		{`{"a":"x\u0000y"}`, CodeNULCharacter},
		{`{"\u0000":1}`, CodeNULCharacter},
		{`{"a":{"b":["\u0000"]}}`, CodeNULCharacter},
		{`{"a":"\\\u0000"}`, CodeNULCharacter}, // an escaped backslash, then \u0000
		// ...but not the text \u0000 behind an escaped backslash.
		{`{"a":"\\u0000"}`, ""},
		{`{"\\u0000":"\\\\u0000"}`, ""},
		{`{"a":"\u00000"}`, CodeNULCharacter},
		{`{"a":"\u0001"}`, ""},
		{`{"a":"\u0100"}`, ""},
		{"{\"a\":\"\x00\"}", CodeInvalidJSON}, // a raw NUL is a control character

		// Surrogates must pair.
		{`{"a":"\ud83d\ude00"}`, ""},
		{`{"a":"\uD83D\uDE00"}`, ""},
		{`{"a":"\udbff\udfff"}`, ""},
		{`{"a":"\ud800"}`, CodeInvalidUnicodeEscape},
		{`{"a":"\udc00"}`, CodeInvalidUnicodeEscape},
		{`{"a":"\ud800\u0041"}`, CodeInvalidUnicodeEscape},
		{`{"a":"\ud800\ud800"}`, CodeInvalidUnicodeEscape},
		{`{"a":"\ude00\ud83d"}`, CodeInvalidUnicodeEscape},
		{`{"\ud800":1}`, CodeInvalidUnicodeEscape},
		{`{"a":"\uffff"}`, ""},

		// Numbers: JSON grammar, then the range of numeric.
		{`{"n":1e131071}`, ""},
		{`{"n":9.99e131071}`, ""},
		{`{"n":0.001e131074}`, ""},
		{`{"n":1e131072}`, CodeNumberOutOfRange},
		{`{"n":1e-16383}`, ""},
		{`{"n":123456789e-16380}`, ""},
		{`{"n":1e-16384}`, CodeNumberOutOfRange},
		{`{"n":1.5e-16383}`, CodeNumberOutOfRange},
		{`{"n":100000e-16385}`, CodeNumberOutOfRange},
		{`{"n":0e1073741822}`, ""},
		{`{"n":0e1073741823}`, CodeNumberOutOfRange},
		{`{"n":0e-99999}`, CodeNumberOutOfRange},
		{`{"n":1e2147483648}`, CodeNumberOutOfRange},
		{`{"n":1E+2}`, ""},
		{`{"n":01}`, CodeInvalidJSON},
		{`{"n":+1}`, CodeInvalidJSON},
		{`{"n":1.}`, CodeInvalidJSON},
		{`{"n":.5}`, CodeInvalidJSON},
		{`{"n":1e}`, CodeInvalidJSON},
		{`{"n":-}`, CodeInvalidJSON},
		{`{"n":NaN}`, CodeInvalidJSON},
		{`{"n":Infinity}`, CodeInvalidJSON},

		// Syntax.
		{``, CodeInvalidJSON},
		{`   `, CodeInvalidJSON},
		{`{`, CodeInvalidJSON},
		{`{"a":1,}`, CodeInvalidJSON},
		{`{"a" 1}`, CodeInvalidJSON},
		{`{a:1}`, CodeInvalidJSON},
		{`{'a':1}`, CodeInvalidJSON},
		{`{"a":1}{}`, CodeInvalidJSON},
		{`{"a":1} x`, CodeInvalidJSON},
		{`[1,2`, CodeInvalidJSON},
		{`[1 2]`, CodeInvalidJSON},
		{`{"a":"unterminated}`, CodeInvalidJSON},
		{`{"a":"\x"}`, CodeInvalidJSON},
		{`{"a":"\u12"}`, CodeInvalidJSON},
		{`{"a":"\u12G4"}`, CodeInvalidJSON},
		{`{"a":"\`, CodeInvalidJSON},
		{"{\"a\":\"tab\there\"}", CodeInvalidJSON},
		{`{"a":tru}`, CodeInvalidJSON},
		{`{"a":nul}`, CodeInvalidJSON},
		{`{"a":True}`, CodeInvalidJSON},
		{"\ufeff{}", CodeInvalidJSON}, // a byte order mark is not JSON
		{`// comment` + "\n{}", CodeInvalidJSON},

		// UTF-8.
		{"{\"a\":\"\xff\"}", CodeInvalidUTF8},
		{"{\"a\":\"\xc3\"}", CodeInvalidUTF8},
		{"{\"a\":\"\xed\xa0\x80\"}", CodeInvalidUTF8}, // an encoded surrogate
		{"{\"\xc0\xaf\":1}", CodeInvalidUTF8},         // overlong

		// Nesting: the limit is 64 here.
		{deep(64), ""},
		{deep(65), CodeNestingTooDeep},
		{deepObj(64), ""},
		{deepObj(65), CodeNestingTooDeep},
		{deep(100000), CodeNestingTooDeep},

		// Duplicate keys, also when spelt differently.
		{`{"a":1,"a":2}`, CodeDuplicateKey},
		{`{"a":1,"\u0061":2}`, CodeDuplicateKey},
		{`{"a/b":1,"a\/b":2}`, CodeDuplicateKey},
		{`{"x":{"a":1,"b":{"a":2},"a":3}}`, CodeDuplicateKey},
		{`{"a":{"a":{"a":1}}}`, ""},
		{`[{"a":1},{"a":1}]`, ""},
		{`{"A":1,"a":2}`, ""},
	}
	for _, tc := range cases {
		_, err := checkJSON([]byte(tc.body), 64)
		name := tc.body
		if len(name) > 80 {
			name = name[:80] + "…"
		}
		if tc.code == "" {
			require.NoError(t, err, "%q", name)
			require.True(t, json.Valid([]byte(tc.body)), "accepted bodies are JSON for encoding/json too: %q", name)
			continue
		}
		var pe *PayloadError
		require.ErrorAs(t, err, &pe, "%q", name)
		require.Equal(t, tc.code, pe.Code, "%q: %v", name, err)
		require.GreaterOrEqual(t, pe.Offset, 0)
		require.LessOrEqual(t, pe.Offset, len(tc.body))
	}
}

func TestCheckJSONDuplicateKeysInLargeObjects(t *testing.T) {
	t.Parallel()
	// Past keyLinearScanMax the check switches to a map; both halves must
	// catch a duplicate wherever it is.
	// Each regime of the check (compare, sort, hash) and both borders.
	for _, n := range []int{keyLinearScanMax - 1, keyLinearScanMax, keyLinearScanMax + 1,
		keySortMax - 1, keySortMax, keySortMax + 1, 5000} {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":{"k%d":%d},`, i, i, i)
		}
		unique := b.String() + `"last":0}`
		_, err := checkJSON([]byte(unique), 64)
		require.NoError(t, err, "n=%d", n)
		for _, dupOf := range []int{0, n / 2, n - 1} {
			body := b.String() + fmt.Sprintf(`"k%d":0}`, dupOf)
			_, err := checkJSON([]byte(body), 64)
			var pe *PayloadError
			require.ErrorAs(t, err, &pe, "n=%d dup=%d", n, dupOf)
			require.Equal(t, CodeDuplicateKey, pe.Code)
			require.Contains(t, pe.Error(), fmt.Sprintf(`"k%d"`, dupOf))
		}
	}
}

func TestDocumentIndex(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, keyLinearScanMax, keyLinearScanMax + 1, 1000} {
		var b strings.Builder
		b.WriteString(" {")
		for i := range n {
			fmt.Fprintf(&b, `"k%d" : {"v":[%d, "s\\\"]"]} ,`, i, i)
		}
		b.WriteString(`"k\u002fx":"y"} `)
		d, err := checkJSON([]byte(b.String()), 64)
		require.NoError(t, err)
		require.Len(t, d.members, n+1)
		for _, i := range []int{0, n / 2, n - 1} {
			if i < 0 || i >= n {
				continue
			}
			v, ok := d.eval(jsonPointer{fmt.Sprintf("k%d", i), "v", "0"})
			require.True(t, ok)
			require.Equal(t, fmt.Sprint(i), string(v))
			v, ok = d.eval(jsonPointer{fmt.Sprintf("k%d", i), "v", "1"})
			require.True(t, ok)
			require.Equal(t, `"s\\\"]"`, string(v))
		}
		v, ok := d.eval(jsonPointer{"k/x"})
		require.True(t, ok, "keys are matched decoded")
		require.Equal(t, `"y"`, string(v))
		_, ok = d.eval(jsonPointer{fmt.Sprintf("k%d", n)})
		require.False(t, ok)
	}
}

func TestCheckJSONOffsets(t *testing.T) {
	t.Parallel()
	body := `{"ok":"fine","bad":"\u0000"}`
	_, err := checkJSON([]byte(body), 64)
	var pe *PayloadError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, strings.Index(body, `\u0000`), pe.Offset)

	body = "{\"a\":\"é\xff\"}"
	_, err = checkJSON([]byte(body), 64)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, strings.IndexByte(body, 0xff), pe.Offset)
}

func TestJSONPointer(t *testing.T) {
	t.Parallel()
	// The example document of RFC 6901, section 5.
	doc := []byte(`{
      "foo": ["bar", "baz"],
      "": 0,
      "a/b": 1,
      "c%d": 2,
      "e^f": 3,
      "g|h": 4,
      "i\\j": 5,
      "k\"l": 6,
      " ": 7,
      "m~n": 8
   }`)
	d, err := checkJSON(doc, 64)
	require.NoError(t, err)
	cases := []struct{ ptr, want string }{
		{"", string(doc)},
		{"/foo", `["bar", "baz"]`},
		{"/foo/0", `"bar"`},
		{"/foo/1", `"baz"`},
		{"/", "0"},
		{"/a~1b", "1"},
		{"/c%d", "2"},
		{"/e^f", "3"},
		{"/g|h", "4"},
		{"/i\\j", "5"},
		{"/k\"l", "6"},
		{"/ ", "7"},
		{"/m~0n", "8"},
	}
	for _, tc := range cases {
		p, err := parsePointer(tc.ptr)
		require.NoError(t, err, tc.ptr)
		require.Equal(t, tc.ptr, p.String())
		got, ok := p.eval(doc)
		require.True(t, ok, tc.ptr)
		require.Equal(t, strings.TrimSpace(tc.want), string(got), tc.ptr)
		got, ok = d.eval(p)
		require.True(t, ok, tc.ptr)
		require.Equal(t, strings.TrimSpace(tc.want), string(got), "through the index: %s", tc.ptr)
	}
	for _, missing := range []string{"/nope", "/foo/2", "/foo/-", "/foo/01", "/foo/x", "/foo/0/x", "/a~1b/c", "/m~n"} {
		p, err := parsePointer(missing)
		if err != nil {
			continue // "/m~n" is not even a pointer
		}
		_, ok := p.eval(doc)
		require.False(t, ok, missing)
		_, ok = d.eval(p)
		require.False(t, ok, missing)
	}
	for _, bad := range []string{"foo", "/a~", "/a~2", "#/foo", "~1"} {
		_, err := parsePointer(bad)
		require.Error(t, err, bad)
	}
	p, err := parsePointer("/~01")
	require.NoError(t, err)
	require.Equal(t, jsonPointer{"~1"}, p, `"~01" decodes to "~1", not "/"`)
}

func TestJSONPointerEscapedKeys(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"\u0061ction":"opened","nested":{"k\"ey":[10,{"x":"\u00e9"}]},"s":"a\nb"}`)
	d, err := checkJSON(doc, 64)
	require.NoError(t, err)
	x := &extraction{doc: d}
	v, err := x.stringAt(jsonPointer{"action"}, "action")
	require.NoError(t, err)
	require.Equal(t, "opened", v)
	v, err = x.stringAt(jsonPointer{"nested", `k"ey`, "1", "x"}, "f")
	require.NoError(t, err)
	require.Equal(t, "é", v)
	v, err = x.stringAt(jsonPointer{"nested", `k"ey`, "0"}, "f")
	require.NoError(t, err)
	require.Equal(t, "10", v)
	v, err = x.stringAt(jsonPointer{"s"}, "f")
	require.NoError(t, err)
	require.Equal(t, "a\nb", v)
	_, err = x.stringAt(jsonPointer{"nested"}, "resource")
	var pe *PayloadError
	require.True(t, errors.As(err, &pe))
	require.Equal(t, CodeInvalidField, pe.Code)
	require.Equal(t, "resource", pe.Field)
}

func TestAppendUnescaped(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", `a\"b`, `\\`, `\/\b\f\n\r\t`, `\u00e9\u4e2d\ud83d\ude00`, `\\u0000`, `x\u0041y`} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(`"`+s+`"`), &want))
		require.Equal(t, want, string(appendUnescaped(nil, []byte(s))), s)
	}
	// Malformed input never panics.
	for _, s := range []string{`\`, `\u`, `\u12`, `\ud800\u`, `\q`} {
		require.NotPanics(t, func() { appendUnescaped(nil, []byte(s)) }, s)
	}
}

func TestPlainStringWord(t *testing.T) {
	t.Parallel()
	// Every byte value in every lane agrees with the byte table.
	for lane := range 8 {
		for b := range 256 {
			word := []byte("abcdefgh")
			word[lane] = byte(b)
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(word[i])
			}
			require.Equal(t, plainStringByte[b], plainStringWord(x), "lane %d byte %#x", lane, b)
		}
	}
}

// TestKeySetCollisions forces every key into one hash bucket, so duplicates
// are found by comparing bytes along the overflow list.
func TestKeySetCollisions(t *testing.T) {
	t.Parallel()
	data := []byte(`{"a":1,"b":2,"\u0061":3,"c":4,"b":5}`)
	s := newKeySet(data)
	s.hash = func([]byte) uint64 { return 7 }
	var offsets []int
	for i := range data {
		if data[i] == '"' && (data[i-1] == '{' || data[i-1] == ',') {
			offsets = append(offsets, i)
		}
	}
	keys := []string{"a", "b", "a", "c", "b"}
	want := []bool{false, false, true, false, true}
	for i, k := range keys {
		require.Equal(t, want[i], s.add([]byte(k), offsets[i]), "key %d %q", i, k)
	}
	require.Len(t, s.overflow, 2, `"b" and "c" share the bucket of "a"`)
}

// TestDuplicateKeysAgainstMap compares the duplicate check with a plain map on
// random objects of every size regime, with keys drawn from a small set (so
// duplicates are common) and sometimes spelt with escapes.
func TestDuplicateKeysAgainstMap(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(6, 7))
	for range 60 {
		n := r.IntN(2 * keySortMax)
		pool := 1 + r.IntN(4*n+1)
		var b strings.Builder
		b.WriteString("{")
		seen := map[string]bool{}
		dup := false
		for i := range n {
			k := fmt.Sprintf("k%d", r.IntN(pool))
			dup = dup || seen[k]
			seen[k] = true
			if i > 0 {
				b.WriteString(",")
			}
			spelt := k
			if r.IntN(8) == 0 {
				spelt = `\u006b` + k[1:] // "k" escaped
			}
			fmt.Fprintf(&b, `"%s":{"%s":1}`, spelt, spelt)
		}
		b.WriteString("}")
		_, err := checkJSON([]byte(b.String()), 64)
		if dup {
			require.Equal(t, CodeDuplicateKey, PayloadCode(err), "n=%d pool=%d", n, pool)
		} else {
			require.NoError(t, err, "n=%d pool=%d", n, pool)
		}
	}
}
