package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Input checks shared by sessions, event metrics, the audit log, connection
// snapshots and degradation records. Text that code writes (a service name, an
// event type) is refused when PostgreSQL cannot hold it; text that comes from
// outside or from errors (error details, client info) is cleaned instead, so a
// hostile or broken input can never keep an audit row or a metric from being
// written.

// ErrInvalidInput is wrapped by every *InputError, for errors.Is.
var ErrInvalidInput = errors.New("store: invalid input")

// InputError reports a value that cannot be stored. Nothing is written when an
// operation returns one; in a batch, Index names the first bad record and the
// whole batch is refused.
type InputError struct {
	// Record is what was refused: "session", "event metric", "audit event",
	// "connection snapshot", "degradation" or "filter".
	Record string
	// Index is the position of the bad record in a batch, or -1.
	Index int
	// Field is the column or filter field at fault.
	Field string
	// Reason says what is wrong, with the offending value when it is short.
	Reason string
}

func (e *InputError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("store: invalid %s at index %d: %s: %s", e.Record, e.Index, e.Field, e.Reason)
	}
	return fmt.Sprintf("store: invalid %s: %s: %s", e.Record, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidInput) true.
func (e *InputError) Unwrap() error { return ErrInvalidInput }

func inputError(record, field, format string, args ...any) *InputError {
	return &InputError{Record: record, Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// withIndex sets the batch index of an *InputError and returns it as an error.
func withIndex(e *InputError, i int) error {
	e.Index = i
	return e
}

// checkName validates text that the program itself chose (a service name, an
// event type): valid UTF-8, no NUL, at most max characters, and not empty when
// required. It returns a reason, or "".
func checkName(s string, max int, required bool) string {
	if s == "" {
		if required {
			return "is required"
		}
		return ""
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "contains a NUL character, which PostgreSQL text cannot hold"
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Sprintf("has %d characters, at most %d allowed", n, max)
	}
	return ""
}

// cleanText makes s storable in a text column: invalid UTF-8 becomes U+FFFD,
// NUL characters are removed, and text longer than maxBytes is cut at a
// character boundary and marked with "…".
func cleanText(s string, maxBytes int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) > maxBytes {
		cut := maxBytes - len("…")
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// errJSONNUL is returned by marshalJSONB for a document with a \u0000 escape.
var errJSONNUL = errors.New(`contains the escape \u0000, which PostgreSQL jsonb cannot hold`)

// marshalJSONB encodes v for a jsonb column. encoding/json already replaces
// invalid UTF-8 with U+FFFD; what jsonb still refuses is a NUL character, which
// is an error unless clean is set, in which case it becomes U+FFFD. A nil map
// encodes as NULL (nil result).
func marshalJSONB(v any, clean bool) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	if !hasJSONNUL(b) {
		return b, nil
	}
	if !clean {
		return nil, errJSONNUL
	}
	return replaceJSONNUL(b), nil
}

// hasJSONNUL reports whether the well-formed JSON document b holds a \u0000
// escape (an escaped backslash followed by "u0000" is not one).
func hasJSONNUL(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+5 < len(b) && b[i+1] == 'u' && string(b[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}

func replaceJSONNUL(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			out = append(out, b[i])
			continue
		}
		if i+5 < len(b) && b[i+1] == 'u' && string(b[i+2:i+6]) == "0000" {
			out = append(out, `\ufffd`...)
			i += 5
			continue
		}
		if i+1 < len(b) {
			out = append(out, b[i], b[i+1])
		}
		i++
	}
	return out
}

// decodeJSONObject decodes a jsonb object column; NULL gives a nil map.
func decodeJSONObject(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}
