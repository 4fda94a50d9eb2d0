package hookreceiver

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"
)

// checkJSON verifies in one pass that data is a single JSON value PostgreSQL
// jsonb will store unchanged in meaning:
//
//   - valid UTF-8 (jsonb rejects anything else in a UTF-8 database);
//   - valid JSON syntax (RFC 8259), nesting at most maxDepth;
//   - no \u0000 escape in any string or key (jsonb cannot convert it to text);
//   - no unpaired UTF-16 surrogate escape (jsonb rejects those too);
//   - every number within the range of PostgreSQL numeric;
//   - no duplicate key in any object. jsonb would silently keep the last
//     value while other parsers keep the first, so a signed body could be
//     read two ways; refusing it removes the ambiguity.
//
// It returns the document with an index of the top-level object's members.
func checkJSON(data []byte, maxDepth int) (*document, error) {
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		return nil, payloadErr(CodeInvalidUTF8, "", off, "body is not valid UTF-8 at byte %d", off)
	}
	c := jsonChecker{data: data, maxDepth: maxDepth}
	c.skipWS()
	if c.pos == len(data) {
		return nil, payloadErr(CodeInvalidJSON, "", 0, "body is empty; send a JSON object")
	}
	start := c.pos
	if err := c.value(0); err != nil {
		return nil, err
	}
	doc := &document{value: data[start:c.pos], members: c.members}
	c.skipWS()
	if c.pos != len(data) {
		return nil, c.syntax("unexpected data after the JSON value")
	}
	return doc, nil
}

// document is a body that passed checkJSON. For an object it keeps the
// top-level members, so pointers into it do not rescan the whole body.
type document struct {
	value   []byte         // the top-level value without surrounding white space
	members []member       // the top-level object's members, in order
	byKey   map[string]int // index into members, built on first use for large objects
}

type member struct {
	key []byte // decoded
	val []byte // raw JSON value
}

func (d *document) isObject() bool { return d.value[0] == '{' }

// eval returns the raw value p refers to, or false.
func (d *document) eval(p jsonPointer) ([]byte, bool) {
	if len(p) == 0 || !d.isObject() {
		return p.eval(d.value)
	}
	i, ok := d.member(p[0])
	if !ok {
		return nil, false
	}
	return p[1:].eval(d.members[i].val)
}

func (d *document) member(key string) (int, bool) {
	if len(d.members) <= keyLinearScanMax {
		for i, m := range d.members {
			if string(m.key) == key {
				return i, true
			}
		}
		return 0, false
	}
	if d.byKey == nil {
		d.byKey = make(map[string]int, len(d.members))
		for i, m := range d.members {
			d.byKey[string(m.key)] = i
		}
	}
	i, ok := d.byKey[key]
	return i, ok
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// Limits of PostgreSQL numeric: at most 16383 digits after the decimal point,
// and a decimal weight below 131072 (the int16 weight counts base-10000
// digits). Exponents of magnitude 2^30-1 or more are refused before anything
// else.
const (
	numericMaxDscale  = 0x3FFF
	numericMaxWeight  = 4*32768 - 1
	numericMaxExp     = 1<<30 - 1
	keyLinearScanMax  = 16 // objects with more keys are sorted to find duplicates
	errorQuoteMaxRune = 64 // longest key quoted in an error message
)

type jsonChecker struct {
	data     []byte
	pos      int
	maxDepth int
	keys     []objectKey // keys of the objects being scanned, innermost last
	members  []member    // members of the top-level object
}

func (c *jsonChecker) syntax(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return payloadErr(CodeInvalidJSON, "", c.pos, "invalid JSON at byte %d: %s", c.pos, msg)
}

func (c *jsonChecker) skipWS() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *jsonChecker) value(depth int) error {
	c.skipWS()
	if c.pos >= len(c.data) {
		return c.syntax("unexpected end of input")
	}
	switch ch := c.data[c.pos]; {
	case ch == '{':
		return c.object(depth + 1)
	case ch == '[':
		return c.array(depth + 1)
	case ch == '"':
		_, _, err := c.str()
		return err
	case ch == '-' || ('0' <= ch && ch <= '9'):
		return c.number()
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	default:
		return c.syntax("unexpected character %q", rune(ch))
	}
}

func (c *jsonChecker) tooDeep(depth int) error {
	if depth > c.maxDepth {
		return payloadErr(CodeNestingTooDeep, "", c.pos, "JSON nesting deeper than %d levels at byte %d", c.maxDepth, c.pos)
	}
	return nil
}

func (c *jsonChecker) object(depth int) error {
	if err := c.tooDeep(depth); err != nil {
		return err
	}
	c.pos++ // '{'
	base := len(c.keys)
	defer func() { c.keys = c.keys[:base] }()
	c.skipWS()
	if c.pos < len(c.data) && c.data[c.pos] == '}' {
		c.pos++
		return nil
	}
	for {
		c.skipWS()
		if c.pos >= len(c.data) || c.data[c.pos] != '"' {
			return c.syntax("expected a string key")
		}
		at := c.pos
		raw, escaped, err := c.str()
		if err != nil {
			return err
		}
		key := raw
		if escaped {
			key = appendUnescaped(nil, raw)
		}
		// Small objects are checked for duplicates as they go; larger ones
		// once, by sorting, when they close.
		if len(c.keys)-base < keyLinearScanMax {
			for _, k := range c.keys[base:] {
				if bytes.Equal(k.key, key) {
					return duplicateKey(key, at)
				}
			}
		}
		c.keys = append(c.keys, objectKey{key: key, at: at})
		c.skipWS()
		if c.pos >= len(c.data) || c.data[c.pos] != ':' {
			return c.syntax("expected ':' after an object key")
		}
		c.pos++
		c.skipWS()
		valAt := c.pos
		if err := c.value(depth); err != nil {
			return err
		}
		if depth == 1 {
			c.members = append(c.members, member{key: key, val: c.data[valAt:c.pos]})
		}
		c.skipWS()
		if c.pos >= len(c.data) {
			return c.syntax("unexpected end of input in an object")
		}
		switch c.data[c.pos] {
		case ',':
			c.pos++
		case '}':
			c.pos++
			if len(c.keys)-base > keyLinearScanMax {
				return sortedDuplicates(c.keys[base:])
			}
			return nil
		default:
			return c.syntax("expected ',' or '}' in an object")
		}
	}
}

// objectKey is a decoded key and the offset of its opening quote.
type objectKey struct {
	key []byte
	at  int
}

// sortedDuplicates reports the first repeated key of one object, sorting ks.
func sortedDuplicates(ks []objectKey) error {
	slices.SortFunc(ks, func(a, b objectKey) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.at, b.at)
	})
	first := -1
	for i := 1; i < len(ks); i++ {
		if bytes.Equal(ks[i-1].key, ks[i].key) && (first < 0 || ks[i].at < ks[first].at) {
			first = i
		}
	}
	if first >= 0 {
		return duplicateKey(ks[first].key, ks[first].at)
	}
	return nil
}

func duplicateKey(key []byte, at int) error {
	return payloadErr(CodeDuplicateKey, "", at, "duplicate key %s at byte %d", quoteKey(key), at)
}

func (c *jsonChecker) array(depth int) error {
	if err := c.tooDeep(depth); err != nil {
		return err
	}
	c.pos++ // '['
	c.skipWS()
	if c.pos < len(c.data) && c.data[c.pos] == ']' {
		c.pos++
		return nil
	}
	for {
		if err := c.value(depth); err != nil {
			return err
		}
		c.skipWS()
		if c.pos >= len(c.data) {
			return c.syntax("unexpected end of input in an array")
		}
		switch c.data[c.pos] {
		case ',':
			c.pos++
		case ']':
			c.pos++
			return nil
		default:
			return c.syntax("expected ',' or ']' in an array")
		}
	}
}

// str scans a string starting at its opening quote and returns its raw
// content (between the quotes) and whether it contains escapes.
func (c *jsonChecker) str() (raw []byte, escaped bool, err error) {
	c.pos++ // '"'
	start := c.pos
	for c.pos < len(c.data) {
		// Eight bytes at a time while none needs attention, then byte-wise.
		for c.pos+8 <= len(c.data) && plainStringWord(binary.LittleEndian.Uint64(c.data[c.pos:])) {
			c.pos += 8
		}
		for c.pos < len(c.data) && plainStringByte[c.data[c.pos]] {
			c.pos++
		}
		if c.pos >= len(c.data) {
			break
		}
		ch := c.data[c.pos]
		switch {
		case ch == '"':
			raw = c.data[start:c.pos]
			c.pos++
			return raw, escaped, nil
		case ch == '\\':
			escaped = true
			if err := c.escape(); err != nil {
				return nil, false, err
			}
		case ch < 0x20:
			return nil, false, c.syntax("control character %#02x in a string must be escaped", ch)
		default:
			c.pos++
		}
	}
	return nil, false, c.syntax("unterminated string")
}

// plainStringByte marks the bytes that need no attention inside a string:
// everything but '"', '\\' and control characters.
var plainStringByte = func() (t [256]bool) {
	for i := range t {
		t[i] = i >= 0x20 && i != '"' && i != '\\'
	}
	return t
}()

// plainStringWord reports whether none of the eight bytes in x is '"', '\\'
// or a control character (the SWAR "has zero byte" and "has byte less than"
// tests; bytes of 0x80 and above never match).
func plainStringWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	control := (x - 0x20*ones) & ^x & highs
	return control|hasZero(x^('"'*ones))|hasZero(x^('\\'*ones)) == 0
}

// escape scans one escape sequence starting at its backslash.
func (c *jsonChecker) escape() error {
	at := c.pos
	if at+1 >= len(c.data) {
		c.pos = len(c.data)
		return c.syntax("unterminated string")
	}
	switch c.data[at+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		c.pos += 2
		return nil
	case 'u':
	default:
		c.pos++
		return c.syntax("invalid escape \\%c", rune(c.data[at+1]))
	}
	r, ok := hex4(c.data, at+2)
	if !ok {
		c.pos = at
		return c.syntax("invalid \\u escape")
	}
	c.pos = at + 6
	switch {
	case r == 0:
		return payloadErr(CodeNULCharacter, "", at, "\\u0000 at byte %d: PostgreSQL jsonb cannot store the NUL character", at)
	case 0xDC00 <= r && r <= 0xDFFF:
		return payloadErr(CodeInvalidUnicodeEscape, "", at, "unpaired low surrogate \\u%04x at byte %d", r, at)
	case 0xD800 <= r && r <= 0xDBFF:
		if c.pos+1 < len(c.data) && c.data[c.pos] == '\\' && c.data[c.pos+1] == 'u' {
			if lo, ok := hex4(c.data, c.pos+2); ok && 0xDC00 <= lo && lo <= 0xDFFF {
				c.pos += 6
				return nil
			}
		}
		return payloadErr(CodeInvalidUnicodeEscape, "", at, "high surrogate \\u%04x at byte %d is not followed by a low surrogate", r, at)
	}
	return nil
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, ch := range b[i : i+4] {
		r <<= 4
		switch {
		case '0' <= ch && ch <= '9':
			r |= rune(ch - '0')
		case 'a' <= ch && ch <= 'f':
			r |= rune(ch - 'a' + 10)
		case 'A' <= ch && ch <= 'F':
			r |= rune(ch - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (c *jsonChecker) literal(word string) error {
	if !bytes.HasPrefix(c.data[c.pos:], []byte(word)) {
		return c.syntax("invalid literal")
	}
	c.pos += len(word)
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and checks that
// PostgreSQL numeric can hold it.
func (c *jsonChecker) number() error {
	start := c.pos
	d := c.data
	if d[c.pos] == '-' {
		c.pos++
	}
	intStart := c.pos
	switch {
	case c.pos < len(d) && d[c.pos] == '0':
		c.pos++
	case c.pos < len(d) && '1' <= d[c.pos] && d[c.pos] <= '9':
		c.pos = digitsEnd(d, c.pos)
	default:
		return c.syntax("invalid number")
	}
	intDigits := d[intStart:c.pos]
	var fracDigits []byte
	if c.pos < len(d) && d[c.pos] == '.' {
		c.pos++
		fs := c.pos
		c.pos = digitsEnd(d, c.pos)
		if c.pos == fs {
			return c.syntax("invalid number: no digit after '.'")
		}
		fracDigits = d[fs:c.pos]
	}
	exp := 0
	if c.pos < len(d) && (d[c.pos] == 'e' || d[c.pos] == 'E') {
		c.pos++
		neg := false
		if c.pos < len(d) && (d[c.pos] == '+' || d[c.pos] == '-') {
			neg = d[c.pos] == '-'
			c.pos++
		}
		es := c.pos
		for c.pos < len(d) && '0' <= d[c.pos] && d[c.pos] <= '9' {
			if exp < numericMaxExp {
				exp = exp*10 + int(d[c.pos]-'0')
			}
			c.pos++
		}
		if c.pos == es {
			return c.syntax("invalid number: no digit in the exponent")
		}
		if exp >= numericMaxExp {
			return c.numberRange(start, "exponent too large")
		}
		if neg {
			exp = -exp
		}
	}
	if dscale := len(fracDigits) - exp; dscale > numericMaxDscale {
		return c.numberRange(start, "more than 16383 digits after the decimal point")
	}
	// Decimal weight of the first non-zero digit; zero has none.
	weight, nonzero := 0, false
	if i := bytes.IndexFunc(intDigits, func(r rune) bool { return r != '0' }); i >= 0 {
		weight, nonzero = len(intDigits)-1-i, true
	} else if i := bytes.IndexFunc(fracDigits, func(r rune) bool { return r != '0' }); i >= 0 {
		weight, nonzero = -(i + 1), true
	}
	if nonzero && weight+exp > numericMaxWeight {
		return c.numberRange(start, "more than 131072 digits before the decimal point")
	}
	return nil
}

func (c *jsonChecker) numberRange(start int, why string) error {
	return payloadErr(CodeNumberOutOfRange, "", start, "number at byte %d is outside the range of PostgreSQL numeric: %s", start, why)
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// quoteKey quotes a key for an error message, shortened to a readable length.
func quoteKey(k []byte) string {
	s := string(k)
	if utf8.RuneCountInString(s) > errorQuoteMaxRune {
		s = string([]rune(s)[:errorQuoteMaxRune]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// appendUnescaped appends the decoded content of a JSON string (without its
// quotes) to dst. Input that checkJSON accepted decodes exactly; anything else
// is copied through without panicking.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		ch := raw[i]
		if ch != '\\' || i+1 >= len(raw) {
			dst = append(dst, ch)
			i++
			continue
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw, i+2)
			if !ok {
				dst = append(dst, ch)
				i++
				continue
			}
			i += 6
			if 0xD800 <= r && r <= 0xDBFF && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if lo, ok := hex4(raw, i+2); ok && 0xDC00 <= lo && lo <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			dst = append(dst, ch)
			i++
			continue
		}
		i += 2
	}
	return dst
}
