package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestMain(m *testing.M) {
	// The tests name their database and configuration; a developer's
	// environment must not add one. Unset once here rather than per test
	// (t.Setenv), so that the tests can run in parallel.
	for _, k := range []string{"OMNIBRIDGE_DATABASE_URL", "DATABASE_URL", "OMNIBRIDGE_CONFIG"} {
		_ = os.Unsetenv(k)
	}
	testdb.Main(m)
}

// run executes the command line in-process and returns stdout and the error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestUnknownCommandListsCommands(t *testing.T) {
	t.Parallel()
	_, err := run(t, "frobnicate")
	require.ErrorContains(t, err, `unknown command "frobnicate"`)
	require.ErrorContains(t, err, "migrate")
	require.ErrorContains(t, err, "dev")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := run(t, "version")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "omnibridge "), out)
}

func TestCommandsNeedADatabase(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"migrate", "up"}, {"migrate", "status"}, {"cleanup"}} {
		_, err := run(t, args...)
		require.ErrorIs(t, err, errNoDatabase, "%v", args)
	}
}

func TestConfigPrintRedactsSecrets(t *testing.T) {
	t.Parallel()
	out, err := run(t, "config", "print", "--database-url", "postgres://svc:topsecret@db.internal:5432/omni")
	require.NoError(t, err)
	require.NotContains(t, out, "topsecret")
	require.Contains(t, out, "svc:REDACTED@db.internal")
	require.Contains(t, out, "max_conns: 25")
}

func TestInvalidConfigIsReportedWhole(t *testing.T) {
	t.Setenv("OMNIBRIDGE_DATABASE_MAX_CONNS", "-3")
	t.Setenv("OMNIBRIDGE_LOG_LEVEL", "chatty")
	cmd := newRootCmd()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"config", "print"})
	err := cmd.ExecuteContext(context.Background())
	require.ErrorContains(t, err, "database.max_conns")
	require.ErrorContains(t, err, `log.level: invalid value "chatty"`)
}

func TestMigrateUpStatusDown(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmpty(t)
	out, err := run(t, "migrate", "status", "--database-url", url)
	require.NoError(t, err)
	require.Regexp(t, `00001\s+schema\s+pending`, out)
	require.Contains(t, out, "pending")

	out, err = run(t, "migrate", "up", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "up 00001 schema")

	out, err = run(t, "migrate", "up", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "nothing to do")

	out, err = run(t, "migrate", "status", "--database-url", url)
	require.NoError(t, err)
	require.NotContains(t, out, "pending")

	out, err = run(t, "migrate", "down", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "down ")
	out, err = run(t, "migrate", "status", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "pending", "the newest version is rolled back")
}

func TestCleanupDryRunJSON(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	out, err := run(t, "cleanup", "--dry-run", "--json", "--database-url", url)
	require.NoError(t, err)
	var rep struct {
		DryRun bool `json:"dry_run"`
		Tables []struct {
			Table string `json:"table"`
		} `json:"tables"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.True(t, rep.DryRun)
	require.NotEmpty(t, rep.Tables)

	out, err = run(t, "cleanup", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "hook_events")
	require.Contains(t, out, "removed 0 rows")
}
