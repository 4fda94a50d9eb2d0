package metricsapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/omnibridge/omnibridge/store"
)

// EventJSON is a hook event as the API serves it, and as `omnibridge events
// … --json` prints it. Listings of the API leave out the payload and
// metadata (an event may carry up to a MiB of each); GET
// /api/v1/events/{id} includes them.
type EventJSON struct {
	ID         uuid.UUID `json:"id"`
	Source     string    `json:"source"`
	Action     string    `json:"action"`
	Resource   string    `json:"resource"`
	ResourceID string    `json:"resource_id"`
	DeliveryID string    `json:"delivery_id,omitempty"`
	Status     string    `json:"status"`
	RetryCount int       `json:"retry_count"`
	// ProcessingErrors are the latest errors, oldest first.
	ProcessingErrors []string   `json:"processing_errors"`
	CreatedAt        time.Time  `json:"created_at"`
	NextAttemptAt    *time.Time `json:"next_attempt_at,omitempty"`
	ClaimedAt        *time.Time `json:"claimed_at,omitempty"`
	ClaimID          *uuid.UUID `json:"claim_id,omitempty"`
	ProcessedAt      *time.Time `json:"processed_at,omitempty"`

	Payload  json.RawMessage `json:"payload,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// NewEventJSON returns e's representation, with its payload and metadata
// when full is set.
func NewEventJSON(e *store.HookEvent, full bool) EventJSON {
	out := EventJSON{
		ID: e.ID, Source: e.Source, Action: e.Action, Resource: e.Resource, ResourceID: e.ResourceID,
		DeliveryID: e.DeliveryID, Status: string(e.Status), RetryCount: e.RetryCount,
		ProcessingErrors: nonNil(e.ProcessingErrors), CreatedAt: e.CreatedAt,
		ClaimedAt: e.ClaimedAt, ProcessedAt: e.ProcessedAt,
	}
	if e.Status == store.EventPending {
		out.NextAttemptAt = &e.NextAttemptAt
	}
	if e.ClaimID != uuid.Nil {
		out.ClaimID = &e.ClaimID
	}
	if full {
		out.Payload, out.Metadata = e.Payload, e.Metadata
	}
	return out
}

// eventsResponse is the body of GET /api/v1/events.
type eventsResponse struct {
	// Events, newest first.
	Events []EventJSON `json:"events"`
	// NextCursor continues the listing (?cursor=); null on the last page.
	NextCursor *string `json:"next_cursor"`
}

var eventStatuses = []string{
	string(store.EventPending), string(store.EventProcessing), string(store.EventProcessed), string(store.EventDead),
}

// listEvents serves GET /api/v1/events?status=…&source=…&since=…&until=…&limit=…&cursor=….
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	p, err := parseParams(r, "status", "source", "since", "until", "limit", "cursor")
	if err != nil {
		return err
	}
	f := store.EventFilter{Source: p.get("source")}
	status, err := p.oneOf("status", eventStatuses...)
	if err != nil {
		return err
	}
	f.Status = store.EventStatus(status)
	if utf8.RuneCountInString(f.Source) > store.MaxFieldLength {
		return paramError("source", "is longer than %d characters", store.MaxFieldLength)
	}
	if f.Since, f.Until, err = p.timeRange(a.now()); err != nil {
		return err
	}
	if f.Limit, err = p.limit(a.cfg.DefaultPageSize, min(a.cfg.MaxPageSize, store.MaxListLimit)); err != nil {
		return err
	}
	if s := p.get("cursor"); s != "" {
		c, err := store.ParseCursor(s)
		if err != nil {
			return paramError("cursor", "is not a cursor of this listing (pass next_cursor of the previous page unchanged)")
		}
		f.After = &c
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	page, err := a.store.ListEvents(ctx, f)
	if err != nil {
		return err
	}
	out := eventsResponse{Events: make([]EventJSON, len(page.Events))}
	for i := range page.Events {
		out.Events[i] = NewEventJSON(&page.Events[i], false)
	}
	if page.Next != nil {
		s := page.Next.String()
		out.NextCursor = &s
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getEvent serves GET /api/v1/events/{id}.
func (a *API) getEvent(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseParams(r); err != nil {
		return err
	}
	raw := r.PathValue("id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 { // the canonical form only, not {…} or urn:uuid:…
		return paramError("id", "%q is not an event id (a UUID such as 0190a6e2-…)", clip(raw))
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	e, err := a.store.GetEvent(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewEventJSON(&e, true))
	return nil
}

// auditResponse is the body of GET /api/v1/audit.
type auditResponse struct {
	// Events, newest first.
	Events []store.AuditEvent `json:"events"`
	// NextCursor continues the listing (?cursor=); null on the last page.
	NextCursor *string `json:"next_cursor"`
}

// listAudit serves GET /api/v1/audit?success=false&type=…&since=…&until=…&limit=…&cursor=….
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	p, err := parseParams(r, "success", "type", "since", "until", "limit", "cursor")
	if err != nil {
		return err
	}
	var f store.AuditFilter
	if f.Success, err = p.boolean("success"); err != nil {
		return err
	}
	f.Type = p.get("type")
	if n := utf8.RuneCountInString(strings.TrimSuffix(f.Type, ".*")); n > store.MaxAuditTypeLength {
		return paramError("type", "is longer than %d characters", store.MaxAuditTypeLength)
	}
	if f.Type == ".*" {
		return paramError("type", `".*" names no prefix (use e.g. "api.*", or omit type for every event)`)
	}
	if f.Since, f.Until, err = p.timeRange(a.now()); err != nil {
		return err
	}
	if f.Limit, err = p.limit(a.cfg.DefaultPageSize, min(a.cfg.MaxPageSize, store.MaxAuditLimit)); err != nil {
		return err
	}
	if s := p.get("cursor"); s != "" {
		c, err := store.ParseAuditCursor(s)
		if err != nil {
			return paramError("cursor", "is not a cursor of this listing (pass next_cursor of the previous page unchanged)")
		}
		f.Before = &c
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	page, err := a.store.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	out := auditResponse{Events: nonNil(page.Events)}
	if page.Next != nil {
		s := page.Next.String()
		out.NextCursor = &s
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
