package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Limits of audit events.
const (
	// MaxAuditTypeLength is the longest event type, in characters (the column
	// is VARCHAR(100)).
	MaxAuditTypeLength = 100
	// MaxAuditDetailsBytes is the longest error_details kept; longer text is
	// cut and marked with "…".
	MaxAuditDetailsBytes = 4096
	// MaxAuditClientInfoBytes is the largest client_info kept, as JSON; a
	// larger one is replaced by {"truncated": true, "bytes": N}.
	MaxAuditClientInfoBytes = 16 << 10
)

// AuditEvent is a row of the append-only security audit log
// (security_audit_log). The JSON form is what the ModelMetrics API serves.
type AuditEvent struct {
	// ID and CreatedAt are set by the database; ListAudit returns them.
	ID int64 `json:"id"`
	// Type names what happened, dotted from general to specific, e.g.
	// "hook.signature_invalid", "retention.run", "degradation.pool.high_utilization".
	// Required, valid UTF-8 without NUL, at most MaxAuditTypeLength characters.
	Type string `json:"event_type"`
	// ClientInfo describes who or what caused the event (remote address,
	// source, user agent). It may hold anything encoding/json encodes; NUL
	// characters become U+FFFD and a document over MaxAuditClientInfoBytes is
	// replaced by a note of its size, so hostile input cannot keep the row from
	// being written.
	ClientInfo map[string]any `json:"client_info,omitempty"`
	// Success is false for refusals and failures.
	Success bool `json:"success"`
	// ErrorDetails says what went wrong; cleaned like ClientInfo and cut at
	// MaxAuditDetailsBytes.
	ErrorDetails string `json:"error_details,omitempty"`
	// CreatedAt is when it happened; the database's now() when zero.
	CreatedAt time.Time `json:"created_at"`
}

var auditTable = pgx.Identifier{Schema, "security_audit_log"}

// auditRow is an AuditEvent checked and encoded for the database.
type auditRow struct {
	typ        string
	clientInfo []byte // nil: NULL
	success    bool
	details    any // nil: NULL
	createdAt  time.Time
}

func (ev *AuditEvent) row() (auditRow, *InputError) {
	if r := checkName(ev.Type, MaxAuditTypeLength, true); r != "" {
		return auditRow{}, inputError("audit event", "event_type", "%s", r)
	}
	info, err := marshalJSONB(ev.ClientInfo, true)
	if err != nil {
		return auditRow{}, inputError("audit event", "client_info", "cannot be encoded as JSON: %v", err)
	}
	if len(info) > MaxAuditClientInfoBytes {
		info = fmt.Appendf(nil, `{"truncated": true, "bytes": %d}`, len(info))
	}
	r := auditRow{typ: ev.Type, clientInfo: info, success: ev.Success, createdAt: ev.CreatedAt}
	if ev.ErrorDetails != "" {
		r.details = cleanText(ev.ErrorDetails, MaxAuditDetailsBytes)
	}
	return r, nil
}

// AppendAudit appends one event to the security audit log. A bad Type returns
// an *InputError and writes nothing. The statement does not read back what it
// wrote, so a service role with INSERT only on the log can run it.
//
// Requests should not wait on the audit log: they use an AuditWriter, which
// calls AppendAudits in the background.
func (s *Store) AppendAudit(ctx context.Context, ev AuditEvent) error {
	r, e := ev.row()
	if e != nil {
		return e
	}
	return s.appendAuditRows(ctx, []auditRow{r})
}

// AppendAudits appends events to the audit log with one COPY, all or none. The
// first bad event returns an *InputError naming its index and nothing is
// written. Events with a zero CreatedAt get the database's now() when all of
// them have a zero CreatedAt, else the store's clock. An empty slice does
// nothing.
func (s *Store) AppendAudits(ctx context.Context, evs []AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	rows := make([]auditRow, len(evs))
	for i := range evs {
		r, e := evs[i].row()
		if e != nil {
			return withIndex(e, i)
		}
		rows[i] = r
	}
	return s.appendAuditRows(ctx, rows)
}

// appendAuditRows writes checked rows: one INSERT for one row, else one COPY.
func (s *Store) appendAuditRows(ctx context.Context, rows []auditRow) error {
	if len(rows) == 1 {
		r := &rows[0]
		_, err := s.db.Exec(ctx, `
			INSERT INTO omnibridge.security_audit_log (event_type, client_info, success, error_details, created_at)
			VALUES ($1, $2, $3, $4, coalesce($5, now()))`,
			r.typ, jsonbArg(r.clientInfo), r.success, r.details, timeOrNil(r.createdAt))
		if err != nil {
			return fmt.Errorf("store: append audit %s: %w", r.typ, err)
		}
		return nil
	}
	explicit := false
	for i := range rows {
		explicit = explicit || !rows[i].createdAt.IsZero()
	}
	cols := []string{"event_type", "client_info", "success", "error_details"}
	var now time.Time
	if explicit {
		cols = append(cols, "created_at")
		now = s.now()
	}
	n, err := s.db.CopyFrom(ctx, auditTable, cols,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			row := []any{r.typ, jsonbArg(r.clientInfo), r.success, r.details}
			if explicit {
				at := r.createdAt
				if at.IsZero() {
					at = now
				}
				row = append(row, at)
			}
			return row, nil
		}))
	if err != nil {
		return fmt.Errorf("store: append %d audit events: %w", len(rows), err)
	}
	if n != int64(len(rows)) {
		return fmt.Errorf("store: append audit events: copied %d of %d rows", n, len(rows))
	}
	return nil
}

// jsonbArg passes encoded JSON as a jsonb parameter; nil is NULL.
func jsonbArg(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// Limits of ListAudit.
const (
	// DefaultAuditLimit is the page size when AuditFilter.Limit is 0.
	DefaultAuditLimit = 100
	// MaxAuditLimit is the largest page ListAudit returns.
	MaxAuditLimit = 1000
)

// AuditFilter selects audit events for ListAudit. Zero fields do not filter.
type AuditFilter struct {
	// Since keeps events created at or after it.
	Since time.Time
	// Until keeps events created before it.
	Until time.Time
	// Success keeps events with this outcome.
	Success *bool
	// Type keeps events of exactly this type; a type ending in ".*" keeps the
	// types under that prefix ("degradation.*").
	Type string
	// Limit is the page size. Defaults to DefaultAuditLimit; at most
	// MaxAuditLimit.
	Limit int
	// Before continues a listing after the last event of the previous page
	// (its AuditPage.Next).
	Before *AuditCursor
}

// AuditCursor is a position in an audit listing, newest first: the creation
// time and id of the last event seen.
type AuditCursor struct {
	CreatedAt time.Time
	ID        int64
}

// String encodes c for use in a URL; ParseAuditCursor decodes it.
func (c AuditCursor) String() string {
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(c.ID))
	return encodeCursor(c.CreatedAt, id[:])
}

// ErrInvalidAuditCursor is returned by ParseAuditCursor for a string that no
// AuditCursor produced.
var ErrInvalidAuditCursor = errors.New("store: invalid audit cursor (pass the Next value of the previous page unchanged)")

// ParseAuditCursor decodes an AuditCursor.String.
func ParseAuditCursor(s string) (AuditCursor, error) {
	at, id, ok := decodeCursor(s, 8)
	if !ok {
		return AuditCursor{}, ErrInvalidAuditCursor
	}
	return AuditCursor{CreatedAt: at, ID: int64(binary.BigEndian.Uint64(id))}, nil
}

// AuditPage is a page of ListAudit.
type AuditPage struct {
	// Events, newest first.
	Events []AuditEvent `json:"events"`
	// Next continues the listing (AuditFilter.Before); nil on the last page.
	Next *AuditCursor `json:"-"`
}

// ListAudit returns the audit events f selects, newest first (by created_at,
// then id), a page at a time with a keyset cursor, so deep pages cost no more
// than the first. A negative or too large Limit returns an *InputError.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) (AuditPage, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultAuditLimit
	case limit < 0 || limit > MaxAuditLimit:
		return AuditPage{}, inputError("filter", "limit", "%d is outside 1..%d", limit, MaxAuditLimit)
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < "+arg(f.Until))
	}
	if f.Success != nil {
		where = append(where, "success = "+arg(*f.Success))
	}
	if prefix, ok := strings.CutSuffix(f.Type, ".*"); ok {
		where = append(where, "starts_with(event_type, "+arg(prefix+".")+")")
	} else if f.Type != "" {
		where = append(where, "event_type = "+arg(f.Type))
	}
	if f.Before != nil {
		where = append(where, fmt.Sprintf("(created_at, id) < (%s, %s)", arg(f.Before.CreatedAt), arg(f.Before.ID)))
	}
	sql := `SELECT id, event_type, client_info, success, coalesce(error_details, ''), created_at
		FROM omnibridge.security_audit_log`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY created_at DESC, id DESC LIMIT " + arg(limit+1)

	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return AuditPage{}, fmt.Errorf("store: list audit: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEvent, error) {
		var (
			ev   AuditEvent
			info []byte
		)
		if err := row.Scan(&ev.ID, &ev.Type, &info, &ev.Success, &ev.ErrorDetails, &ev.CreatedAt); err != nil {
			return AuditEvent{}, err
		}
		m, err := decodeJSONObject(info)
		if err != nil {
			// client_info may be any JSON value when written by other tools.
			m = map[string]any{"value": string(info)}
		}
		ev.ClientInfo = m
		return ev, nil
	})
	if err != nil {
		return AuditPage{}, fmt.Errorf("store: list audit: %w", err)
	}
	page := AuditPage{Events: events}
	if len(events) > limit {
		page.Events = events[:limit]
		last := page.Events[limit-1]
		page.Next = &AuditCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return page, nil
}
