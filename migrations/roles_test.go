package migrations_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgembed"
)

const (
	seedEvent   = "018f0000-0000-7000-8000-000000000001"
	seedSession = "018f0000-0000-7000-8000-000000000002"
)

// roleCase is one statement a role runs, and the SQLSTATE it must get ("" for
// success, 42501 for insufficient_privilege).
type roleCase struct {
	sql   string
	state string
}

func ok(sql string) roleCase     { return roleCase{sql, ""} }
func denied(sql string) roleCase { return roleCase{sql, "42501"} }

// asRole runs sql in its own transaction after SET LOCAL ROLE, and rolls back.
func asRole(ctx context.Context, conn *pgx.Conn, role, sql string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	_, err = tx.Exec(ctx, sql)
	return err
}

// seedForRoles inserts a pending event and an active session the role cases act on.
func seedForRoles(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	_, err := conn.Exec(testCtx(t), `
		INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id)
		VALUES ('`+seedEvent+`', 'github', 'push', 'repo', '1');
		INSERT INTO omnibridge.service_sessions (id, service_name) VALUES ('`+seedSession+`', 'any');
		INSERT INTO omnibridge.security_audit_log (event_type, success) VALUES ('seed', true);`)
	require.NoError(t, err)
}

// Statements every service runs.
var common = []roleCase{
	ok(`INSERT INTO omnibridge.service_sessions (id, service_name, instance_id, metadata)
		VALUES (gen_random_uuid(), 'svc', 'host-1', '{"version": "1"}') RETURNING id`),
	ok(`UPDATE omnibridge.service_sessions SET last_seen = now() WHERE id = '` + seedSession + `'`),
	ok(`UPDATE omnibridge.service_sessions SET status = 'ended', session_end = now() WHERE id = '` + seedSession + `'`),
	ok(`INSERT INTO omnibridge.connection_metrics (service_name, instance_id, pool_size, active_connections,
		idle_connections, waiting_connections, total_queries, failed_queries, avg_query_time_ms, potential_leaks,
		utilization_percent) VALUES ('svc', 'host-1', 10, 2, 8, 0, 100, 1, 0.4, 0, 20)`),
	ok(`INSERT INTO omnibridge.security_audit_log (event_type, client_info, success, error_details)
		VALUES ('auth_failure', '{"ip": "127.0.0.1"}', false, 'bad signature')`),
	ok(`SELECT max(version_id) FROM omnibridge.goose_db_version`),
	denied(`UPDATE omnibridge.service_sessions SET service_name = 'other'`),
	denied(`DELETE FROM omnibridge.service_sessions`),
	denied(`UPDATE omnibridge.security_audit_log SET success = true`),
	denied(`DELETE FROM omnibridge.security_audit_log`),
	denied(`TRUNCATE omnibridge.security_audit_log`),
	denied(`TRUNCATE omnibridge.security_audit_log_default`),
	denied(`SELECT omnibridge.apply_role_grants()`),
	denied(`SELECT omnibridge.audit_default_remove('-infinity', 'infinity')`),
	denied(`SELECT omnibridge.protect_audit_partition('omnibridge.hook_events')`),
	denied(`SELECT * FROM omnibridge.hook_events_default`),
	denied(`CREATE TABLE omnibridge.intruder (i int)`),
	denied(`DELETE FROM omnibridge.goose_db_version`),
}

var roleCases = map[string][]roleCase{
	"hook_receiver": {
		ok(`INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id, payload, metadata, delivery_id)
			VALUES (gen_random_uuid(), 'github', 'push', 'repo', '1', '{}', '{}', 'd-1') RETURNING id, created_at`),
		ok(`INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
			VALUES ('github', 'd-1', gen_random_uuid())`),
		ok(`SELECT event_id FROM omnibridge.hook_event_deliveries WHERE source = 'github' AND delivery_id = 'd-1'`),
		ok(`SELECT id, status FROM omnibridge.hook_events WHERE id = '` + seedEvent + `'`),
		ok(`SELECT pg_notify('omnibridge_hook_events', '` + seedEvent + `')`),
		denied(`UPDATE omnibridge.hook_events SET status = 'dead'`),
		denied(`DELETE FROM omnibridge.hook_events`),
		denied(`TRUNCATE omnibridge.hook_events`),
		denied(`DELETE FROM omnibridge.hook_event_deliveries`),
		denied(`SELECT * FROM omnibridge.security_audit_log`),
		denied(`SELECT * FROM omnibridge.event_metrics`),
		denied(`INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success)
			VALUES (gen_random_uuid(), 1, true)`),
		denied(`SELECT * FROM omnibridge.connection_metrics`),
		denied(`SELECT omnibridge.cleanup_old_data()`),
		denied(`SELECT omnibridge.ensure_partitions()`),
		denied(`SELECT omnibridge.drop_expired_audit_partitions()`),
		denied(`SELECT omnibridge.create_partition_for('omnibridge.hook_events', now() + interval '40 days')`),
	},
	"workflow_coordinator": {
		ok(`SELECT id FROM omnibridge.hook_events WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT 10 FOR UPDATE SKIP LOCKED`),
		ok(`UPDATE omnibridge.hook_events SET status = 'processing', claimed_at = now(), claim_id = gen_random_uuid()
			WHERE id = '` + seedEvent + `'`),
		ok(`UPDATE omnibridge.hook_events SET status = 'processed', processed_at = now() WHERE id = '` + seedEvent + `'`),
		ok(`UPDATE omnibridge.hook_events SET retry_count = retry_count + 1, next_attempt_at = now() + interval '1 minute',
			processing_errors = array_append(processing_errors, 'broker down') WHERE id = '` + seedEvent + `'`),
		ok(`UPDATE omnibridge.hook_events SET status = 'dead' WHERE id = '` + seedEvent + `'`),
		ok(`INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, error_message)
			VALUES ('` + seedEvent + `', 4.2, false, 'timeout')`),
		ok(`SELECT count(*) FILTER (WHERE status = 'pending'), min(created_at) FILTER (WHERE status = 'pending')
			FROM omnibridge.hook_events WHERE status <> 'processed'`), // the lag loop's backlog
		ok(`SELECT omnibridge.ensure_partitions(10)`),
		ok(`SELECT omnibridge.create_partition_for('omnibridge.event_metrics', now() + interval '40 days')`),
		ok(`SELECT omnibridge.cleanup_old_data()`),
		ok(`SELECT omnibridge.drop_expired_audit_partitions('30 days')`),
		denied(`INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id)
			VALUES (gen_random_uuid(), 'github', 'push', 'repo', '1')`),
		denied(`UPDATE omnibridge.hook_events SET payload = '{"forged": true}'`),
		denied(`UPDATE omnibridge.hook_events SET source = 'other'`),
		denied(`DELETE FROM omnibridge.hook_events`),
		denied(`SELECT * FROM omnibridge.hook_event_deliveries`),
		denied(`INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
			VALUES ('github', 'x', gen_random_uuid())`),
		denied(`SELECT * FROM omnibridge.event_metrics`),
		denied(`DELETE FROM omnibridge.event_metrics`),
		denied(`TRUNCATE omnibridge.event_metrics`),
		denied(`SELECT * FROM omnibridge.security_audit_log`),
	},
	"model_metrics": {
		ok(`SELECT count(*) FROM omnibridge.hook_events`),
		ok(`SELECT count(*) FROM omnibridge.hook_event_deliveries`),
		ok(`SELECT count(*) FROM omnibridge.event_metrics`),
		ok(`SELECT count(*) FROM omnibridge.service_sessions`),
		ok(`SELECT count(*) FROM omnibridge.security_audit_log WHERE NOT success`),
		ok(`SELECT count(*) FROM omnibridge.connection_metrics`),
		denied(`INSERT INTO omnibridge.hook_events (id, source, action, resource, resource_id)
			VALUES (gen_random_uuid(), 'github', 'push', 'repo', '1')`),
		denied(`UPDATE omnibridge.hook_events SET status = 'dead'`),
		denied(`INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success)
			VALUES (gen_random_uuid(), 1, true)`),
		denied(`DELETE FROM omnibridge.event_metrics`),
		denied(`DELETE FROM omnibridge.hook_event_deliveries`),
		denied(`DELETE FROM omnibridge.connection_metrics`),
		denied(`SELECT omnibridge.cleanup_old_data()`),
		denied(`SELECT omnibridge.ensure_partitions()`),
		denied(`SELECT omnibridge.drop_expired_audit_partitions()`),
	},
}

func TestServiceRoles(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	seedForRoles(t, conn)
	require.Equal(t, []string{"hook_receiver:false", "model_metrics:false", "workflow_coordinator:false"},
		queryStrings(t, conn, `SELECT rolname || ':' || rolcanlogin FROM pg_roles
			WHERE rolname IN ('hook_receiver', 'workflow_coordinator', 'model_metrics') ORDER BY 1`),
		"the service roles exist and cannot log in")

	for role, cases := range roleCases {
		for _, c := range append(append([]roleCase{}, common...), cases...) {
			err := asRole(testCtx(t), conn, role, c.sql)
			if c.state == "" {
				require.NoError(t, err, "%s must be allowed: %s", role, c.sql)
			} else {
				require.Equal(t, c.state, sqlState(err), "%s must be refused: %s (got %v)", role, c.sql, err)
			}
		}
	}
}

// TestAuditLogAppendOnlyForEveryone: no role, the owner and superuser
// included, can change or remove audit rows, whether through the table or
// any of its partitions, even with replication-mode trigger suppression.
func TestAuditLogAppendOnlyForEveryone(t *testing.T) {
	t.Parallel()
	conn := migrated(t) // superuser, owner of everything
	_, err := conn.Exec(testCtx(t), `SELECT omnibridge.create_partition_for('omnibridge.security_audit_log', now() - interval '2 years')`)
	require.NoError(t, err)
	for _, at := range []string{"now()", "now() - interval '2 years'", "'1970-01-01 00:00:00+00'"} {
		insertAt(t, conn, "security_audit_log", at)
	}
	tables := append([]string{"omnibridge.security_audit_log"}, queryStrings(t, conn, `
		SELECT inhrelid::regclass::text FROM pg_inherits
		WHERE inhparent = 'omnibridge.security_audit_log'::regclass ORDER BY 1`)...)
	require.GreaterOrEqual(t, len(tables), 4, "parent, DEFAULT and dated partitions")

	for _, table := range tables {
		for _, stmt := range []string{
			"UPDATE %s SET success = NOT success",
			"UPDATE %s SET event_type = 'x' WHERE false", // refused even when no row matches
			"DELETE FROM %s",
			"TRUNCATE %s",
		} {
			sql := fmt.Sprintf(stmt, table)
			for _, role := range []string{"", "hook_receiver", "workflow_coordinator", "model_metrics"} {
				if role == "" {
					_, err = conn.Exec(testCtx(t), sql)
				} else {
					err = asRole(testCtx(t), conn, role, sql)
				}
				require.Equal(t, "42501", sqlState(err), "%q as %q: %v", sql, role, err)
			}
			err = inTx(t, conn, "SET LOCAL session_replication_role = replica", sql)
			require.Equal(t, "42501", sqlState(err), "%q in replica mode: %v", sql, err)
		}
	}
	require.Equal(t, int64(3), queryInt(t, conn, "SELECT count(*) FROM omnibridge.security_audit_log"))

	// Expired partitions still go, whole, through the maintenance function.
	require.Equal(t, int64(2), queryInt(t, conn, "SELECT omnibridge.drop_expired_audit_partitions('1 year')"))
	require.Equal(t, int64(1), queryInt(t, conn, "SELECT count(*) FROM omnibridge.security_audit_log"))
}

func inTx(t *testing.T, conn *pgx.Conn, stmts ...string) error {
	t.Helper()
	ctx := testCtx(t)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// TestMigratorWithoutCreateRole runs the migrations as a database owner that
// may not create roles, on a private cluster where the roles do not exist yet:
// the migration succeeds without them, and the DBA recipe of docs/schema.md
// (create the roles, then apply_role_grants as the schema owner) completes it.
func TestMigratorWithoutCreateRole(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cl := testdb.NewCluster(t, pgembed.Config{})
	admin := connect(t, cl.URL("postgres"))
	_, err := admin.Exec(ctx, `CREATE ROLE omni_owner LOGIN NOCREATEROLE NOSUPERUSER`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `CREATE DATABASE omni OWNER omni_owner`)
	require.NoError(t, err)

	u, err := url.Parse(cl.URL("omni"))
	require.NoError(t, err)
	u.User = url.User("omni_owner")
	ownerURL := u.String()
	db := openDB(t, ownerURL)
	res, err := migrations.Up(ctx, db)
	require.NoError(t, err)
	require.NotEmpty(t, res)
	require.Empty(t, queryStrings(t, admin, `SELECT rolname::text FROM pg_roles
		WHERE rolname IN ('hook_receiver', 'workflow_coordinator', 'model_metrics')`), "no roles created")

	// The DBA creates the roles and a login user for one service.
	_, err = admin.Exec(ctx, `
		CREATE ROLE hook_receiver NOLOGIN;
		CREATE ROLE workflow_coordinator NOLOGIN;
		CREATE ROLE model_metrics NOLOGIN;
		CREATE ROLE coordinator_login LOGIN IN ROLE workflow_coordinator`)
	require.NoError(t, err)
	owner := connect(t, ownerURL)
	require.Equal(t, int64(3), queryInt(t, owner, "SELECT omnibridge.apply_role_grants()"))

	// The service logs in as its own user and takes the role with SET ROLE.
	u.User = url.User("coordinator_login")
	svc := connect(t, u.String())
	_, err = svc.Exec(ctx, "SET ROLE workflow_coordinator")
	require.NoError(t, err)
	removed := queryInt(t, svc, "SELECT omnibridge.cleanup_old_data()")
	require.Equal(t, int64(0), removed)
	_, err = svc.Exec(ctx, `INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success)
		VALUES (gen_random_uuid(), 1, true)`)
	require.NoError(t, err)
	_, err = svc.Exec(ctx, `SELECT * FROM omnibridge.hook_event_deliveries`)
	require.Equal(t, "42501", sqlState(err))

	// Rolling everything back as the owner works too, and keeps the roles.
	res, err = migrations.Down(ctx, db, migrations.ToVersion(0))
	require.NoError(t, err)
	require.NotEmpty(t, res)
	cur, _, err := migrations.Current(ctx, db)
	require.NoError(t, err)
	require.Equal(t, int64(0), cur)
	require.Len(t, queryStrings(t, admin, `SELECT rolname::text FROM pg_roles
		WHERE rolname IN ('hook_receiver', 'workflow_coordinator', 'model_metrics')`), 3)
}
