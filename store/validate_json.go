package store

import (
	"strconv"
	"unicode/utf8"
)

// maxScanDepth bounds the nesting any scan accepts (the import envelope wraps a
// payload of MaxJSONDepth in one more object).
const maxScanDepth = 2 * MaxJSONDepth

// The limits of PostgreSQL's numeric type, which jsonb stores numbers in: the
// first significant digit at most 131071 places before the decimal point (a
// base-10000 weight of 32767), at most 16383 digits after it, and an exponent
// that numeric_in accepts at all.
const (
	numericMaxLeadingPosition = 4*32768 - 1
	numericMaxScale           = 16383
	numericMaxExponent        = 1<<31/2 - 1
)

// jsonScanner checks one JSON document in a single pass, without decoding it,
// against what PostgreSQL's jsonb input accepts.
type jsonScanner struct {
	data     []byte
	maxDepth int
	// member, when set, is called for each member of a top-level object with
	// its raw key (between the quotes, escapes not decoded) and raw value.
	member func(key []byte, keyEscaped bool, value []byte)

	// The top-level member being scanned, for the caller to name the field a
	// fault is in.
	inMember   bool
	keyStart   int
	keyEnd     int
	keyEscaped bool
}

// scanJSON checks that data holds exactly one JSON value that jsonb accepts,
// nested at most maxDepth deep; member is as in jsonScanner.
func scanJSON(data []byte, maxDepth int, member func(key []byte, keyEscaped bool, value []byte)) *jsonFault {
	s := jsonScanner{data: data, maxDepth: maxDepth, member: member}
	return s.scan()
}

// strPlain marks the bytes that need no attention inside a JSON string: ASCII
// from 0x20, except '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *jsonScanner) scan() *jsonFault {
	maxDepth := min(s.maxDepth, maxScanDepth)
	var stack [maxScanDepth]byte
	data := s.data
	n := len(data)
	depth := 0
	i := 0
	var f *jsonFault
	var c byte

value:
	i = skipSpace(data, i)
	if i >= n {
		return fault(CodeInvalidJSON, i, "unexpected end of JSON input")
	}
	c = data[i]
	switch {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return fault(CodeNestingTooDeep, i, "nested deeper than "+strconv.Itoa(maxDepth)+" levels")
		}
		stack[depth] = c
		depth++
		i = skipSpace(data, i+1)
		if c == '{' {
			if i < n && data[i] == '}' {
				depth--
				i++
				goto end
			}
			goto key
		}
		if i < n && data[i] == ']' {
			depth--
			i++
			goto end
		}
		goto value
	case c == '"':
		if i, _, f = scanString(data, i); f != nil {
			return f
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if i, f = scanNumber(data, i); f != nil {
			return f
		}
	case c == 't':
		if i, f = scanLiteral(data, i, "true"); f != nil {
			return f
		}
	case c == 'f':
		if i, f = scanLiteral(data, i, "false"); f != nil {
			return f
		}
	case c == 'n':
		if i, f = scanLiteral(data, i, "null"); f != nil {
			return f
		}
	default:
		return unexpected(data, i)
	}

end:
	// A value ended just before i.
	if depth == 1 && s.inMember {
		if s.member != nil {
			s.member(data[s.keyStart:s.keyEnd], s.keyEscaped, data[s.memberValueStart():i])
		}
		s.inMember = false
	}
	if depth == 0 {
		if i = skipSpace(data, i); i != n {
			return fault(CodeInvalidJSON, i, "unexpected data after the JSON value")
		}
		return nil
	}
	i = skipSpace(data, i)
	if i >= n {
		return fault(CodeInvalidJSON, i, "unexpected end of JSON input")
	}
	c = data[i]
	switch {
	case c == ',':
		i = skipSpace(data, i+1)
		if stack[depth-1] == '{' {
			goto key
		}
		goto value
	case c == '}' && stack[depth-1] == '{', c == ']' && stack[depth-1] == '[':
		depth--
		i++
		goto end
	default:
		return unexpected(data, i)
	}

key:
	if i >= n || data[i] != '"' {
		if i >= n {
			return fault(CodeInvalidJSON, i, "unexpected end of JSON input")
		}
		return fault(CodeInvalidJSON, i, "expected a string key, got "+quoteByte(data[i]))
	}
	if depth == 1 {
		s.inMember = true
		s.keyStart = i + 1
	}
	{
		var esc bool
		if i, esc, f = scanString(data, i); f != nil {
			return f
		}
		if depth == 1 {
			s.keyEnd = i - 1
			s.keyEscaped = esc
		}
	}
	i = skipSpace(data, i)
	if i >= n || data[i] != ':' {
		if i >= n {
			return fault(CodeInvalidJSON, i, "unexpected end of JSON input")
		}
		return fault(CodeInvalidJSON, i, "expected ':' after an object key, got "+quoteByte(data[i]))
	}
	i++
	goto value
}

// memberValueStart returns where the current top-level member's value begins:
// after the key's closing quote, the colon and any space.
func (s *jsonScanner) memberValueStart() int {
	i := skipSpace(s.data, s.keyEnd+1)
	return skipSpace(s.data, i+1)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// scanString scans the string whose opening quote is at i, returning the index
// after the closing quote and whether it holds escapes.
func scanString(data []byte, i int) (int, bool, *jsonFault) {
	n := len(data)
	escaped := false
	i++
	for {
		for i < n && strPlain[data[i]] {
			i++
		}
		if i >= n {
			return i, escaped, fault(CodeInvalidJSON, i, "unterminated string")
		}
		c := data[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= n {
				return i, escaped, fault(CodeInvalidJSON, i, "unterminated string")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(data, i+2)
				switch {
				case !ok:
					return i, escaped, fault(CodeInvalidJSON, i, "invalid \\u escape")
				case r == 0:
					return i, escaped, fault(CodeNULCharacter, i, "\\u0000 (NUL) cannot be stored in jsonb")
				case r >= 0xDC00 && r <= 0xDFFF:
					return i, escaped, fault(CodeInvalidJSON, i, "UTF-16 low surrogate escape without a high surrogate")
				case r >= 0xD800 && r <= 0xDBFF:
					if i+12 <= n && data[i+6] == '\\' && data[i+7] == 'u' {
						if r2, ok := hex4(data, i+8); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
							i += 12
							continue
						}
					}
					return i, escaped, fault(CodeInvalidJSON, i, "UTF-16 high surrogate escape without a low surrogate")
				}
				i += 6
			default:
				return i, escaped, fault(CodeInvalidJSON, i, "invalid escape \\"+string(rune(data[i+1])))
			}
		case c < 0x20:
			return i, escaped, fault(CodeInvalidJSON, i, "control character "+quoteByte(c)+" in a string must be escaped")
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, escaped, fault(CodeInvalidUTF8, i, "invalid UTF-8")
			}
			i += size
		}
	}
}

func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// scanNumber scans the number starting at i and checks that numeric can hold
// it.
func scanNumber(data []byte, i int) (int, *jsonFault) {
	n := len(data)
	start := i
	if data[i] == '-' {
		i++
	}
	if i >= n || data[i] < '0' || data[i] > '9' {
		return i, fault(CodeInvalidJSON, start, "invalid number")
	}
	intStart := i
	if data[i] == '0' {
		i++
	} else {
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	intDigits := i - intStart
	intIsZero := data[intStart] == '0'
	fracDigits, firstNonZeroFrac := 0, -1
	if i < n && data[i] == '.' {
		i++
		fracStart := i
		for i < n && data[i] >= '0' && data[i] <= '9' {
			if firstNonZeroFrac < 0 && data[i] != '0' {
				firstNonZeroFrac = i - fracStart
			}
			i++
		}
		if fracDigits = i - fracStart; fracDigits == 0 {
			return i, fault(CodeInvalidJSON, start, "invalid number: no digit after the decimal point")
		}
	}
	exp := 0
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		neg := false
		if i < n && (data[i] == '+' || data[i] == '-') {
			neg = data[i] == '-'
			i++
		}
		expStart := i
		for i < n && data[i] >= '0' && data[i] <= '9' {
			if exp <= numericMaxExponent {
				exp = exp*10 + int(data[i]-'0')
			}
			i++
		}
		if i == expStart {
			return i, fault(CodeInvalidJSON, start, "invalid number: no digit in the exponent")
		}
		if neg {
			exp = -exp
		}
	}
	if exp >= numericMaxExponent || exp <= -numericMaxExponent || fracDigits-exp > numericMaxScale {
		return i, fault(CodeInvalidJSON, start, "number out of PostgreSQL numeric range")
	}
	lead := 0
	switch {
	case !intIsZero:
		lead = intDigits - 1 + exp
	case firstNonZeroFrac >= 0:
		lead = -(firstNonZeroFrac + 1) + exp
	}
	if lead > numericMaxLeadingPosition {
		return i, fault(CodeInvalidJSON, start, "number out of PostgreSQL numeric range")
	}
	return i, nil
}

func scanLiteral(data []byte, i int, lit string) (int, *jsonFault) {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return i, unexpected(data, i)
	}
	return i + len(lit), nil
}

func fault(code ValidationCode, offset int, msg string) *jsonFault {
	return &jsonFault{code: code, offset: offset, msg: msg}
}

func unexpected(data []byte, i int) *jsonFault {
	if data[i] >= utf8.RuneSelf {
		if r, size := utf8.DecodeRune(data[i:]); r == utf8.RuneError && size <= 1 {
			return fault(CodeInvalidUTF8, i, "invalid UTF-8")
		}
	}
	return fault(CodeInvalidJSON, i, "unexpected "+quoteByte(data[i]))
}

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return "byte 0x" + strconv.FormatUint(uint64(c), 16)
	}
	return strconv.QuoteRune(rune(c))
}
