package store

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// ValidationCode says why an event was refused. The codes are stable: the
// HookReceiver returns them to webhook senders and the importer prints them.
type ValidationCode string

// The validation codes.
const (
	// CodeInvalidUTF8: a text field or a JSON document is not valid UTF-8.
	CodeInvalidUTF8 ValidationCode = "invalid_utf8"
	// CodeNULCharacter: a NUL character, raw in a text field or as the escape
	// \u0000 in a JSON string or key (PostgreSQL text and jsonb cannot hold it).
	CodeNULCharacter ValidationCode = "nul_character"
	// CodeFieldTooLong: a text field is longer than MaxFieldLength characters.
	CodeFieldTooLong ValidationCode = "field_too_long"
	// CodeMissingField: a required field is empty.
	CodeMissingField ValidationCode = "missing_field"
	// CodeNotAnObject: payload or metadata is valid JSON but not an object.
	CodeNotAnObject ValidationCode = "not_an_object"
	// CodeNestingTooDeep: JSON nested deeper than MaxJSONDepth.
	CodeNestingTooDeep ValidationCode = "nesting_too_deep"
	// CodeInvalidJSON: not JSON, or JSON that jsonb refuses (a lone UTF-16
	// surrogate escape, a number outside PostgreSQL's numeric range).
	CodeInvalidJSON ValidationCode = "invalid_json"
	// CodeTooLarge: a JSON document larger than jsonb can hold.
	CodeTooLarge ValidationCode = "too_large"
)

// Limits that validation enforces.
const (
	// MaxFieldLength is the longest source, action, resource, resource_id or
	// delivery_id, in characters (the columns are VARCHAR(255)).
	MaxFieldLength = 255
	// MaxJSONDepth is the deepest nesting of objects and arrays accepted in a
	// payload or metadata; the top-level object counts as depth 1.
	MaxJSONDepth = 64
	// MaxJSONBytes is the largest payload or metadata accepted: jsonb cannot
	// hold more than 256 MiB.
	MaxJSONBytes = 1<<28 - 1
)

// ValidationError reports an event that cannot be stored. Nothing is written
// when an insert returns one: a single bad event in a batch rejects the whole
// batch, and Index names that event.
type ValidationError struct {
	// Index is the position of the bad event in the batch, or -1 when a single
	// event was given.
	Index int
	// Field is the event field at fault: "source", "action", "resource",
	// "resource_id", "delivery_id", "payload", "metadata", "id" or "created_at".
	Field string
	// Code says what is wrong, in a stable machine-readable form.
	Code ValidationCode
	// Reason explains it for a person (for JSON, with the byte offset).
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("store: invalid event at index %d: %s: %s (%s)", e.Index, e.Field, e.Reason, e.Code)
	}
	return fmt.Sprintf("store: invalid event: %s: %s (%s)", e.Field, e.Reason, e.Code)
}

// Validate checks that e can be stored: the text fields are non-empty (except
// the optional delivery id), valid UTF-8 without NUL and at most MaxFieldLength
// characters; the payload is a JSON object and the metadata, when given, too,
// both jsonb-compatible (valid UTF-8, no \u0000, no lone surrogate escapes,
// numbers within numeric's range) and nested at most MaxJSONDepth deep; an
// explicit ID comes with its CreatedAt, and CreatedAt is at most
// MaxCreatedAhead in the future. It returns a *ValidationError with
// Index -1, or nil.
//
// The JSON checks run in a single pass without decoding the document.
func (e *NewEvent) Validate() error {
	if v := e.validate(); v != nil {
		v.Index = -1
		return v
	}
	return nil
}

func (e *NewEvent) validate() *ValidationError {
	if v := checkText("source", e.Source, true); v != nil {
		return v
	}
	if v := checkText("action", e.Action, true); v != nil {
		return v
	}
	if v := checkText("resource", e.Resource, true); v != nil {
		return v
	}
	if v := checkText("resource_id", e.ResourceID, true); v != nil {
		return v
	}
	if v := checkText("delivery_id", e.DeliveryID, false); v != nil {
		return v
	}
	if len(e.Payload) == 0 {
		return &ValidationError{Field: "payload", Code: CodeMissingField, Reason: "payload is required (a JSON object)"}
	}
	if v := checkJSONObject("payload", e.Payload); v != nil {
		return v
	}
	if len(e.Metadata) > 0 {
		if v := checkJSONObject("metadata", e.Metadata); v != nil {
			return v
		}
	}
	if e.ID != [16]byte{} && e.CreatedAt.IsZero() {
		return &ValidationError{Field: "created_at", Code: CodeMissingField,
			Reason: "an event with an explicit id needs its created_at (the key is (id, created_at))"}
	}
	if e.CreatedAt.After(time.Now().Add(MaxCreatedAhead)) {
		return &ValidationError{Field: "created_at", Code: CodeInvalidValue,
			Reason: fmt.Sprintf("created_at %s is more than %s in the future", e.CreatedAt.Format(time.RFC3339), MaxCreatedAhead)}
	}
	return nil
}

// MaxCreatedAhead is how far in the future (by the inserting process's clock)
// an event's CreatedAt may be: room for clocks that disagree, not for events
// from the future, which would head every listing and, beyond the partitions
// made ahead, land in the DEFAULT partition.
const MaxCreatedAhead = 24 * time.Hour

// validateEvents validates a batch; the first bad event is reported with its
// index.
func validateEvents(events []NewEvent) error {
	for i := range events {
		if v := events[i].validate(); v != nil {
			v.Index = i
			return v
		}
	}
	return nil
}

// checkText validates a VARCHAR(255) field.
func checkText(field, s string, required bool) *ValidationError {
	if s == "" {
		if required {
			return &ValidationError{Field: field, Code: CodeMissingField, Reason: field + " is required"}
		}
		return nil
	}
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				return &ValidationError{Field: field, Code: CodeNULCharacter,
					Reason: fmt.Sprintf("NUL byte at offset %d", i)}
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return &ValidationError{Field: field, Code: CodeInvalidUTF8,
					Reason: fmt.Sprintf("invalid UTF-8 at offset %d", i)}
			}
			i += size
		}
		n++
	}
	if n > MaxFieldLength {
		return &ValidationError{Field: field, Code: CodeFieldTooLong,
			Reason: fmt.Sprintf("%d characters, at most %d allowed", n, MaxFieldLength)}
	}
	return nil
}

// checkJSONObject validates a payload or metadata document.
func checkJSONObject(field string, data []byte) *ValidationError {
	if len(data) > MaxJSONBytes {
		return &ValidationError{Field: field, Code: CodeTooLarge,
			Reason: fmt.Sprintf("%d bytes, at most %d allowed", len(data), MaxJSONBytes)}
	}
	if f := scanJSON(data, MaxJSONDepth, nil); f != nil {
		return &ValidationError{Field: field, Code: f.code, Reason: f.Error()}
	}
	// scanJSON accepted a document, so its first non-space byte says its kind.
	for _, c := range data {
		if c == '{' {
			return nil
		}
		if !isSpace(c) {
			return &ValidationError{Field: field, Code: CodeNotAnObject,
				Reason: "must be a JSON object, got " + jsonKind(c)}
		}
	}
	return nil
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// jsonFault is a problem found by scanJSON.
type jsonFault struct {
	code   ValidationCode
	offset int
	msg    string
}

func (f *jsonFault) Error() string { return f.msg + " at offset " + strconv.Itoa(f.offset) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
