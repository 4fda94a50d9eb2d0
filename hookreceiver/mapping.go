package hookreceiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Event is a verified webhook mapped to the columns of hook_events.
type Event struct {
	// Source is the source's name.
	Source string
	// Action, Resource and ResourceID are never empty, at most MaxFieldLen
	// characters, valid UTF-8 without NUL.
	Action     string
	Resource   string
	ResourceID string
	// DeliveryID identifies a delivery for deduplication; "" when the sender
	// gave none (the event is then never deduplicated).
	DeliveryID string
	// Payload is the JSON to store. For the envelope preset it is the body's
	// "payload" object ({} when absent); otherwise the whole body, which is an
	// object unless a custom mapping takes nothing from the body. It shares
	// memory with the body passed to Extract: do not reuse that buffer while
	// the event is in use.
	Payload json.RawMessage
	// Metadata is the envelope's "metadata" object (empty for other presets),
	// its values as json.RawMessage exactly as sent, plus, under MetadataKey,
	// what the receiver recorded: the verifier, the body's length and the
	// headers worth keeping. It marshals to a JSON object jsonb accepts.
	Metadata map[string]any
}

// MetadataKey is the metadata key under which the receiver records the
// verifier ("verifier"), the body length in bytes ("content_length") and
// selected request headers ("headers"). A sender's own value under this key is
// replaced.
const MetadataKey = "omnibridge"

// MaxFieldLen is the longest action, resource, resource_id or delivery id, in
// characters (the columns are VARCHAR(255)).
const MaxFieldLen = 255

// maxMetadataHeaderLen bounds each header value copied into metadata, in bytes.
const maxMetadataHeaderLen = 1024

// Codes of PayloadError, for the server's {"error", "code"} response.
const (
	CodeInvalidJSON          = "invalid_json"           // not JSON, or trailing data
	CodeInvalidUTF8          = "invalid_utf8"           // body or header value is not UTF-8
	CodeNULCharacter         = "nul_character"          // \u0000 in a string or key, or NUL in a field
	CodeInvalidUnicodeEscape = "invalid_unicode_escape" // unpaired UTF-16 surrogate escape
	CodeNumberOutOfRange     = "number_out_of_range"    // number PostgreSQL numeric cannot hold
	CodeNestingTooDeep       = "nesting_too_deep"       // deeper than SourceConfig.MaxDepth
	CodeDuplicateKey         = "duplicate_key"          // a key repeated within one object
	CodeNotObject            = "not_object"             // body must be a JSON object
	CodeMissingField         = "missing_field"          // action, resource, resource_id or delivery id empty
	CodeFieldTooLong         = "field_too_long"         // field longer than MaxFieldLen characters
	CodeInvalidField         = "invalid_field"          // field of the wrong JSON type
)

// PayloadError is a request body or header that cannot become an event. A
// server answers it with 400 and {"error": Error(), "code": Code}. Resending
// the same request cannot succeed.
type PayloadError struct {
	// Code is one of the Code* constants.
	Code string
	// Field names the event field concerned ("action", "payload", ...), or ""
	// for the body as a whole.
	Field string
	// Offset is the byte offset in the body where the problem was found, or -1.
	Offset int

	msg string
}

func (e *PayloadError) Error() string { return e.msg }

// PayloadCode returns the PayloadError code carried by err, or "" when err is
// not a payload error.
func PayloadCode(err error) string {
	var pe *PayloadError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func payloadErr(code, field string, offset int, format string, args ...any) *PayloadError {
	return &PayloadError{Code: code, Field: field, Offset: offset, msg: fmt.Sprintf(format, args...)}
}

// Extract maps a verified request to an Event. It first checks that the whole
// body is JSON that PostgreSQL jsonb can store (see the Code* constants), then
// takes each field as the source's mapping says. Errors are *PayloadError.
// Extract does not authenticate: call Verify first.
func (s *Source) Extract(h http.Header, body []byte) (Event, error) {
	return s.mapper.extract(h, body)
}

// mapper is a compiled MappingConfig.
type mapper struct {
	source     string
	verifier   string
	maxDepth   int
	needObject bool
	envelope   bool
	fields     []fieldSpec // action, resource, resource_id, delivery_id
	headers    []string    // canonical names copied into metadata
}

// fieldSpec extracts one event field. extract returns "" when the field is
// absent; from describes where it comes from, for error messages.
type fieldSpec struct {
	name     string
	required bool
	from     string
	extract  func(x *extraction) (string, error)
}

// extraction is the request being mapped.
type extraction struct {
	h   http.Header
	doc *document
}

func (m *mapper) extract(h http.Header, body []byte) (Event, error) {
	doc, err := checkJSON(body, m.maxDepth)
	if err != nil {
		return Event{}, err
	}
	if m.needObject && !doc.isObject() {
		return Event{}, payloadErr(CodeNotObject, "", 0, "body must be a JSON object")
	}
	x := &extraction{h: h, doc: doc}
	ev := Event{Source: m.source}
	targets := []*string{&ev.Action, &ev.Resource, &ev.ResourceID, &ev.DeliveryID}
	for i, f := range m.fields {
		v, err := f.extract(x)
		if err != nil {
			return Event{}, err
		}
		if v == "" {
			if f.required {
				return Event{}, payloadErr(CodeMissingField, f.name, -1, "%s is missing or empty: it is taken from %s", f.name, f.from)
			}
			continue
		}
		if err := checkFieldValue(f.name, v); err != nil {
			return Event{}, err
		}
		*targets[i] = v
	}

	sender := map[string]any{}
	ev.Payload = json.RawMessage(body)
	if m.envelope {
		if ev.Payload, err = x.objectAt(pointerPayload, "payload"); err != nil {
			return Event{}, err
		}
		meta, err := x.objectAt(pointerMetadata, "metadata")
		if err != nil {
			return Event{}, err
		}
		sender = objectMembers(meta)
	}
	sender[MetadataKey] = m.receipt(h, len(body))
	ev.Metadata = sender
	return ev, nil
}

// receipt is what the receiver records about the request in metadata.
func (m *mapper) receipt(h http.Header, n int) map[string]any {
	r := map[string]any{"verifier": m.verifier, "content_length": n}
	var kept map[string]string
	for _, name := range m.headers {
		vs := h.Values(name)
		if len(vs) == 0 {
			continue
		}
		if kept == nil {
			kept = make(map[string]string, len(m.headers))
		}
		kept[name] = sanitizeHeaderValue(strings.Join(vs, ", "))
	}
	if kept != nil {
		r["headers"] = kept
	}
	return r
}

// sanitizeHeaderValue makes a header value storable as JSON text: valid UTF-8,
// no NUL, at most maxMetadataHeaderLen bytes.
func sanitizeHeaderValue(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	v = strings.ReplaceAll(v, "\x00", "")
	if len(v) > maxMetadataHeaderLen {
		cut := maxMetadataHeaderLen
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	return v
}

// checkFieldValue checks a field value for the VARCHAR(255) columns.
func checkFieldValue(name, v string) error {
	if !utf8.ValidString(v) {
		return payloadErr(CodeInvalidUTF8, name, -1, "%s is not valid UTF-8", name)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return payloadErr(CodeNULCharacter, name, -1, "%s contains a NUL character", name)
	}
	if n := utf8.RuneCountInString(v); n > MaxFieldLen {
		return payloadErr(CodeFieldTooLong, name, -1, "%s is %d characters; at most %d are allowed", name, n, MaxFieldLen)
	}
	return nil
}

var (
	pointerPayload  = jsonPointer{"payload"}
	pointerMetadata = jsonPointer{"metadata"}
)

// stringAt returns the string or number at p as text; "" when p does not
// exist or is null. Any other JSON type is an invalid_field error.
func (x *extraction) stringAt(p jsonPointer, field string) (string, error) {
	raw, ok := x.doc.eval(p)
	if !ok {
		return "", nil
	}
	switch c := raw[0]; {
	case c == '"' && len(raw) >= 2:
		inner := raw[1 : len(raw)-1]
		if bytes.IndexByte(inner, '\\') < 0 {
			return string(inner), nil
		}
		return string(appendUnescaped(nil, inner)), nil
	case c == '-' || ('0' <= c && c <= '9'):
		return string(raw), nil
	case c == 'n':
		return "", nil
	}
	return "", payloadErr(CodeInvalidField, field, -1, "%s: %s is %s; want a string or a number", field, p, jsonKind(raw[0]))
}

// objectAt returns the object at p, {} when p does not exist or is null, and
// an invalid_field error for any other JSON type.
func (x *extraction) objectAt(p jsonPointer, field string) (json.RawMessage, error) {
	raw, ok := x.doc.eval(p)
	if !ok || raw[0] == 'n' {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' {
		return nil, payloadErr(CodeInvalidField, field, -1, "%s must be a JSON object, not %s", field, jsonKind(raw[0]))
	}
	return json.RawMessage(raw), nil
}

func jsonKind(first byte) string {
	switch first {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// objectMembers returns the members of a JSON object that passed checkJSON,
// each value kept exactly as sent (json.RawMessage), plus room for the
// receipt.
func objectMembers(obj []byte) map[string]any {
	m := make(map[string]any, 8)
	forEachMember(obj, func(key, val []byte) bool {
		m[string(key)] = json.RawMessage(val)
		return true
	})
	return m
}
