package store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// hookEventColumns are the columns scanHookEvent reads, in its order.
const hookEventColumns = `id, source, action, resource, resource_id, payload, metadata, processed,
    processing_errors, retry_count, created_at, status, next_attempt_at, claimed_at, claim_id,
    processed_at, delivery_id`

// hookEventColumnsOf is hookEventColumns qualified by a table alias.
func hookEventColumnsOf(alias string) string {
	cols := strings.Split(hookEventColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// scanHookEvent reads a row of hookEventColumns.
func scanHookEvent(row pgx.CollectableRow) (HookEvent, error) {
	var e HookEvent
	var status string
	var claimID *uuid.UUID
	var deliveryID *string
	err := row.Scan(&e.ID, &e.Source, &e.Action, &e.Resource, &e.ResourceID, &e.Payload, &e.Metadata,
		&e.Processed, &e.ProcessingErrors, &e.RetryCount, &e.CreatedAt, &status, &e.NextAttemptAt,
		&e.ClaimedAt, &claimID, &e.ProcessedAt, &deliveryID)
	if err != nil {
		return HookEvent{}, err
	}
	e.Status = EventStatus(status)
	if claimID != nil {
		e.ClaimID = *claimID
	}
	if deliveryID != nil {
		e.DeliveryID = *deliveryID
	}
	return e, nil
}

// GetEvent returns the event with id, or ErrEventNotFound.
func (s *Store) GetEvent(ctx context.Context, id uuid.UUID) (HookEvent, error) {
	rows, err := s.db.Query(ctx, `SELECT `+hookEventColumns+` FROM omnibridge.hook_events WHERE id = $1 LIMIT 1`, id)
	if err != nil {
		return HookEvent{}, fmt.Errorf("store: get event %s: %w", id, err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanHookEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return HookEvent{}, fmt.Errorf("store: get event %s: %w", id, ErrEventNotFound)
	}
	if err != nil {
		return HookEvent{}, fmt.Errorf("store: get event %s: %w", id, err)
	}
	return e, nil
}

// Defaults and limits of ListEvents.
const (
	// DefaultListLimit is the page size when EventFilter.Limit is 0.
	DefaultListLimit = 100
	// MaxListLimit is the largest page ListEvents returns.
	MaxListLimit = 1000
)

// EventFilter selects events for ListEvents. Zero fields do not filter.
type EventFilter struct {
	// Status keeps events in this status.
	Status EventStatus
	// Source keeps events of this source.
	Source string
	// Since keeps events created at or after it.
	Since time.Time
	// Until keeps events created before it.
	Until time.Time
	// Limit is the page size. Defaults to DefaultListLimit; at most MaxListLimit.
	Limit int
	// After continues a listing after the last event of the previous page (its
	// EventPage.Next).
	After *Cursor
}

// Cursor is a position in a listing of events, newest first: the creation time
// and id of the last event seen.
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// String encodes c for use in a URL; ParseCursor decodes it.
func (c Cursor) String() string { return encodeCursor(c.CreatedAt, c.ID[:]) }

// ErrInvalidCursor is returned by ParseCursor for a string that no Cursor
// produced.
var ErrInvalidCursor = errors.New("store: invalid cursor (pass the Next value of the previous page unchanged)")

// ParseCursor decodes a Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	at, id, ok := decodeCursor(s, len(uuid.UUID{}))
	if !ok {
		return Cursor{}, ErrInvalidCursor
	}
	c := Cursor{CreatedAt: at}
	copy(c.ID[:], id)
	return c, nil
}

// encodeCursor is the URL form of a keyset position: the row's time in
// microseconds, then its id's bytes.
func encodeCursor(at time.Time, id []byte) string {
	b := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(b, uint64(at.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(append(b, id...))
}

// decodeCursor reverses encodeCursor for an id of idLen bytes.
func decodeCursor(s string, idLen int) (time.Time, []byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8+idLen {
		return time.Time{}, nil, false
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))).UTC(), b[8:], true
}

// EventPage is a page of ListEvents.
type EventPage struct {
	// Events, newest first.
	Events []HookEvent
	// Next continues the listing (EventFilter.After); nil on the last page.
	Next *Cursor
}

// ListEvents returns the events that f selects, newest first (by created_at,
// then id), one page at a time with a keyset cursor, so that deep pages cost no
// more than the first. An unknown status returns an error.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) (EventPage, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Status != "" {
		switch f.Status {
		case EventPending, EventProcessing, EventProcessed, EventDead:
		default:
			return EventPage{}, fmt.Errorf("store: list events: unknown status %q (want pending, processing, processed or dead)", f.Status)
		}
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.Source != "" {
		where = append(where, "source = "+arg(f.Source))
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < "+arg(f.Until))
	}
	if f.After != nil {
		where = append(where, fmt.Sprintf("(created_at, id) < (%s, %s)", arg(f.After.CreatedAt), arg(f.After.ID)))
	}
	sql := `SELECT ` + hookEventColumns + ` FROM omnibridge.hook_events`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY created_at DESC, id DESC LIMIT " + arg(limit+1)

	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return EventPage{}, fmt.Errorf("store: list events: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanHookEvent)
	if err != nil {
		return EventPage{}, fmt.Errorf("store: list events: %w", err)
	}
	page := EventPage{Events: events}
	if len(events) > limit {
		page.Events = events[:limit]
		last := page.Events[limit-1]
		page.Next = &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return page, nil
}

// DeadLetters returns up to limit dead events, the most recently created first
// (limit as in EventFilter.Limit).
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]HookEvent, error) {
	page, err := s.ListEvents(ctx, EventFilter{Status: EventDead, Limit: limit})
	return page.Events, err
}

// NotifyChannel is the channel on which writers of new events wake the
// WorkflowCoordinator (LISTEN omnibridge_hook_events).
const NotifyChannel = "omnibridge_hook_events"

// Notify sends a notification on NotifyChannel. Call it after the insert has
// committed; listeners then claim. It carries no payload: a listener claims
// whatever is due.
func (s *Store) Notify(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel); err != nil {
		return fmt.Errorf("store: notify %s: %w", NotifyChannel, err)
	}
	return nil
}
