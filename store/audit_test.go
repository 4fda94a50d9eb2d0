package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

func TestAppendAndListAudit(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	var evs []store.AuditEvent
	for i := range 30 {
		typ := "hook.signature_invalid"
		if i%3 == 0 {
			typ = "degradation.pool.high_utilization"
		}
		evs = append(evs, store.AuditEvent{
			Type: typ, Success: i%2 == 0, ClientInfo: map[string]any{"n": i},
			CreatedAt: base.Add(time.Duration(i) * time.Minute),
		})
	}
	require.NoError(t, b.store.AppendAudits(ctx, evs[:29]))
	require.NoError(t, b.store.AppendAudit(ctx, evs[29]))
	require.NoError(t, b.store.AppendAudit(ctx, store.AuditEvent{Type: "now", Success: true}))

	// Pages of 7, newest first, through the cursor (string form, as the API
	// passes it), across everything.
	var seen []float64
	var before *store.AuditCursor
	for {
		page, err := b.store.ListAudit(ctx, store.AuditFilter{Limit: 7, Before: before, Until: base.Add(time.Hour)})
		require.NoError(t, err)
		for _, ev := range page.Events {
			seen = append(seen, ev.ClientInfo["n"].(float64))
		}
		if page.Next == nil {
			break
		}
		c, err := store.ParseAuditCursor(page.Next.String())
		require.NoError(t, err)
		require.True(t, page.Next.CreatedAt.Equal(c.CreatedAt))
		require.Equal(t, page.Next.ID, c.ID)
		before = &c
	}
	require.Len(t, seen, 30)
	for i, n := range seen {
		require.Equal(t, float64(29-i), n, "newest first")
	}

	failed := false
	page, err := b.store.ListAudit(ctx, store.AuditFilter{Success: &failed, Type: "hook.signature_invalid"})
	require.NoError(t, err)
	require.Len(t, page.Events, 10) // odd i, not a multiple of 3
	for _, ev := range page.Events {
		require.False(t, ev.Success)
		require.Equal(t, "hook.signature_invalid", ev.Type)
		require.NotZero(t, ev.ID)
	}

	page, err = b.store.ListAudit(ctx, store.AuditFilter{Type: "degradation.*", Since: base.Add(10 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, page.Events, 6) // i = 12, 15, …, 27
	require.Equal(t, float64(27), page.Events[0].ClientInfo["n"])

	_, err = store.ParseAuditCursor("not a cursor")
	require.ErrorIs(t, err, store.ErrInvalidAuditCursor)
	_, err = b.store.ListAudit(ctx, store.AuditFilter{Limit: -1})
	require.ErrorIs(t, err, store.ErrInvalidInput)
}

func TestAppendAuditCleansHostileInput(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	require.NoError(t, b.store.AppendAudit(ctx, store.AuditEvent{
		Type: "hook.signature_invalid",
		ClientInfo: map[string]any{
			"user_agent": "evil\x00agent\xff", "key\x00": `literal \u0000 text`, "nested": []any{"a\x00"},
		},
		ErrorDetails: "bad\x00 signature " + strings.Repeat("é", 5000),
	}))
	require.NoError(t, b.store.AppendAudit(ctx, store.AuditEvent{
		Type: "big", ClientInfo: map[string]any{"blob": strings.Repeat("x", store.MaxAuditClientInfoBytes)},
	}))

	page, err := b.store.ListAudit(ctx, store.AuditFilter{Type: "hook.signature_invalid"})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	ev := page.Events[0]
	require.Equal(t, "evil\uFFFDagent\uFFFD", ev.ClientInfo["user_agent"])
	require.Equal(t, `literal \u0000 text`, ev.ClientInfo["key\uFFFD"], "an escaped backslash is text, not a NUL")
	require.Equal(t, []any{"a\uFFFD"}, ev.ClientInfo["nested"])
	require.True(t, strings.HasPrefix(ev.ErrorDetails, "bad signature éé"))
	require.LessOrEqual(t, len(ev.ErrorDetails), store.MaxAuditDetailsBytes)

	page, err = b.store.ListAudit(ctx, store.AuditFilter{Type: "big"})
	require.NoError(t, err)
	require.Equal(t, true, page.Events[0].ClientInfo["truncated"])

	// What code chooses is refused rather than cleaned, naming the batch index.
	err = b.store.AppendAudits(ctx, []store.AuditEvent{{Type: "ok"}, {Type: "bad\x00type"}})
	var ie *store.InputError
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, 1, ie.Index)
	require.Equal(t, "event_type", ie.Field)
	require.ErrorIs(t, b.store.AppendAudit(ctx, store.AuditEvent{}), store.ErrInvalidInput)
	require.ErrorIs(t, b.store.AppendAudit(ctx, store.AuditEvent{Type: strings.Repeat("t", 101)}), store.ErrInvalidInput)
	require.Equal(t, int64(2), b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log`))
}

func TestRecordDegradation(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	d := store.Degradation{Component: "pool", Kind: "high_utilization", Details: map[string]any{"utilization_percent": 91.5}}
	require.NoError(t, b.store.RecordDegradation(ctx, d))
	require.NoError(t, b.store.RecordDegradation(ctx, store.Degradation{Component: "pool", Kind: "high_utilization", Recovered: true}))
	require.ErrorIs(t, b.store.RecordDegradation(ctx, store.Degradation{Component: "Pool", Kind: "x"}), store.ErrInvalidInput)
	require.ErrorIs(t, b.store.RecordDegradation(ctx, store.Degradation{Component: "pool"}), store.ErrInvalidInput)
	require.ErrorIs(t, b.store.RecordDegradation(ctx, store.Degradation{Component: "pool", Kind: strings.Repeat("k", 90)}), store.ErrInvalidInput)

	failed := false
	page, err := b.store.ListAudit(ctx, store.AuditFilter{Type: "degradation.*", Success: &failed})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	ev := page.Events[0]
	require.Equal(t, "degradation.pool.high_utilization", ev.Type)
	require.Equal(t, d.Type(), ev.Type)
	require.Equal(t, map[string]any{"utilization_percent": 91.5, "component": "pool", "kind": "high_utilization"}, ev.ClientInfo)
	require.Nil(t, d.Details["component"], "the caller's map is not changed")
}
