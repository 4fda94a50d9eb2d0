package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)

	sess, err := b.store.CreateSession(ctx, store.Session{
		ServiceName: "hook_receiver", InstanceID: "host-1", Metadata: map[string]any{"version": "1.2.3"},
	})
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, sess.ID)
	require.Equal(t, uuid.Version(7), sess.ID.Version(), "a generated id is a UUIDv7")
	require.Equal(t, store.SessionActive, sess.Status)
	require.Equal(t, "host-1", sess.InstanceID)
	require.Equal(t, map[string]any{"version": "1.2.3"}, sess.Metadata)
	require.Nil(t, sess.EndedAt)

	// A retried create of the same session returns it; another service may not take its id.
	again, err := b.store.CreateSession(ctx, store.Session{ID: sess.ID, ServiceName: "hook_receiver"})
	require.NoError(t, err)
	require.Equal(t, sess.StartedAt, again.StartedAt)
	_, err = b.store.CreateSession(ctx, store.Session{ID: sess.ID, ServiceName: "model_metrics"})
	require.ErrorIs(t, err, store.ErrSessionExists)

	// Heartbeat moves last_seen.
	b.exec(t, `UPDATE omnibridge.service_sessions SET last_seen = now() - interval '1 hour' WHERE id = $1`, sess.ID)
	require.NoError(t, b.store.Heartbeat(ctx, sess.ID))
	require.Zero(t, b.scalar(t, `SELECT count(*) FROM omnibridge.service_sessions
		WHERE id = $1 AND last_seen < now() - interval '1 minute'`, sess.ID))

	// End it; a second end and a heartbeat after the end are refused, the first end stays.
	require.NoError(t, b.store.EndSession(ctx, sess.ID, store.SessionEnded))
	require.ErrorIs(t, b.store.EndSession(ctx, sess.ID, store.SessionFailed), store.ErrSessionNotActive)
	require.ErrorIs(t, b.store.Heartbeat(ctx, sess.ID), store.ErrSessionNotActive)
	list, err := b.store.ListSessions(ctx, store.SessionFilter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, store.SessionEnded, list[0].Status)
	require.NotNil(t, list[0].EndedAt)
	_, err = b.store.CreateSession(ctx, store.Session{ID: sess.ID, ServiceName: "hook_receiver"})
	require.ErrorIs(t, err, store.ErrSessionExists, "an ended session's id is not reused")

	missing := uuid.Must(uuid.NewV7())
	require.ErrorIs(t, b.store.Heartbeat(ctx, missing), store.ErrSessionNotFound)
	require.ErrorIs(t, b.store.EndSession(ctx, missing, store.SessionEnded), store.ErrSessionNotFound)
}

func TestSessionInputErrors(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	for name, sess := range map[string]store.Session{
		"no service":       {},
		"NUL in service":   {ServiceName: "a\x00b"},
		"invalid UTF-8":    {ServiceName: "svc", InstanceID: "\xff"},
		"too long":         {ServiceName: string(make([]rune, 256))},
		"NUL in metadata":  {ServiceName: "svc", Metadata: map[string]any{"k": "a\x00"}},
		"unencodable meta": {ServiceName: "svc", Metadata: map[string]any{"f": func() {}}},
	} {
		_, err := b.store.CreateSession(ctx, sess)
		require.ErrorIs(t, err, store.ErrInvalidInput, name)
	}
	require.ErrorIs(t, b.store.EndSession(ctx, uuid.New(), store.SessionActive), store.ErrInvalidInput)
	require.ErrorIs(t, b.store.EndSession(ctx, uuid.New(), "gone"), store.ErrInvalidInput)
	_, err := b.store.ListSessions(ctx, store.SessionFilter{Limit: store.MaxSessionLimit + 1})
	require.ErrorIs(t, err, store.ErrInvalidInput)
	_, err = b.store.ReapSessions(ctx, 0)
	require.ErrorIs(t, err, store.ErrInvalidInput)
	require.Zero(t, b.scalar(t, `SELECT count(*) FROM omnibridge.service_sessions`))
}

func TestListSessionsFilters(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	var ids []uuid.UUID
	for i, svc := range []string{"hook_receiver", "hook_receiver", "workflow_coordinator", "model_metrics"} {
		s, err := b.store.CreateSession(ctx, store.Session{ServiceName: svc, InstanceID: string(rune('a' + i))})
		require.NoError(t, err)
		// Distinct start times, oldest first.
		b.exec(t, `UPDATE omnibridge.service_sessions SET session_start = now() - $2 * interval '1 minute' WHERE id = $1`, s.ID, 10-i)
		ids = append(ids, s.ID)
	}
	require.NoError(t, b.store.EndSession(ctx, ids[1], store.SessionTerminated))

	all, err := b.store.ListSessions(ctx, store.SessionFilter{})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{ids[3], ids[2], ids[1], ids[0]}, sessionIDs(all), "newest first")

	active, err := b.store.ListSessions(ctx, store.SessionFilter{ActiveOnly: true})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{ids[3], ids[2], ids[0]}, sessionIDs(active))

	hr, err := b.store.ListSessions(ctx, store.SessionFilter{Service: "hook_receiver", ActiveOnly: true})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{ids[0]}, sessionIDs(hr))

	two, err := b.store.ListSessions(ctx, store.SessionFilter{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{ids[3], ids[2]}, sessionIDs(two))
}

func sessionIDs(ss []store.Session) []uuid.UUID {
	out := make([]uuid.UUID, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func TestReapSessions(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	create := func(name string) uuid.UUID {
		s, err := b.store.CreateSession(ctx, store.Session{ServiceName: name})
		require.NoError(t, err)
		return s.ID
	}
	silent, fresh, ended := create("silent"), create("fresh"), create("ended")
	b.exec(t, `UPDATE omnibridge.service_sessions SET last_seen = now() - interval '10 minutes' WHERE id = $1`, silent)
	b.exec(t, `UPDATE omnibridge.service_sessions SET last_seen = now() - interval '1 minute' WHERE id = $1`, fresh)
	require.NoError(t, b.store.EndSession(ctx, ended, store.SessionEnded))
	b.exec(t, `UPDATE omnibridge.service_sessions SET last_seen = now() - interval '1 hour' WHERE id = $1`, ended)

	n, err := b.store.ReapSessions(ctx, 5*time.Minute)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the active session silent for longer than 5 minutes")

	var status string
	var endedAt, lastSeen time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT status, session_end, last_seen FROM omnibridge.service_sessions WHERE id = $1`,
		silent).Scan(&status, &endedAt, &lastSeen))
	require.Equal(t, "terminated", status)
	require.True(t, endedAt.Equal(lastSeen), "a reaped session ends at its last heartbeat")
	require.ErrorIs(t, b.store.Heartbeat(ctx, silent), store.ErrSessionNotActive)
	require.NoError(t, b.store.Heartbeat(ctx, fresh))

	n, err = b.store.ReapSessions(ctx, 5*time.Minute)
	require.NoError(t, err)
	require.Zero(t, n, "reaping again finds nothing")
}
