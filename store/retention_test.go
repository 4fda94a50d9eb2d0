package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

const day = 24 * time.Hour

// retentionSeed builds a database where the default policy has something to
// do in every table: dated partitions that may go whole, partitions that hold
// rows to keep, the partition the cutoff falls in, and DEFAULT partitions.
type retentionSeed struct {
	b *opsBundle
	t *testing.T
	n int
}

func (s *retentionSeed) partition(table string, ago time.Duration) {
	s.b.exec(s.t, `SELECT omnibridge.create_partition_for($1::regclass, now() - $2::interval)`, "omnibridge."+table, ago)
}

// event inserts a hook event created ago; a dead event's last activity
// (next_attempt_at) is lastActive ago. With a delivery id, its dedup row is
// written too, dated like the event.
func (s *retentionSeed) event(status string, ago, lastActive time.Duration, tag string) uuid.UUID {
	s.t.Helper()
	s.n++
	id := uuid.Must(uuid.NewV7())
	s.b.exec(s.t, `
		WITH e AS (
			INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, status, created_at,
				next_attempt_at, claimed_at, claim_id, processed_at, delivery_id, metadata)
			VALUES ($1, 'github', 'push', 'repo', '1', $2, now() - $3::interval, now() - $4::interval,
				CASE WHEN $2 = 'processing' THEN now() END,
				CASE WHEN $2 = 'processing' THEN gen_random_uuid() END,
				CASE WHEN $2 = 'processed' THEN now() - $3::interval + interval '1 second' END,
				'd' || $5::int, jsonb_build_object('tag', $6::text))
			RETURNING id, created_at)
		INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id, created_at)
		SELECT 'github', 'd' || $5::int, id, created_at FROM e`,
		id, status, ago, lastActive, s.n, tag)
	return id
}

func (s *retentionSeed) metric(ago time.Duration) {
	s.b.exec(s.t, `INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, created_at)
		VALUES (gen_random_uuid(), 1, true, now() - $1::interval)`, ago)
}

func (s *retentionSeed) snapshot(ago time.Duration) {
	s.b.exec(s.t, `INSERT INTO omnibridge.connection_metrics (service_name, instance_id, pool_size,
		active_connections, idle_connections, recorded_at) VALUES ('svc', 'i', 1, 0, 1, now() - $1::interval)`, ago)
}

func (s *retentionSeed) session(status string, endedAgo time.Duration) {
	s.b.exec(s.t, `INSERT INTO omnibridge.service_sessions (id, service_name, status, session_start, session_end, last_seen)
		VALUES (gen_random_uuid(), 'svc', $1::text, now() - interval '60 days',
			CASE WHEN $1::text <> 'active' THEN now() - $2::interval END, now() - $2::interval)`, status, endedAgo)
}

func (s *retentionSeed) audit(ago time.Duration) {
	s.b.exec(s.t, `INSERT INTO omnibridge.security_audit_log (event_type, success, created_at)
		VALUES ('seed', true, now() - $1::interval)`, ago)
}

// seedRetention fills the database and returns what the default policy must
// remove from each table (rows, partitions).
func seedRetention(t *testing.T, b *opsBundle) map[string][2]int {
	s := &retentionSeed{b: b, t: t}
	cutoff := 30 * day

	// hook_events. Droppable: 40 days ago, processed and long-dead events only.
	s.partition("hook_events", 40*day)
	for range 10 {
		s.event("processed", 40*day, 40*day, "p40")
	}
	s.event("dead", 40*day, 39*day, "p40")
	s.event("dead", 40*day, 39*day, "p40")
	// Kept partitions: a stuck pending event, a dead event that failed again
	// lately (replayed), a processing one: only their processed rows go.
	s.partition("hook_events", 35*day)
	for range 10 {
		s.event("processed", 35*day, 35*day, "p35")
	}
	s.event("pending", 35*day, 35*day, "keep")
	s.partition("hook_events", 33*day)
	for range 5 {
		s.event("processed", 33*day, 33*day, "p33")
	}
	s.event("dead", 33*day, 2*day, "keep")
	s.partition("hook_events", 32*day)
	for range 3 {
		s.event("processed", 32*day, 32*day, "p32")
	}
	s.event("processing", 32*day, 32*day, "keep")
	// The partition the cutoff falls in: a minute on either side of it.
	s.partition("hook_events", cutoff)
	s.event("processed", cutoff+time.Minute, cutoff, "edge")
	s.event("processed", cutoff-time.Minute, cutoff, "keep")
	// No partition 60 days back: these live in the DEFAULT partition.
	for range 3 {
		s.event("processed", 60*day, 60*day, "default")
	}
	s.event("dead", 60*day, 60*day, "default")
	s.event("pending", 60*day, 60*day, "keep")
	// Recent rows stay, whatever their status.
	s.partition("hook_events", 10*day)
	s.event("processed", 10*day, 10*day, "keep")
	s.event("dead", 10*day, 10*day, "keep")
	s.event("processed", time.Hour, time.Hour, "keep")
	// A delivery whose event is gone but which is recent stays; an old one goes.
	b.exec(t, `INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id, created_at) VALUES
		('github', 'orphan-new', gen_random_uuid(), now() - interval '5 days'),
		('github', 'orphan-old', gen_random_uuid(), now() - interval '45 days')`)

	// event_metrics (90 days): two droppable partitions, the cutoff's
	// partition, the DEFAULT partition.
	for _, ago := range []time.Duration{100 * day, 95 * day} {
		s.partition("event_metrics", ago)
		for range 4 {
			s.metric(ago)
		}
	}
	s.partition("event_metrics", 90*day)
	s.metric(90*day + time.Minute)
	s.metric(90*day - time.Minute)
	for range 3 {
		s.metric(120 * day)
	}
	s.metric(80 * day)
	s.metric(80 * day)
	s.metric(0)

	// connection_metrics (30 days).
	s.partition("connection_metrics", 40*day)
	s.snapshot(40 * day)
	s.snapshot(40 * day)
	s.snapshot(35 * day)
	s.snapshot(20 * day)

	// service_sessions (7 days after their end); active ones never go.
	s.session("ended", 8*day)
	s.session("terminated", 10*day)
	s.session("ended", 6*day)
	s.session("active", 30*day)

	// security_audit_log (180 days), monthly: a partition that ended before the
	// cutoff goes whole; DEFAULT rows older than the cutoff go.
	s.partition("security_audit_log", 220*day)
	for range 3 {
		s.audit(220 * day)
	}
	s.audit(400 * day)
	s.audit(400 * day)
	s.audit(100 * day)

	return map[string][2]int{
		// 12 dropped with p40, 10+5+3 beside kept rows, 1 at the edge, 4 in DEFAULT.
		"hook_events": {12 + 18 + 1 + 4, 1},
		// The deliveries of the 35 removed events, and the old orphan.
		"hook_event_deliveries": {35 + 1, 0},
		"event_metrics":         {8 + 1 + 3, 2},
		"connection_metrics":    {3, 1},
		"service_sessions":      {2, 0},
		"security_audit_log":    {5, 1},
	}
}

// tableState is everything retention might change: row counts and partitions.
func tableState(t *testing.T, b *opsBundle) map[string]int64 {
	out := map[string]int64{}
	for _, table := range []string{"hook_events", "hook_event_deliveries", "event_metrics", "connection_metrics",
		"service_sessions", "security_audit_log"} {
		out[table] = b.scalar(t, "SELECT count(*) FROM omnibridge."+table)
	}
	out["partitions"] = b.scalar(t, `SELECT count(*) FROM omnibridge.retention_partitions()`)
	return out
}

func TestRetentionAcrossPartitions(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	want := seedRetention(t, b)
	policy := store.RetentionPolicy{BatchSize: 3}

	// A dry run reports what would go and changes nothing.
	before := tableState(t, b)
	dry, err := b.store.RunRetention(ctx, policy, true)
	require.NoError(t, err)
	require.True(t, dry.DryRun)
	require.Equal(t, before, tableState(t, b), "a dry run changes nothing")
	require.Zero(t, b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log WHERE event_type = 'retention.run'`))
	checkReport(t, dry, want)

	rep, err := b.store.RunRetention(ctx, policy, false)
	require.NoError(t, err)
	checkReport(t, rep, want)
	for _, tr := range rep.Tables {
		require.Empty(t, tr.Error)
		if tr.Table == "hook_events" {
			require.Equal(t, []string{"hook_events_p" + dayName(t, b, 40*day)}, tr.DroppedPartitions)
			require.GreaterOrEqual(t, tr.Batches, 7, "18 + 4 + 1 rows in batches of 3")
		}
	}
	after := tableState(t, b)
	after["security_audit_log"]-- // the run's own audit row
	for table, w := range want {
		require.Equal(t, before[table]-int64(w[0]), after[table], "rows left in %s", table)
	}

	// Exactly the rows that must stay are left.
	var tags []string
	rows, err := b.pool.Query(ctx, `SELECT metadata->>'tag' || ':' || status FROM omnibridge.hook_events ORDER BY created_at`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		tags = append(tags, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"keep:pending", "keep:pending", "keep:dead", "keep:processing", "keep:processed",
		"keep:processed", "keep:dead", "keep:processed"}, tags)
	require.Zero(t, b.scalar(t, `SELECT count(*) FROM omnibridge.hook_event_deliveries d
		WHERE NOT EXISTS (SELECT 1 FROM omnibridge.hook_events e WHERE e.id = d.event_id)
		  AND d.delivery_id <> 'orphan-new'`), "every delivery left guards an event, or is recent")
	require.Equal(t, int64(1), b.scalar(t, `SELECT count(*) FROM omnibridge.service_sessions WHERE status = 'active'`))

	// The run is in the audit log.
	var info []byte
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT client_info FROM omnibridge.security_audit_log
		WHERE event_type = 'retention.run' AND success`).Scan(&info))
	var logged map[string]any
	require.NoError(t, json.Unmarshal(info, &logged))
	require.Equal(t, float64(rep.RowsDeleted), logged["rows_deleted"])

	// A second run finds nothing.
	again, err := b.store.RunRetention(ctx, policy, false)
	require.NoError(t, err)
	require.Zero(t, again.RowsDeleted)
	require.Zero(t, again.PartitionsDropped)
}

func checkReport(t *testing.T, rep store.RetentionReport, want map[string][2]int) {
	t.Helper()
	var rows int64
	var parts int
	require.Len(t, rep.Tables, len(want))
	for _, tr := range rep.Tables {
		w, ok := want[tr.Table]
		require.True(t, ok, tr.Table)
		require.Equal(t, int64(w[0]), tr.RowsDeleted, "rows of %s (dry run %v)", tr.Table, rep.DryRun)
		require.Equal(t, w[1], tr.PartitionsDropped, "partitions of %s (dry run %v)", tr.Table, rep.DryRun)
		require.Len(t, tr.DroppedPartitions, w[1])
		rows += tr.RowsDeleted
		parts += tr.PartitionsDropped
	}
	require.Equal(t, rows, rep.RowsDeleted)
	require.Equal(t, parts, rep.PartitionsDropped)
	raw, err := json.Marshal(rep)
	require.NoError(t, err)
	for _, k := range []string{`"dry_run"`, `"rows_deleted"`, `"partitions_dropped"`, `"tables"`, `"duration_ms"`, `"table"`} {
		require.Contains(t, string(raw), k)
	}
}

// dayName is the YYYYMMDD (UTC) of now() - ago on the database.
func dayName(t *testing.T, b *opsBundle, ago time.Duration) string {
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT to_char((now() - $1::interval) AT TIME ZONE 'UTC', 'YYYYMMDD')`, ago).Scan(&s))
	return s
}

// TestRetentionLockTimeout holds a lock that a partition drop needs: the drop
// gives up within the lock timeout (and its retries), the table reports the
// error, and the other tables are still done.
func TestRetentionLockTimeout(t *testing.T) {
	t.Parallel()
	b := setupOps(t)
	ctx := opsCtx(t)
	s := &retentionSeed{b: b, t: t}
	s.partition("hook_events", 40*day)
	s.event("processed", 40*day, 40*day, "p40")
	s.session("ended", 8*day)

	holder, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `SELECT count(*) FROM omnibridge.hook_events`) // ACCESS SHARE on every partition
	require.NoError(t, err)

	begin := time.Now()
	rep, err := b.store.RunRetention(ctx, store.RetentionPolicy{LockTimeout: 50 * time.Millisecond}, false)
	require.Error(t, err)
	require.Contains(t, err.Error(), "hook_events")
	require.Less(t, time.Since(begin), 30*time.Second, "bounded by the lock timeout, not by the holder")
	byTable := map[string]store.TableReport{}
	for _, tr := range rep.Tables {
		byTable[tr.Table] = tr
	}
	require.Contains(t, byTable["hook_events"].Error, "lock timeout")
	require.Zero(t, byTable["hook_events"].PartitionsDropped)
	require.Equal(t, int64(1), byTable["service_sessions"].RowsDeleted, "the other tables are still done")
	require.Equal(t, int64(1), b.scalar(t, `SELECT count(*) FROM omnibridge.hook_events`))

	// Once the holder is gone the next run drops it.
	require.NoError(t, holder.Rollback(ctx))
	rep, err = b.store.RunRetention(ctx, store.RetentionPolicy{}, false)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Tables[0].PartitionsDropped)
	require.Equal(t, int64(1), b.scalar(t, `SELECT count(*) FROM omnibridge.security_audit_log
		WHERE event_type = 'retention.run' AND NOT success`), "the failed run is audited too")
}

func TestRetentionPolicyValidate(t *testing.T) {
	t.Parallel()
	p := store.DefaultRetentionPolicy()
	require.NoError(t, p.Validate())
	require.Equal(t, 30*day, p.ProcessedEvents)
	require.Equal(t, 30*day, p.DeadEvents)
	require.Equal(t, 90*day, p.EventMetrics)
	require.Equal(t, 7*day, p.EndedSessions)
	require.Equal(t, 180*day, p.Audit)
	require.Equal(t, 30*day, p.ConnectionMetrics)
	require.Equal(t, 5000, p.BatchSize)
	require.Equal(t, 7, p.PartitionsAhead)

	bad := store.RetentionPolicy{ProcessedEvents: time.Minute, Audit: -time.Hour, BatchSize: -1,
		PartitionsAhead: 400, LockTimeout: time.Hour}.WithDefaults()
	err := bad.Validate()
	require.Error(t, err)
	for _, field := range []string{`processed_events: invalid value "1m0s"`, `audit: invalid value "-1h0m0s"`,
		"batch_size", "partitions_ahead", "lock_timeout"} {
		require.Contains(t, err.Error(), field)
	}
	require.Len(t, strings.Split(err.Error(), "\n"), 5, "every bad field at once")
	_, err = setupOpsNoDB(t).RunRetention(context.Background(), bad, true)
	require.Error(t, err)
}

// setupOpsNoDB is a store whose database is never reached.
func setupOpsNoDB(t *testing.T) *store.Store {
	t.Helper()
	return store.New(nil)
}

func ExampleRetentionPolicy() {
	p := store.RetentionPolicy{ProcessedEvents: 14 * day}.WithDefaults()
	fmt.Println(p.ProcessedEvents, p.DeadEvents, p.Validate())
	// Output: 336h0m0s 720h0m0s <nil>
}
