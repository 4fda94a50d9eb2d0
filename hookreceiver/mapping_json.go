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
	c := jsonChecker{data: data, maxDepth: maxDepth, keys: make([]objectKey, 0, 32)}
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

const (
	keyLinearScanMax  = 16  // up to this many keys, compare each new key with the others
	keySortMax        = 512 // up to this many, sort them when the object closes; past it, hash
	errorQuoteMaxRune = 64  // longest key quoted in an error message
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
	var many *keySet // past keyLinearScanMax keys
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
		// Duplicates: compare with each earlier key while there are few; sort
		// the keys when a medium-sized object closes; hash them past that.
		switch n := len(c.keys) - base; {
		case many != nil:
			if many.add(key, at) {
				return duplicateKey(key, at)
			}
		case n < keyLinearScanMax:
			for _, k := range c.keys[base:] {
				if bytes.Equal(k.key, key) {
					return duplicateKey(key, at)
				}
			}
			c.keys = append(c.keys, objectKey{key: key, at: at})
		case n < keySortMax:
			c.keys = append(c.keys, objectKey{key: key, at: at})
		default:
			many = newKeySet(c.data)
			for _, k := range append(c.keys[base:], objectKey{key: key, at: at}) {
				if many.add(k.key, k.at) {
					return duplicateKey(k.key, k.at)
				}
			}
			c.keys = c.keys[:base]
		}
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
			if c.members == nil {
				c.members = make([]member, 0, 16)
			}
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
			if many == nil && len(c.keys)-base > keyLinearScanMax {
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

// sortedDuplicates reports the first repeated key among ks, sorting ks.
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
