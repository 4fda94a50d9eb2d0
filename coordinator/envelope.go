package coordinator

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// The headers of every published record. Values are UTF-8 text.
const (
	// HeaderEventID is the event's id (a UUID in its canonical text form).
	// Consumers deduplicate on it: at-least-once delivery may publish an
	// event more than once, always with the same id.
	HeaderEventID = "event-id"
	// HeaderSource is the event's source (the webhook sender's name).
	HeaderSource = "source"
	// HeaderAction is the event's action.
	HeaderAction = "action"
	// HeaderAttempt is the attempt number, 1 for the first publication; it
	// grows only when an earlier attempt failed, so a duplicate from a crash
	// or an expired lease may carry the same number.
	HeaderAttempt = "attempt"
)

// Envelope is the JSON value of every published record: the stored event as
// the HookReceiver accepted it, plus the attempt. Its JSON form is documented
// in docs/coordinator.md; fields are only ever added to it.
type Envelope struct {
	// ID is the event's id, the same as the event-id header.
	ID uuid.UUID `json:"id"`
	// Source, Action, Resource and ResourceID are as stored; ResourceID is
	// also the record key.
	Source     string `json:"source"`
	Action     string `json:"action"`
	Resource   string `json:"resource"`
	ResourceID string `json:"resource_id"`
	// Payload is the event body, a JSON object.
	Payload json.RawMessage `json:"payload"`
	// Metadata is the event's metadata, a JSON object ({} when none).
	Metadata json.RawMessage `json:"metadata"`
	// CreatedAt is when the HookReceiver stored the event, in UTC with
	// microsecond precision.
	CreatedAt time.Time `json:"created_at"`
	// DeliveryID is the sender's delivery id; omitted when it sent none.
	DeliveryID string `json:"delivery_id,omitempty"`
	// Attempt is the attempt number, as in the attempt header.
	Attempt int `json:"attempt"`
}

// EnvelopeOf returns the envelope of a claimed event.
func EnvelopeOf(e *store.HookEvent) Envelope {
	meta := e.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	payload := e.Payload
	if len(payload) == 0 {
		payload = json.RawMessage(`{}`)
	}
	return Envelope{
		ID:         e.ID,
		Source:     e.Source,
		Action:     e.Action,
		Resource:   e.Resource,
		ResourceID: e.ResourceID,
		Payload:    payload,
		Metadata:   meta,
		CreatedAt:  e.CreatedAt.UTC(),
		DeliveryID: e.DeliveryID,
		Attempt:    e.Attempt(),
	}
}

// message is the record of a claimed event. It fails only if the stored
// payload or metadata is not valid JSON, which the database's jsonb rules out.
func message(e *store.HookEvent) (kafka.Message, error) {
	env := EnvelopeOf(e)
	value, err := json.Marshal(&env)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("coordinator: encode event %s: %w", e.ID, err)
	}
	return kafka.Message{
		Key:   []byte(e.ResourceID),
		Value: value,
		Headers: []kafka.Header{
			{Key: HeaderEventID, Value: []byte(e.ID.String())},
			{Key: HeaderSource, Value: []byte(e.Source)},
			{Key: HeaderAction, Value: []byte(e.Action)},
			{Key: HeaderAttempt, Value: strconv.AppendInt(nil, int64(env.Attempt), 10)},
		},
	}, nil
}
