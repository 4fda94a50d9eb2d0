package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SessionStatus is the state of a service session.
type SessionStatus string

// The session statuses. A session starts active and ends once, in one of the
// other three.
const (
	// SessionActive: the instance runs and heartbeats.
	SessionActive SessionStatus = "active"
	// SessionEnded: the instance shut down cleanly.
	SessionEnded SessionStatus = "ended"
	// SessionTerminated: the instance was stopped from outside, or went silent
	// and the reaper closed its session.
	SessionTerminated SessionStatus = "terminated"
	// SessionFailed: the instance stopped on an error.
	SessionFailed SessionStatus = "failed"
)

// MaxSessionText is the longest service name or instance id, in characters.
const MaxSessionText = 255

// Session is one running or finished service instance (service_sessions).
type Session struct {
	// ID identifies the session; CreateSession gives a zero ID a new UUIDv7.
	ID uuid.UUID `json:"id"`
	// ServiceName is the service, e.g. "hook_receiver". Required.
	ServiceName string `json:"service_name"`
	// InstanceID tells instances of one service apart (host name, pod name);
	// "" when not given.
	InstanceID string `json:"instance_id"`
	// Metadata is free-form (version, build, config digest); nil means {}.
	Metadata map[string]any `json:"metadata"`
	// Status, StartedAt, EndedAt and LastSeen are set by the store.
	Status    SessionStatus `json:"status"`
	StartedAt time.Time     `json:"session_start"`
	// EndedAt is nil while the session is active.
	EndedAt  *time.Time `json:"session_end,omitempty"`
	LastSeen time.Time  `json:"last_seen"`
}

// Errors of the session operations.
var (
	// ErrSessionNotFound: no session has the id (ended sessions leave after the
	// retention period).
	ErrSessionNotFound = errors.New("store: session not found (create it with CreateSession first; ended sessions leave after the retention period)")
	// ErrSessionNotActive: the session has ended, possibly closed by the reaper
	// after missed heartbeats; the instance should create a new session.
	ErrSessionNotActive = errors.New("store: session is no longer active (it was ended or reaped after missed heartbeats; create a new session)")
	// ErrSessionExists: CreateSession got the id of another service's session
	// or of an ended one; use a new id.
	ErrSessionExists = errors.New("store: a different or ended session already has this id (use a new id, or a zero id for a generated one)")
)

const sessionColumns = `id, service_name, coalesce(instance_id, ''), metadata, status, session_start, session_end, last_seen`

func scanSession(row pgx.CollectableRow) (Session, error) {
	var (
		s    Session
		meta []byte
	)
	if err := row.Scan(&s.ID, &s.ServiceName, &s.InstanceID, &meta, &s.Status, &s.StartedAt, &s.EndedAt, &s.LastSeen); err != nil {
		return Session{}, err
	}
	m, err := decodeJSONObject(meta)
	if err != nil {
		return Session{}, fmt.Errorf("metadata of session %s: %w", s.ID, err)
	}
	s.Metadata = m
	return s, nil
}

// CreateSession implements ADR-016's create_service_session: it registers an
// active session for sess.ServiceName and sess.InstanceID with sess.Metadata,
// under sess.ID or, when that is zero, a new UUIDv7, and returns the stored
// session.
//
// Repeating the call with the same id (a retry after a lost reply) returns the
// session unchanged as long as it is active and of the same service; an id
// that another service's session or an ended session holds returns
// ErrSessionExists. Bad input returns an *InputError and writes nothing.
func (s *Store) CreateSession(ctx context.Context, sess Session) (Session, error) {
	if r := checkName(sess.ServiceName, MaxSessionText, true); r != "" {
		return Session{}, inputError("session", "service_name", "%s", r)
	}
	if r := checkName(sess.InstanceID, MaxSessionText, false); r != "" {
		return Session{}, inputError("session", "instance_id", "%s", r)
	}
	meta := []byte("{}")
	if sess.Metadata != nil {
		b, err := marshalJSONB(sess.Metadata, false)
		if err != nil {
			return Session{}, inputError("session", "metadata", "%v", err)
		}
		meta = b
	}
	id := sess.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return Session{}, fmt.Errorf("store: create session: new id: %w", err)
		}
	}
	rows, err := s.db.Query(ctx, `
		INSERT INTO omnibridge.service_sessions (id, service_name, instance_id, metadata)
		VALUES ($1, $2, NULLIF($3, ''), $4)
		ON CONFLICT (id) DO UPDATE SET last_seen = omnibridge.service_sessions.last_seen
		WHERE omnibridge.service_sessions.service_name = EXCLUDED.service_name
		  AND omnibridge.service_sessions.status = 'active'
		RETURNING `+sessionColumns, id, sess.ServiceName, sess.InstanceID, meta)
	if err != nil {
		return Session{}, fmt.Errorf("store: create session: %w", err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, scanSession)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fmt.Errorf("store: create session %s: %w", id, ErrSessionExists)
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: create session: %w", err)
	}
	return out, nil
}

// Heartbeat records that the session's instance is alive: last_seen becomes
// the database's now(). It returns ErrSessionNotFound for an unknown id and
// ErrSessionNotActive for a session that has ended (the reaper may have closed
// it after missed heartbeats).
func (s *Store) Heartbeat(ctx context.Context, id uuid.UUID) error {
	tag, err := s.db.Exec(ctx, `
		UPDATE omnibridge.service_sessions SET last_seen = now()
		WHERE id = $1 AND status = 'active'`, id)
	if err != nil {
		return fmt.Errorf("store: heartbeat %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.sessionGone(ctx, "heartbeat", id)
}

// EndSession implements ADR-016's end_service_session: it closes an active
// session with status SessionEnded, SessionTerminated or SessionFailed, setting
// session_end and last_seen to now(). Any other status returns an *InputError.
// A session that already ended keeps its first end and the call returns
// ErrSessionNotActive; an unknown id returns ErrSessionNotFound.
func (s *Store) EndSession(ctx context.Context, id uuid.UUID, status SessionStatus) error {
	switch status {
	case SessionEnded, SessionTerminated, SessionFailed:
	default:
		return inputError("session", "status", "%q is not an end status (want ended, terminated or failed)", status)
	}
	tag, err := s.db.Exec(ctx, `
		UPDATE omnibridge.service_sessions
		SET status = $2, session_end = now(), last_seen = now()
		WHERE id = $1 AND status = 'active'`, id, string(status))
	if err != nil {
		return fmt.Errorf("store: end session %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.sessionGone(ctx, "end session", id)
}

// sessionGone explains why an update of an active session matched no row.
func (s *Store) sessionGone(ctx context.Context, op string, id uuid.UUID) error {
	var status string
	err := s.db.QueryRow(ctx, `SELECT status FROM omnibridge.service_sessions WHERE id = $1`, id).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("store: %s %s: %w", op, id, ErrSessionNotFound)
	case err != nil:
		return fmt.Errorf("store: %s %s: %w", op, id, err)
	default:
		return fmt.Errorf("store: %s %s (status %s): %w", op, id, status, ErrSessionNotActive)
	}
}

// Limits of ListSessions.
const (
	// DefaultSessionLimit is the number of sessions listed when
	// SessionFilter.Limit is 0.
	DefaultSessionLimit = 100
	// MaxSessionLimit is the most sessions one ListSessions call returns.
	MaxSessionLimit = 1000
)

// SessionFilter selects sessions for ListSessions. Zero fields do not filter.
type SessionFilter struct {
	// ActiveOnly keeps active sessions only.
	ActiveOnly bool
	// Service keeps the sessions of this service name.
	Service string
	// Limit is the most sessions returned. Defaults to DefaultSessionLimit; at
	// most MaxSessionLimit.
	Limit int
}

// ListSessions returns the sessions f selects, the most recently started
// first. A negative or too large Limit returns an *InputError.
func (s *Store) ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultSessionLimit
	case limit < 0 || limit > MaxSessionLimit:
		return nil, inputError("filter", "limit", "%d is outside 1..%d", limit, MaxSessionLimit)
	}
	rows, err := s.db.Query(ctx, `
		SELECT `+sessionColumns+` FROM omnibridge.service_sessions
		WHERE ($1 = false OR status = 'active') AND ($2 = '' OR service_name = $2)
		ORDER BY session_start DESC, id DESC
		LIMIT $3`, f.ActiveOnly, f.Service, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	return out, nil
}

// ReapSessions closes the active sessions whose last heartbeat is older than
// silentFor (by the database clock) with status SessionTerminated, and returns
// how many it closed. Their session_end is their last heartbeat, the last
// moment the instance was known to be alive. Pass a few heartbeat intervals,
// so that one late heartbeat does not end a healthy session; silentFor must be
// positive.
//
// An instance whose session was reaped gets ErrSessionNotActive from its next
// Heartbeat and should create a new session.
func (s *Store) ReapSessions(ctx context.Context, silentFor time.Duration) (int, error) {
	if silentFor <= 0 {
		return 0, inputError("filter", "silent_for", "%s must be positive", silentFor)
	}
	tag, err := s.db.Exec(ctx, `
		UPDATE omnibridge.service_sessions
		SET status = 'terminated', session_end = last_seen
		WHERE status = 'active' AND last_seen < now() - $1::interval`, silentFor)
	if err != nil {
		return 0, fmt.Errorf("store: reap sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
