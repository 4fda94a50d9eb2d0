package migrations_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

var dailyTables = []string{"hook_events", "event_metrics", "connection_metrics"}

// insertAt inserts one row dated at (a SQL expression) into table and returns
// its id as text.
func insertAt(t *testing.T, conn *pgx.Conn, table, at string) string {
	t.Helper()
	var sql string
	switch table {
	case "hook_events":
		sql = `INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, created_at)
			VALUES (gen_random_uuid(), 'github', 'push', 'repo', '42', '{"n": 1}', %s) RETURNING id::text`
	case "event_metrics":
		sql = `INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, created_at)
			VALUES (gen_random_uuid(), 12.5, true, %s) RETURNING id::text`
	case "connection_metrics":
		sql = `INSERT INTO omnibridge.connection_metrics (service_name, pool_size, active_connections, idle_connections, recorded_at)
			VALUES ('hook_receiver', 10, 3, 7, %s) RETURNING id::text`
	case "security_audit_log":
		sql = `INSERT INTO omnibridge.security_audit_log (event_type, client_info, success, created_at)
			VALUES ('auth', '{"ip": "127.0.0.1"}', false, %s) RETURNING id::text`
	default:
		t.Fatalf("no insert for %s", table)
	}
	var id string
	require.NoError(t, conn.QueryRow(testCtx(t), fmt.Sprintf(sql, at)).Scan(&id))
	return id
}

// rowOf returns the table (partition) holding the row and the row as JSON.
func rowOf(t *testing.T, conn *pgx.Conn, table, id string) (partition, row string) {
	t.Helper()
	require.NoError(t, conn.QueryRow(testCtx(t), fmt.Sprintf(
		`SELECT tableoid::regclass::text, to_jsonb(r)::text FROM omnibridge.%s r WHERE id::text = $1`, table),
		id).Scan(&partition, &row))
	return partition, row
}

func partitionsOf(t *testing.T, conn *pgx.Conn, table string) map[string]bool {
	t.Helper()
	names := queryStrings(t, conn, `
		SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = ('omnibridge.' || $1)::regclass`, table)
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}

// requirePartitionsAhead checks the dated partitions that ensure_partitions(7)
// creates when run at `at`: UTC days at-1 … at+7, and the UTC months they touch.
func requirePartitionsAhead(t *testing.T, conn *pgx.Conn, at time.Time) {
	t.Helper()
	day := at.UTC().Truncate(24 * time.Hour)
	for _, table := range dailyTables {
		parts := partitionsOf(t, conn, table)
		require.True(t, parts[table+"_default"], "%s has a DEFAULT partition", table)
		for d := -1; d <= 7; d++ {
			name := fmt.Sprintf("%s_p%s", table, day.AddDate(0, 0, d).Format("20060102"))
			require.True(t, parts[name], "%s exists", name)
		}
	}
	parts := partitionsOf(t, conn, "security_audit_log")
	require.True(t, parts["security_audit_log_default"])
	for d := -1; d <= 7; d++ {
		name := "security_audit_log_p" + day.AddDate(0, 0, d).Format("200601")
		require.True(t, parts[name], "%s exists", name)
	}
}

func TestPartitionsCreatedAhead(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	_, err := conn.Exec(testCtx(t), "SET timezone = 'America/Los_Angeles'") // must not matter
	require.NoError(t, err)

	// The migration created them, relative to when it ran.
	var migratedAt time.Time
	require.NoError(t, conn.QueryRow(testCtx(t),
		`SELECT tstamp AT TIME ZONE 'UTC' FROM omnibridge.goose_db_version WHERE version_id = 2`).Scan(&migratedAt))
	requirePartitionsAhead(t, conn, migratedAt)

	// Maintenance keeps them ahead of now; a second run creates nothing.
	var now time.Time
	require.NoError(t, conn.QueryRow(testCtx(t), "SELECT now()").Scan(&now))
	_ = queryInt(t, conn, "SELECT omnibridge.ensure_partitions()")
	requirePartitionsAhead(t, conn, now)
	require.Equal(t, int64(0), queryInt(t, conn, "SELECT omnibridge.ensure_partitions()"))

	// Daily partitions cover exactly one UTC day.
	var bound string
	name := "hook_events_p" + now.UTC().Format("20060102")
	require.NoError(t, conn.QueryRow(testCtx(t), `
		SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
		WHERE c.oid = ('omnibridge.' || $1)::regclass`, name).Scan(&bound))
	day := now.UTC().Truncate(24 * time.Hour)
	require.Equal(t, fmt.Sprintf("FOR VALUES FROM ('%s') TO ('%s')",
		day.In(losAngeles(t)).Format("2006-01-02 15:04:05-07"),
		day.AddDate(0, 0, 1).In(losAngeles(t)).Format("2006-01-02 15:04:05-07")), bound)
}

func losAngeles(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	return loc
}

// TestFarPastAndFutureInserts: a timestamp outside every dated partition still
// inserts, into the DEFAULT partition.
func TestFarPastAndFutureInserts(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	for _, table := range append([]string{"security_audit_log"}, dailyTables...) {
		for _, at := range []string{"'1970-01-01 00:00:00+00'", "'2100-12-31 23:59:59+00'"} {
			id := insertAt(t, conn, table, at)
			part, _ := rowOf(t, conn, table, id)
			require.Equal(t, "omnibridge."+table+"_default", part, "%s at %s", table, at)
		}
	}
}

// TestEnsurePartitionsMovesRowsOutOfDefault: rows that arrived before their
// partition existed are moved into it, unchanged, when it is created.
func TestEnsurePartitionsMovesRowsOutOfDefault(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	// Daily tables: 20 days ahead. Audit: the first day of the month after the
	// last month ensure_partitions(7) covers, so no partition holds it yet.
	auditAt := "date_trunc('month', now() + interval '7 days', 'UTC') + interval '1 month 1 day'"
	ats := map[string]string{"security_audit_log": auditAt}
	for _, table := range dailyTables {
		ats[table] = "now() + interval '20 days'"
	}
	type moved struct{ table, id, row string }
	var rows []moved
	for table, at := range ats {
		id := insertAt(t, conn, table, at)
		part, row := rowOf(t, conn, table, id)
		require.Equal(t, "omnibridge."+table+"_default", part, "%s row starts in DEFAULT", table)
		rows = append(rows, moved{table, id, row})
	}
	days := queryInt(t, conn, fmt.Sprintf("SELECT ceil(extract(epoch FROM (%s) - now()) / 86400)::bigint + 1", auditAt))
	created := queryInt(t, conn, "SELECT omnibridge.ensure_partitions($1)", days)
	require.Positive(t, created)

	for _, m := range rows {
		part, row := rowOf(t, conn, m.table, m.id)
		require.NotEqual(t, "omnibridge."+m.table+"_default", part, "%s row left DEFAULT", m.table)
		require.Regexp(t, `^omnibridge\.`+m.table+`_p[0-9]+$`, part)
		require.JSONEq(t, m.row, row, "%s row unchanged", m.table)
		require.Equal(t, int64(0), queryInt(t, conn, fmt.Sprintf("SELECT count(*) FROM omnibridge.%s_default", m.table)))
	}
	require.Empty(t, partitionsLackingIndexes(t, conn))
	// The moved audit partition is as protected as any other.
	var part string
	for _, m := range rows {
		if m.table == "security_audit_log" {
			part, _ = rowOf(t, conn, m.table, m.id)
		}
	}
	_, err := conn.Exec(testCtx(t), "TRUNCATE "+part)
	require.Equal(t, "42501", sqlState(err), "TRUNCATE %s: %v", part, err)
	// And new rows in that range go straight to the new partitions.
	for table, at := range ats {
		p, _ := rowOf(t, conn, table, insertAt(t, conn, table, at))
		require.NotEqual(t, "omnibridge."+table+"_default", p)
	}
	require.Equal(t, int64(0), queryInt(t, conn, "SELECT omnibridge.ensure_partitions($1)", days))
}

func partitionsLackingIndexes(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	return queryStrings(t, conn, `
		SELECT format('%s lacks a copy of %s', part.relname, pidx.relname)
		FROM pg_inherits pi
		JOIN pg_class part ON part.oid = pi.inhrelid
		JOIN pg_index x ON x.indrelid = pi.inhparent
		JOIN pg_class pidx ON pidx.oid = x.indexrelid
		WHERE pi.inhparent IN (SELECT partrelid FROM pg_partitioned_table
		                       WHERE partrelid::regclass::text LIKE 'omnibridge.%')
		  AND NOT EXISTS (
		      SELECT 1 FROM pg_inherits ii JOIN pg_index cx ON cx.indexrelid = ii.inhrelid
		      WHERE ii.inhparent = x.indexrelid AND cx.indrelid = part.oid AND cx.indisvalid)`)
}

func TestPartitionFunctionArguments(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	for _, sql := range []string{
		"SELECT omnibridge.ensure_partitions(-1)",
		"SELECT omnibridge.ensure_partitions(366)",
		"SELECT omnibridge.ensure_partitions(NULL)",
		"SELECT omnibridge.create_partition_for('omnibridge.service_sessions', now())",
		"SELECT omnibridge.create_partition_for('omnibridge.hook_events', 'infinity')",
		"SELECT omnibridge.drop_expired_audit_partitions('-1 day')",
		"SELECT omnibridge.cleanup_old_data(processed_events_retention => NULL)",
		"SELECT omnibridge.cleanup_old_data(audit_retention => '-1 day')",
	} {
		_, err := conn.Exec(testCtx(t), sql)
		require.Equal(t, "22023", sqlState(err), "%s: %v", sql, err)
	}
	var created bool
	require.NoError(t, conn.QueryRow(testCtx(t),
		"SELECT omnibridge.create_partition_for('omnibridge.hook_events', '2001-02-03 04:05:06+00')").Scan(&created))
	require.True(t, created)
	require.True(t, partitionsOf(t, conn, "hook_events")["hook_events_p20010203"])
	require.NoError(t, conn.QueryRow(testCtx(t),
		"SELECT omnibridge.create_partition_for('omnibridge.hook_events', '2001-02-03 23:00:00+00')").Scan(&created))
	require.False(t, created, "same UTC day: already there")
}

// TestEnsurePartitionsConcurrently: callers serialize, none fails, and each
// partition is created once.
func TestEnsurePartitionsConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := testdb.New(t)
	conn := connect(t, dbURL)
	count := func() int64 {
		return queryInt(t, conn, `SELECT count(*) FROM pg_inherits
			WHERE inhparent IN (SELECT partrelid FROM pg_partitioned_table)`)
	}
	before := count()
	const callers = 4
	conns := make([]*pgx.Conn, callers)
	for i := range conns {
		conns[i] = connect(t, dbURL)
	}
	created := make([]int64, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	ctx := testCtx(t)
	for i, c := range conns {
		wg.Go(func() {
			<-start
			errs[i] = c.QueryRow(ctx, "SELECT omnibridge.ensure_partitions(14)").Scan(&created[i])
		})
	}
	close(start)
	wg.Wait()
	var total int64
	for i := range conns {
		require.NoError(t, errs[i])
		total += created[i]
	}
	require.Positive(t, total)
	require.Equal(t, count()-before, total)
}

// holdPartitionCreation starts create_partition_for on hook_events at `at` (a
// SQL expression) on a connection of its own while a transaction reads the
// DEFAULT partition, as a long scan of DEFAULT would hold it, and returns once
// the creation waits for its lock on DEFAULT. finish lets it go on and
// returns its error.
func holdPartitionCreation(t *testing.T, url, at string) (finish func() error) {
	t.Helper()
	reader, maintainer := connect(t, url), connect(t, url)
	ctx := testCtx(t)
	tx, err := reader.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT count(*) FROM omnibridge.hook_events_default`)
	require.NoError(t, err)

	var createErr error
	created := make(chan struct{})
	go func() {
		defer close(created)
		_, createErr = maintainer.Exec(ctx, `SELECT omnibridge.create_partition_for('omnibridge.hook_events', `+at+`)`)
	}()
	// On failure too: the connections close only after this.
	t.Cleanup(func() {
		_ = tx.Rollback(ctx)
		<-created
	})
	require.Eventually(t, func() bool {
		var waiting bool
		// pg_locks covers the cluster, and other tests' databases have the
		// same relation oids: only this database's locks count.
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND relation = 'omnibridge.hook_events_default'::regclass AND NOT granted)`).Scan(&waiting)
		return err == nil && waiting
	}, time.Minute, 10*time.Millisecond, "the partition's creation waits for its lock on DEFAULT")
	return func() error {
		require.NoError(t, tx.Rollback(ctx))
		<-created
		return createErr
	}
}

// insertEvent inserts an event created at `at` (a SQL expression) and returns
// the partition that holds it.
func insertEvent(ctx context.Context, conn *pgx.Conn, at string) (string, error) {
	var part string
	err := conn.QueryRow(ctx, `INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id,
		payload, created_at) VALUES (gen_random_uuid(), 'github', 'push', 'repo', '42', '{}', `+at+`)
		RETURNING tableoid::regclass::text`).Scan(&part)
	return part, err
}

// TestCreatingPartitionLetsWritersGoOn: creating a partition makes
// PostgreSQL prove that the DEFAULT partition holds no row of the new range,
// which takes a lock on DEFAULT and a scan of it. While that waits (here for a
// transaction that reads DEFAULT; in production, for a scan of a large
// DEFAULT), inserts whose rows go to the dated partitions go on.
func TestCreatingPartitionLetsWritersGoOn(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	writer, ctx := connect(t, url), testCtx(t)
	finish := holdPartitionCreation(t, url, "now() + interval '30 days'")

	// An insert into today's partition does not wait. (A read through the
	// parent would: it locks DEFAULT too.)
	_, err := writer.Exec(ctx, `SET lock_timeout = '2s'`)
	require.NoError(t, err)
	part, err := insertEvent(ctx, writer, "now()")
	require.NoError(t, err)
	require.Regexp(t, `^omnibridge\.hook_events_p[0-9]{8}$`, part)

	require.NoError(t, finish())
	part, err = insertEvent(ctx, writer, "now() + interval '30 days'")
	require.NoError(t, err)
	require.Regexp(t, `^omnibridge\.hook_events_p[0-9]{8}$`, part, "the new partition takes its rows")
	require.Empty(t, partitionsLackingIndexes(t, writer))
}

// TestCreatingLivePartitionKeepsItsInserts: a partition for a range that rows
// are arriving for (here tomorrow's, created late) is made with writers
// waiting, so an insert of that range that comes in meanwhile lands in the new
// partition once it exists instead of failing against DEFAULT's new bounds.
func TestCreatingLivePartitionKeepsItsInserts(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	writer, ctx := connect(t, url), testCtx(t)
	// One time for the partition's name, its creation and the insert: a day
	// boundary between two reads of now() would name another day.
	var at time.Time
	require.NoError(t, writer.QueryRow(ctx, `SELECT now() + interval '1 day'`).Scan(&at))
	tomorrow := "omnibridge.hook_events_p" + at.UTC().Format("20060102")
	atSQL := fmt.Sprintf("'%s'::timestamptz", at.UTC().Format(time.RFC3339Nano))
	_, err := writer.Exec(ctx, "DROP TABLE "+tomorrow)
	require.NoError(t, err)
	finish := holdPartitionCreation(t, url, atSQL)

	var part string
	var insertErr error
	inserted := make(chan struct{})
	go func() {
		defer close(inserted)
		part, insertErr = insertEvent(ctx, writer, atSQL)
	}()
	t.Cleanup(func() { <-inserted })
	watcher := connect(t, url)
	require.Eventually(t, func() bool {
		var n int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted`,
			writer.PgConn().PID()).Scan(&n)
		return err == nil && n > 0
	}, time.Minute, 10*time.Millisecond, "the insert waits")

	require.NoError(t, finish())
	<-inserted
	require.NoError(t, insertErr)
	require.Equal(t, tomorrow, part)
}
