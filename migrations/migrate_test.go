package migrations_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/migrations"
)

func versionsOf(res []migrations.Result) []int64 {
	out := make([]int64, len(res))
	for i, r := range res {
		out[i] = r.Version
	}
	return out
}

// upTo returns 1..n.
func upTo(n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// embeddedVersions reads Status on a database and returns the highest version.
func embeddedVersions(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	st, err := migrations.Status(testCtx(t), db)
	require.NoError(t, err)
	require.NotEmpty(t, st)
	return st[len(st)-1].Version
}

func TestUpFreshThenNoOp(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dbURL := testdb.NewEmpty(t)
	db := openDB(t, dbURL)
	conn := connect(t, dbURL)

	// Status and Current on a database never migrated report everything
	// pending and create nothing.
	st, err := migrations.Status(ctx, db)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(st), 4)
	for i, s := range st {
		require.Equal(t, int64(i+1), s.Version)
		require.NotEmpty(t, s.Name)
		require.False(t, s.Applied, "version %d", s.Version)
		require.True(t, s.AppliedAt.IsZero())
	}
	latest := st[len(st)-1].Version
	cur, lat, err := migrations.Current(ctx, db)
	require.NoError(t, err)
	require.Equal(t, int64(0), cur)
	require.Equal(t, latest, lat)
	require.Equal(t, int64(0), queryInt(t, conn, `SELECT count(*) FROM pg_namespace WHERE nspname = 'omnibridge'`))

	before := time.Now()
	res, err := migrations.Up(ctx, db)
	require.NoError(t, err)
	require.Equal(t, upTo(latest), versionsOf(res))
	for i, r := range res {
		require.Equal(t, migrations.DirectionUp, r.Direction)
		require.Equal(t, st[i].Name, r.Name)
		require.Positive(t, r.Duration)
	}
	require.Equal(t, "schema", res[0].Name)

	st, err = migrations.Status(ctx, db)
	require.NoError(t, err)
	require.Len(t, st, int(latest))
	for _, s := range st {
		require.True(t, s.Applied, "version %d", s.Version)
		require.WithinDuration(t, before, s.AppliedAt, 10*time.Minute)
	}
	cur, lat, err = migrations.Current(ctx, db)
	require.NoError(t, err)
	require.Equal(t, latest, cur)
	require.Equal(t, latest, lat)

	// A second run finds nothing to do.
	res, err = migrations.Up(ctx, db)
	require.NoError(t, err)
	require.Empty(t, res)
	requireAppliedOnce(t, dbURL, latest)
}

// requireAppliedOnce checks goose's history: every version 1..latest recorded
// exactly once, and nothing else besides goose's version 0.
func requireAppliedOnce(t *testing.T, dbURL string, latest int64) {
	t.Helper()
	conn := connect(t, dbURL)
	got := queryStrings(t, conn, `
		SELECT version_id || ':' || count(*) FROM omnibridge.goose_db_version
		WHERE is_applied GROUP BY version_id ORDER BY version_id`)
	want := []string{"0:1"}
	for _, v := range upTo(latest) {
		want = append(want, strconv.FormatInt(v, 10)+":1")
	}
	require.Equal(t, want, got)
}

func TestUpToAndDownOneByOne(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	db := openDB(t, testdb.NewEmpty(t))
	latest := embeddedVersions(t, db)

	res, err := migrations.Up(ctx, db, migrations.ToVersion(2))
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, versionsOf(res))
	cur, _, err := migrations.Current(ctx, db)
	require.NoError(t, err)
	require.Equal(t, int64(2), cur)

	res, err = migrations.Down(ctx, db)
	require.NoError(t, err)
	require.Equal(t, []int64{2}, versionsOf(res))
	require.Equal(t, migrations.DirectionDown, res[0].Direction)
	res, err = migrations.Down(ctx, db)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, versionsOf(res))
	res, err = migrations.Down(ctx, db)
	require.NoError(t, err)
	require.Empty(t, res, "nothing left to roll back")

	res, err = migrations.Up(ctx, db)
	require.NoError(t, err)
	require.Equal(t, upTo(latest), versionsOf(res))
}

func TestInvalidTargetsAndUnmigratedDown(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dbURL := testdb.NewEmpty(t)
	db := openDB(t, dbURL)

	_, err := migrations.Up(ctx, db, migrations.ToVersion(0))
	require.ErrorIs(t, err, migrations.ErrInvalidTarget)
	_, err = migrations.Down(ctx, db, migrations.ToVersion(-1))
	require.ErrorIs(t, err, migrations.ErrInvalidTarget)

	res, err := migrations.Down(ctx, db, migrations.ToVersion(0))
	require.NoError(t, err)
	require.Empty(t, res)
	require.Equal(t, int64(0), queryInt(t, connect(t, dbURL),
		`SELECT count(*) FROM pg_namespace WHERE nspname = 'omnibridge'`), "Down must not create anything")
}

var datedPartition = regexp.MustCompile(`_p[0-9]{6,8}\b`)

func TestUpDownUpGivesSameCatalog(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dbURL := testdb.NewEmpty(t)
	db := openDB(t, dbURL)
	conn := connect(t, dbURL)
	latest := embeddedVersions(t, db)

	day := time.Now().UTC().Format(time.DateOnly)
	_, err := migrations.Up(ctx, db)
	require.NoError(t, err)
	first := catalog(t, conn)
	require.NotEmpty(t, first)

	res, err := migrations.Down(ctx, db, migrations.ToVersion(0))
	require.NoError(t, err)
	require.Equal(t, reversed(upTo(latest)), versionsOf(res))
	// Only the schema and goose's history remain.
	require.Equal(t, []string{"goose_db_version", "goose_db_version_id_seq"},
		queryStrings(t, conn, `SELECT relname::text FROM pg_class
			WHERE relnamespace = 'omnibridge'::regnamespace AND relkind IN ('r', 'p', 'S', 'v', 'm')
			ORDER BY relname`))
	require.Empty(t, queryStrings(t, conn,
		`SELECT proname::text FROM pg_proc WHERE pronamespace = 'omnibridge'::regnamespace`))
	require.Empty(t, queryStrings(t, conn, `
		SELECT r FROM unnest(ARRAY['hook_receiver', 'workflow_coordinator', 'model_metrics']) r
		WHERE has_schema_privilege(r, 'omnibridge', 'USAGE')
		   OR has_table_privilege(r, 'omnibridge.goose_db_version', 'SELECT')`), "grants revoked")
	st, err := migrations.Status(ctx, db)
	require.NoError(t, err)
	for _, s := range st {
		require.False(t, s.Applied, "version %d", s.Version)
	}

	res, err = migrations.Up(ctx, db)
	require.NoError(t, err)
	require.Equal(t, upTo(latest), versionsOf(res))
	second := catalog(t, conn)

	if now := time.Now().UTC().Format(time.DateOnly); now != day {
		// The UTC day turned during the test, so the dated partitions created
		// ahead differ; compare everything else.
		t.Logf("UTC day changed (%s → %s): ignoring dated partitions", day, now)
		first, second = withoutDated(first), withoutDated(second)
	}
	require.Equal(t, first, second)
}

func reversed(v []int64) []int64 {
	out := slices.Clone(v)
	slices.Reverse(out)
	return out
}

func withoutDated(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), datedPartition.MatchString)
}

func TestConcurrentUp(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dbURL := testdb.NewEmpty(t)
	const migrators = 5
	dbs := make([]*sql.DB, migrators)
	for i := range dbs {
		dbs[i] = openDB(t, dbURL)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([][]migrations.Result, migrators)
	errs := make([]error, migrators)
	for i := range dbs {
		wg.Go(func() {
			<-start
			results[i], errs[i] = migrations.Up(ctx, dbs[i])
		})
	}
	close(start)
	wg.Wait()

	var applied []int64
	for i := range dbs {
		require.NoError(t, errs[i], "migrator %d", i)
		applied = append(applied, versionsOf(results[i])...)
	}
	latest := embeddedVersions(t, dbs[0])
	slices.Sort(applied)
	require.Equal(t, upTo(latest), applied, "every version applied by exactly one migrator")
	requireAppliedOnce(t, dbURL, latest)
}

// TestConcurrentUpProcesses starts five separate processes (this test binary,
// acting as `migrate up`) against one fresh database.
func TestConcurrentUpProcesses(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dbURL := testdb.NewEmpty(t)
	exe, err := os.Executable()
	require.NoError(t, err)

	const procs = 5
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	errOuts := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), childEnv+"="+dbURL)
		outs[i], errOuts[i] = new(bytes.Buffer), new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], errOuts[i]
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		require.NoError(t, cmd.Start())
	}
	var applied []int64
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "process %d: %s", i, errOuts[i])
		var versions []int64
		require.NoError(t, json.Unmarshal(outs[i].Bytes(), &versions), "process %d printed %q", i, outs[i])
		applied = append(applied, versions...)
	}
	latest := embeddedVersions(t, openDB(t, dbURL))
	slices.Sort(applied)
	require.Equal(t, upTo(latest), applied, "every version applied by exactly one process")
	requireAppliedOnce(t, dbURL, latest)
}

// TestCurrentAndStatusAsServiceRole checks that health checks work for a
// service role, which may only read the version table.
func TestCurrentAndStatusAsServiceRole(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	u, err := url.Parse(testdb.New(t))
	require.NoError(t, err)
	q := u.Query()
	q.Set("role", "model_metrics") // the server applies it at connection start, like SET ROLE
	u.RawQuery = q.Encode()
	db := openDB(t, u.String())
	var role string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT current_user").Scan(&role))
	require.Equal(t, "model_metrics", role)

	cur, latest, err := migrations.Current(ctx, db)
	require.NoError(t, err)
	require.Equal(t, latest, cur)
	st, err := migrations.Status(ctx, db)
	require.NoError(t, err)
	require.Len(t, st, int(latest))
	for _, s := range st {
		require.True(t, s.Applied, "version %d", s.Version)
	}
}
