package hookreceiver

import (
	"bytes"
	"fmt"
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
// It returns the first byte of the top-level value ('{' for an object).
func checkJSON(data []byte, maxDepth int) (byte, error) {
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		return 0, payloadErr(CodeInvalidUTF8, "", off, "body is not valid UTF-8 at byte %d", off)
	}
	c := jsonChecker{data: data, maxDepth: maxDepth}
	c.skipWS()
	if c.pos == len(data) {
		return 0, payloadErr(CodeInvalidJSON, "", 0, "body is empty; send a JSON object")
	}
	top := data[c.pos]
	if err := c.value(0); err != nil {
		return 0, err
	}
	c.skipWS()
	if c.pos != len(data) {
		return 0, c.syntax("unexpected data after the JSON value")
	}
	return top, nil
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
	keyLinearScanMax  = 16 // objects with more keys use a map for duplicates
	errorQuoteMaxRune = 64 // longest key quoted in an error message
)

type jsonChecker struct {
	data     []byte
	pos      int
	maxDepth int
	keys     [][]byte // keys of the objects being scanned, innermost last
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
	var set map[string]struct{}
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
		keyAt := c.pos
		raw, escaped, err := c.str()
		if err != nil {
			return err
		}
		key := raw
		if escaped {
			key = appendUnescaped(nil, raw)
		}
		dup := false
		if set != nil {
			_, dup = set[string(key)]
			set[string(key)] = struct{}{}
		} else {
			for _, k := range c.keys[base:] {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			c.keys = append(c.keys, key)
			if len(c.keys)-base > keyLinearScanMax {
				set = make(map[string]struct{}, 2*keyLinearScanMax)
				for _, k := range c.keys[base:] {
					set[string(k)] = struct{}{}
				}
			}
		}
		if dup {
			return payloadErr(CodeDuplicateKey, "", keyAt, "duplicate key %s at byte %d", quoteKey(key), keyAt)
		}
		c.skipWS()
		if c.pos >= len(c.data) || c.data[c.pos] != ':' {
			return c.syntax("expected ':' after an object key")
		}
		c.pos++
		if err := c.value(depth); err != nil {
			return err
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
			return nil
		default:
			return c.syntax("expected ',' or '}' in an object")
		}
	}
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
