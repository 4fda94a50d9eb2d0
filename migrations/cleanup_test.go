package migrations_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

// seeded is one row put in place by a cleanup test.
type seeded struct {
	what  string // for messages
	table string
	key   string // WHERE clause that finds the row
	gone  bool   // whether cleanup_old_data() must remove it
}

type seeder struct {
	t    *testing.T
	conn *pgx.Conn
	rows []seeded
}

func (s *seeder) returning(what, table string, gone bool, keyCol, sql string, args ...any) string {
	s.t.Helper()
	var id string
	require.NoError(s.t, s.conn.QueryRow(testCtx(s.t), sql+" RETURNING "+keyCol+"::text", args...).Scan(&id), what)
	s.rows = append(s.rows, seeded{what: what, table: table, key: fmt.Sprintf("%s::text = '%s'", keyCol, id), gone: gone})
	return id
}

func (s *seeder) event(what, status, age string, gone bool) string {
	extra := ""
	switch status {
	case "processing":
		extra = ", claimed_at = created_at, claim_id = gen_random_uuid()"
	case "processed":
		extra = ", processed_at = created_at"
	}
	id := s.returning(what, "hook_events", gone, "id", `INSERT INTO omnibridge.hook_events
		(id, source, action, resource, resource_id, created_at)
		VALUES (gen_random_uuid(), 'github', 'push', 'repo', '1', `+age+`)`)
	_, err := s.conn.Exec(testCtx(s.t), "UPDATE omnibridge.hook_events SET status = $1"+extra+" WHERE id = $2", status, id)
	require.NoError(s.t, err, what)
	return id
}

func (s *seeder) delivery(what, eventID, age string, gone bool) {
	s.returning(what, "hook_event_deliveries", gone, "delivery_id", `INSERT INTO omnibridge.hook_event_deliveries
		(source, delivery_id, event_id, created_at) VALUES ('github', gen_random_uuid()::text, $1, `+age+`)`, eventID)
}

func (s *seeder) metric(what, age string, gone bool) {
	s.returning(what, "event_metrics", gone, "id", `INSERT INTO omnibridge.event_metrics
		(event_id, processing_time_ms, kafka_publish_success, created_at) VALUES (gen_random_uuid(), 3, true, `+age+`)`)
}

func (s *seeder) session(what, status, end string, gone bool) {
	s.returning(what, "service_sessions", gone, "id", `INSERT INTO omnibridge.service_sessions
		(id, service_name, status, session_start, session_end, last_seen)
		VALUES (gen_random_uuid(), 'hook_receiver', $1, now() - interval '1 year', `+end+`, now() - interval '1 year')`, status)
}

func (s *seeder) audit(what, age string, gone bool) {
	s.returning(what, "security_audit_log", gone, "id", `INSERT INTO omnibridge.security_audit_log
		(event_type, success, created_at) VALUES ('auth', false, `+age+`)`)
}

func (s *seeder) poolSnapshot(what, age string, gone bool) {
	s.returning(what, "connection_metrics", gone, "id", `INSERT INTO omnibridge.connection_metrics
		(pool_size, active_connections, idle_connections, recorded_at) VALUES (5, 1, 4, `+age+`)`)
}

func (s *seeder) exists(r seeded) bool {
	s.t.Helper()
	return queryInt(s.t, s.conn, fmt.Sprintf("SELECT count(*) FROM omnibridge.%s WHERE %s", r.table, r.key)) == 1
}

func totalRows(t *testing.T, conn *pgx.Conn) int64 {
	t.Helper()
	return queryInt(t, conn, `SELECT
		(SELECT count(*) FROM omnibridge.hook_events) + (SELECT count(*) FROM omnibridge.hook_event_deliveries) +
		(SELECT count(*) FROM omnibridge.event_metrics) + (SELECT count(*) FROM omnibridge.service_sessions) +
		(SELECT count(*) FROM omnibridge.security_audit_log) + (SELECT count(*) FROM omnibridge.connection_metrics)`)
}

func ago(days int) string { return fmt.Sprintf("now() - interval '%d days'", days) }

// TestCleanupOldData seeds every table on both sides of each default retention
// boundary and checks that exactly the expired, eligible rows go.
func TestCleanupOldData(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	s := &seeder{t: t, conn: conn}

	// hook_events: only processed events older than 30 days.
	oldProcessed := s.event("processed, 31 days", "processed", ago(31), true)
	youngProcessed := s.event("processed, 29 days", "processed", ago(29), false)
	s.event("processed, 2 hours", "processed", "now() - interval '2 hours'", false)
	s.event("processed, 1970", "processed", "'1970-01-01 00:00:00+00'", true)
	oldPending := s.event("pending, 400 days", "pending", ago(400), false)
	s.event("pending, 1970", "pending", "'1970-01-01 00:00:00+00'", false)
	s.event("processing, 400 days", "processing", ago(400), false)
	s.event("dead, 400 days", "dead", ago(400), false)

	// hook_event_deliveries: older than 30 days and the event is gone.
	s.delivery("delivery of a removed event, 31 days", oldProcessed, ago(31), true)
	s.delivery("delivery of no event, 31 days", "00000000-0000-0000-0000-000000000001", ago(31), true)
	s.delivery("delivery of no event, 29 days", "00000000-0000-0000-0000-000000000002", ago(29), false)
	s.delivery("delivery of a kept processed event, 31 days", youngProcessed, ago(31), false)
	s.delivery("delivery of a pending event, 400 days", oldPending, ago(400), false)

	// event_metrics: older than 90 days.
	s.metric("metric, 91 days", ago(91), true)
	s.metric("metric, 89 days", ago(89), false)
	s.metric("metric, 1970", "'1970-01-01 00:00:00+00'", true)
	s.metric("metric, 2100", "'2100-01-01 00:00:00+00'", false)

	// service_sessions: not active and ended more than 7 days ago.
	s.session("ended 8 days ago", "ended", ago(8), true)
	s.session("terminated 8 days ago", "terminated", ago(8), true)
	s.session("failed 8 days ago", "failed", ago(8), true)
	s.session("ended 6 days ago", "ended", ago(6), false)
	s.session("active for a year", "active", "NULL", false)

	// security_audit_log: whole partitions older than 180 days, and expired
	// rows of the DEFAULT partition.
	_, err := conn.Exec(testCtx(t), `SELECT omnibridge.create_partition_for('omnibridge.security_audit_log', now() - interval '400 days'),
		omnibridge.create_partition_for('omnibridge.security_audit_log', now() - interval '180 days')`)
	require.NoError(t, err)
	var expiredPart string
	require.NoError(t, conn.QueryRow(testCtx(t),
		`SELECT 'security_audit_log_p' || to_char((now() - interval '400 days') AT TIME ZONE 'UTC', 'YYYYMM')`).Scan(&expiredPart))
	s.audit("audit in an expired partition", ago(400), true)
	s.audit("audit in the DEFAULT partition, 1970", "'1970-01-01 00:00:00+00'", true)
	s.audit("audit older than 180 days in a partition that is not wholly expired",
		"date_trunc('month', now() - interval '180 days', 'UTC') + interval '1 minute'", false)
	s.audit("audit, 170 days", ago(170), false)
	s.audit("audit, 2100", "'2100-01-01 00:00:00+00'", false)

	// connection_metrics: older than 30 days.
	s.poolSnapshot("pool snapshot, 31 days", ago(31), true)
	s.poolSnapshot("pool snapshot, 29 days", ago(29), false)

	var wantGone int64
	for _, r := range s.rows {
		require.True(t, s.exists(r), "seeded: %s", r.what)
		if r.gone {
			wantGone++
		}
	}
	before := totalRows(t, conn)

	removed := queryInt(t, conn, "SELECT omnibridge.cleanup_old_data()")
	require.Equal(t, wantGone, removed, "returned count")
	require.Equal(t, before-wantGone, totalRows(t, conn), "rows actually removed")
	for _, r := range s.rows {
		require.Equal(t, !r.gone, s.exists(r), "%s: kept=%v", r.what, !r.gone)
	}
	require.False(t, partitionsOf(t, conn, "security_audit_log")[expiredPart], "expired audit partition dropped")

	require.Equal(t, int64(0), queryInt(t, conn, "SELECT omnibridge.cleanup_old_data()"), "nothing left to remove")
}

// TestCleanupOldDataRetentionArguments: the retentions are parameters, and
// unprocessed events stay whatever they say.
func TestCleanupOldDataRetentionArguments(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	s := &seeder{t: t, conn: conn}
	s.event("processed, 2 days", "processed", ago(2), true)
	s.event("processed, 2 hours", "processed", "now() - interval '2 hours'", false)
	s.event("pending, 2 days", "pending", ago(2), false)
	s.event("processing, 2 days", "processing", ago(2), false)
	s.event("dead, 2 days", "dead", ago(2), false)
	s.metric("metric, 2 days", ago(2), true)
	s.session("ended 2 days ago", "ended", ago(2), true)
	s.poolSnapshot("pool snapshot, 2 days", ago(2), true)
	s.poolSnapshot("pool snapshot, 2 hours", "now() - interval '2 hours'", false)

	removed := queryInt(t, conn, `SELECT omnibridge.cleanup_old_data(
		processed_events_retention => '1 day', event_metrics_retention => '1 day',
		ended_sessions_retention => '1 day', connection_metrics_retention => '1 day')`)
	require.Equal(t, int64(4), removed)
	for _, r := range s.rows {
		require.Equal(t, !r.gone, s.exists(r), "%s: kept=%v", r.what, !r.gone)
	}

	// Even a zero retention leaves unprocessed events alone.
	require.Equal(t, int64(1), queryInt(t, conn, `SELECT omnibridge.cleanup_old_data(processed_events_retention => '0')`))
	require.Equal(t, []string{"dead", "pending", "processing"},
		queryStrings(t, conn, "SELECT status FROM omnibridge.hook_events ORDER BY status"))
}

func TestDropExpiredAuditPartitions(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	_, err := conn.Exec(testCtx(t), `SELECT omnibridge.create_partition_for('omnibridge.security_audit_log', a)
		FROM (VALUES (now() - interval '13 months'), (now() - interval '14 months')) v(a)`)
	require.NoError(t, err)
	for range 3 {
		insertAt(t, conn, "security_audit_log", "now() - interval '13 months'")
		insertAt(t, conn, "security_audit_log", "now() - interval '14 months'")
	}
	insertAt(t, conn, "security_audit_log", "now()")
	before := len(partitionsOf(t, conn, "security_audit_log"))

	require.Equal(t, int64(0), queryInt(t, conn, "SELECT omnibridge.drop_expired_audit_partitions('2 years')"))
	require.Equal(t, int64(6), queryInt(t, conn, "SELECT omnibridge.drop_expired_audit_partitions('1 year')"))
	require.Len(t, partitionsOf(t, conn, "security_audit_log"), before-2)
	require.Equal(t, int64(1), queryInt(t, conn, "SELECT count(*) FROM omnibridge.security_audit_log"))
	require.Equal(t, int64(0), queryInt(t, conn, "SELECT omnibridge.drop_expired_audit_partitions('1 year')"))
}

// TestCleanupAndPartitionCreationDoNotDeadlock: cleanup_old_data deletes from
// hook_events and drops audit partitions under the partition-maintenance lock;
// create_partition_for holds that lock while it locks hook_events against
// writes. Cleanup must take the advisory lock before its deletes, or the two
// wait for each other and PostgreSQL fails one with a deadlock error.
func TestCleanupAndPartitionCreationDoNotDeadlock(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	maintainer, cleaner, ctx := connect(t, url), connect(t, url), testCtx(t)
	// One time for the partition's name and its creation: a day boundary
	// between two reads of now() would name another day.
	var at time.Time
	require.NoError(t, maintainer.QueryRow(ctx, `SELECT now() + interval '1 day'`).Scan(&at))
	tomorrow := "hook_events_p" + at.UTC().Format("20060102")
	_, err := maintainer.Exec(ctx, "DROP TABLE omnibridge."+tomorrow)
	require.NoError(t, err)

	// The maintainer holds the advisory lock, as create_partition_for does
	// from its start, while cleanup starts.
	tx, err := maintainer.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('omnibridge.partition_maintenance', 0))`)
	require.NoError(t, err)
	var cleanErr error
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		_, cleanErr = cleaner.Exec(ctx, `SELECT omnibridge.cleanup_old_data()`)
	}()
	t.Cleanup(func() {
		_ = tx.Rollback(ctx)
		<-cleaned
	})
	require.Eventually(t, func() bool {
		var waiting bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE pid = $1 AND locktype = 'advisory' AND NOT granted)`, cleaner.PgConn().PID()).Scan(&waiting)
		return err == nil && waiting
	}, time.Minute, 10*time.Millisecond, "cleanup waits for the maintenance lock")

	// Tomorrow's partition is within a day of now: its creation locks
	// hook_events against writes.
	_, err = tx.Exec(ctx, `SELECT omnibridge.create_partition_for('omnibridge.hook_events', $1)`, at)
	require.NoError(t, err, "partition creation while cleanup waits")
	require.NoError(t, tx.Commit(ctx))
	<-cleaned
	require.NoError(t, cleanErr)
	require.True(t, partitionsOf(t, maintainer, "hook_events")[tomorrow])
}
