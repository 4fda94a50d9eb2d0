package hookreceiver

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

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

// Limits of PostgreSQL numeric: at most 16383 digits after the decimal point,
// and a decimal weight below 131072 (the int16 weight counts base-10000
// digits). Exponents of magnitude 2^30-1 or more are refused before anything
// else.
const (
	numericMaxDscale = 0x3FFF
	numericMaxWeight = 4*32768 - 1
	numericMaxExp    = 1<<30 - 1
)

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
