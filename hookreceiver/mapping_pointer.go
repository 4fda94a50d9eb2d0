package hookreceiver

import (
	"bytes"
	"errors"
	"strings"
)

// document is a body that passed checkJSON. For an object it keeps the
// top-level members, so pointers into it do not rescan the whole body.
type document struct {
	value   []byte   // the top-level value without surrounding white space
	members []member // the top-level object's members, in order
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
	for i, m := range d.members {
		if string(m.key) == key {
			return i, true
		}
	}
	return 0, false
}

// jsonPointer is a parsed RFC 6901 JSON pointer: its reference tokens with
// "~1" and "~0" already decoded. The empty pointer refers to the whole document.
type jsonPointer []string

var errBadPointer = errors.New(`must be a JSON pointer (RFC 6901) such as "/action" or "/repository/full_name": "/" before each token, "~0" for "~" and "~1" for "/"`)

// parsePointer parses an RFC 6901 pointer.
func parsePointer(s string) (jsonPointer, error) {
	if s == "" {
		return jsonPointer{}, nil
	}
	if s[0] != '/' {
		return nil, errBadPointer
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		if !strings.Contains(t, "~") {
			continue
		}
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, errBadPointer
			}
		}
		// Order matters: "~01" is "~1" literally, not "/".
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return jsonPointer(toks), nil
}

// String returns p in RFC 6901 form.
func (p jsonPointer) String() string {
	var b strings.Builder
	for _, t := range p {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// eval returns the raw JSON value p refers to in the value v, or false when
// there is none. v should have passed checkJSON; on other input eval returns
// false or some value but never panics. The returned value is never empty.
func (p jsonPointer) eval(v []byte) ([]byte, bool) {
	v = bytes.TrimLeft(v, " \t\r\n")
	for _, tok := range p {
		if len(v) == 0 {
			return nil, false
		}
		var ok bool
		switch v[0] {
		case '{':
			v, ok = objectMember(v, tok)
		case '[':
			v, ok = arrayElement(v, tok)
		}
		if !ok {
			return nil, false
		}
	}
	return v, len(v) > 0
}

// objectMember returns the value of key tok in the object starting at obj[0].
func objectMember(obj []byte, tok string) (found []byte, ok bool) {
	forEachMember(obj, func(key, val []byte) bool {
		if string(key) == tok {
			found, ok = val, true
			return false
		}
		return true
	})
	return found, ok
}

// forEachMember calls fn with each decoded key and raw value of the object
// starting at obj[0], until fn returns false. It stops early on malformed
// input.
func forEachMember(obj []byte, fn func(key, val []byte) bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return
	}
	for i := 1; ; {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return
		}
		keyEnd := skipString(obj, i)
		raw := obj[i+1 : max(i+1, keyEnd-1)]
		i = skipWS(obj, keyEnd)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipWS(obj, i+1)
		end := skipValue(obj, i)
		if end == i {
			return
		}
		key := raw
		if bytes.IndexByte(raw, '\\') >= 0 {
			key = appendUnescaped(nil, raw)
		}
		if !fn(key, obj[i:end]) {
			return
		}
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

// arrayElement returns element tok (a decimal index without leading zeros) of
// the array starting at arr[0].
func arrayElement(arr []byte, tok string) ([]byte, bool) {
	idx, ok := arrayIndex(tok)
	if !ok {
		return nil, false
	}
	i := 1
	for n := 0; ; n++ {
		i = skipWS(arr, i)
		if i >= len(arr) || arr[i] == ']' {
			return nil, false
		}
		end := skipValue(arr, i)
		if end == i {
			return nil, false
		}
		if n == idx {
			return arr[i:end], true
		}
		i = skipWS(arr, end)
		if i >= len(arr) || arr[i] != ',' {
			return nil, false
		}
		i++
	}
}

func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 9 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
		n = n*10 + int(tok[i]-'0')
	}
	return n, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		// The quote ends the string unless an odd number of backslashes
		// precede it.
		n := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
	return len(b)
}

// skipValue returns the index just past the JSON value starting at b[i], or i
// when there is no value there.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	case '}', ']', ',', ':', ' ', '\t', '\r', '\n':
		return i
	}
	// number or literal
	for i < len(b) {
		switch b[i] {
		case '}', ']', ',', ':', ' ', '\t', '\r', '\n', '"', '{', '[':
			return i
		}
		i++
	}
	return i
}
