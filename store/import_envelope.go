package store

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Codes used only for import envelopes.
const (
	// CodeWrongType: an envelope field has the wrong JSON type (a text field
	// that is not a string).
	CodeWrongType ValidationCode = "wrong_type"
	// CodeInvalidValue: an envelope's id is not a UUID or its created_at not
	// an RFC 3339 time; or an event's CreatedAt is more than MaxCreatedAhead
	// in the future.
	CodeInvalidValue ValidationCode = "invalid_value"
)

// envelopeField names an envelope key and where its value goes.
type envelopeField int

const (
	fieldUnknown envelopeField = iota
	fieldSource
	fieldAction
	fieldResource
	fieldResourceID
	fieldDeliveryID
	fieldPayload
	fieldMetadata
	fieldID
	fieldCreatedAt
)

var envelopeFields = map[string]envelopeField{
	"source": fieldSource, "action": fieldAction, "resource": fieldResource, "resource_id": fieldResourceID,
	"delivery_id": fieldDeliveryID, "payload": fieldPayload, "metadata": fieldMetadata, "id": fieldID,
	"created_at": fieldCreatedAt,
}

// parseEnvelope reads an import line in one pass over it: the line is
// checked as JSON while the top-level members are picked out; payload and
// metadata are then checked by NewEvent's validation. line must not be reused
// by the caller (payload and metadata point into it).
func parseEnvelope(line []byte) (NewEvent, *ValidationError) {
	var e NewEvent
	var bad *ValidationError
	s := jsonScanner{data: line, maxDepth: maxScanDepth}
	s.member = func(rawKey []byte, keyEscaped bool, value []byte) {
		if bad != nil {
			return
		}
		key := string(rawKey)
		if keyEscaped {
			// An escaped key: decode it (rare; the scan proved it valid).
			_ = json.Unmarshal(append(append([]byte{'"'}, rawKey...), '"'), &key)
		}
		f := envelopeFields[key]
		if f == fieldUnknown {
			return
		}
		if string(value) == "null" {
			return // an absent optional field; a required one is reported missing later
		}
		switch f {
		case fieldPayload:
			e.Payload = value
		case fieldMetadata:
			e.Metadata = value
		default:
			str, ok := jsonString(value)
			if !ok {
				bad = &ValidationError{Field: key, Code: CodeWrongType, Reason: key + " must be a JSON string"}
				return
			}
			bad = e.setText(f, key, str)
		}
	}
	if f := s.scan(); f != nil {
		field := "line"
		if s.inMember {
			field = string(line[s.keyStart:s.keyEnd])
		}
		return NewEvent{}, &ValidationError{Field: field, Code: f.code, Reason: f.Error()}
	}
	if bad != nil {
		return NewEvent{}, bad
	}
	if first := firstNonSpace(line); first != '{' {
		return NewEvent{}, &ValidationError{Field: "line", Code: CodeNotAnObject,
			Reason: "each line must be a JSON object, got " + jsonKind(first)}
	}
	return e, nil
}

func (e *NewEvent) setText(f envelopeField, key, s string) *ValidationError {
	switch f {
	case fieldSource:
		e.Source = s
	case fieldAction:
		e.Action = s
	case fieldResource:
		e.Resource = s
	case fieldResourceID:
		e.ResourceID = s
	case fieldDeliveryID:
		e.DeliveryID = s
	case fieldID:
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return &ValidationError{Field: key, Code: CodeInvalidValue, Reason: "id must be a UUID like 0190f1c2-5b6e-7d3a-9c1f-2e4b6a8c0d1e"}
		}
		e.ID = id
	case fieldCreatedAt:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return &ValidationError{Field: key, Code: CodeInvalidValue, Reason: "created_at must be an RFC 3339 time like 2024-05-01T12:00:00Z"}
		}
		e.CreatedAt = t
	}
	return nil
}

// jsonString decodes a JSON string value that the scan proved valid.
func jsonString(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' {
		return "", false
	}
	inner := value[1 : len(value)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", false
	}
	return s, true
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		if !isSpace(c) {
			return c
		}
	}
	return 0
}
