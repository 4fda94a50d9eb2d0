package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "omnibridge.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(Source{Env: env(nil)})
	require.NoError(t, err)
	require.Equal(t, EnvDevelopment, c.Environment)
	require.Equal(t, "info", c.Log.Level)
	require.Equal(t, "text", c.Log.Format)
	require.Equal(t, ".omnibridge/pgdata", c.Dev.DataDir)
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "log:\n  level: debug\n  format: json\ndatabase:\n  url: postgres://file/db\n")

	c, err := Load(Source{File: file, Env: env(nil)})
	require.NoError(t, err)
	require.Equal(t, "debug", c.Log.Level)
	require.Equal(t, "postgres://file/db", c.Database.URL)

	c, err = Load(Source{File: file, Env: env(map[string]string{
		"OMNIBRIDGE_LOG_LEVEL":    "warn",
		"OMNIBRIDGE_DATABASE_URL": "postgres://env/db",
	})})
	require.NoError(t, err)
	require.Equal(t, "warn", c.Log.Level)
	require.Equal(t, "json", c.Log.Format, "a key the environment does not set keeps the file's value")
	require.Equal(t, "postgres://env/db", c.Database.URL)

	c, err = Load(Source{File: file,
		Env:   env(map[string]string{"OMNIBRIDGE_LOG_LEVEL": "warn"}),
		Flags: map[string]string{"log.level": "error", "database.url": "postgres://flag/db"},
	})
	require.NoError(t, err)
	require.Equal(t, "error", c.Log.Level)
	require.Equal(t, "postgres://flag/db", c.Database.URL)
}

func TestDatabaseURLFallback(t *testing.T) {
	t.Parallel()
	c, err := Load(Source{Env: env(map[string]string{"DATABASE_URL": "postgres://fallback/db"})})
	require.NoError(t, err)
	require.Equal(t, "postgres://fallback/db", c.Database.URL)

	c, err = Load(Source{Env: env(map[string]string{
		"DATABASE_URL":            "postgres://fallback/db",
		"OMNIBRIDGE_DATABASE_URL": "postgres://primary/db",
	})})
	require.NoError(t, err)
	require.Equal(t, "postgres://primary/db", c.Database.URL)
}

func TestValidationReportsEveryField(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "environment: staging\nlog:\n  level: loud\n  format: xml\n")
	_, err := Load(Source{File: file, Env: env(nil)})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{`environment: invalid value "staging"`, `log.level: invalid value "loud"`, `log.format: invalid value "xml"`} {
		require.Contains(t, msg, want)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	t.Parallel()
	_, err := Load(Source{File: writeFile(t, "log:\n  levle: debug\n"), Env: env(nil)})
	require.ErrorContains(t, err, "levle")
}

func TestMalformedInput(t *testing.T) {
	t.Parallel()
	_, err := Load(Source{File: writeFile(t, "log: [unclosed\n"), Env: env(nil)})
	require.Error(t, err)
	_, err = Load(Source{File: filepath.Join(t.TempDir(), "missing.yaml"), Env: env(nil)})
	require.ErrorContains(t, err, "read config file")
	_, err = Load(Source{Env: env(nil), Flags: map[string]string{"no.such": "x"}})
	require.ErrorContains(t, err, `unknown setting "no.such"`)
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Database.URL = "postgres://app:s3cret@db.example:5432/omni?sslmode=verify-full"
	out, err := c.YAML()
	require.NoError(t, err)
	require.NotContains(t, string(out), "s3cret")
	require.Contains(t, string(out), "app:"+RedactedText+"@db.example")
	require.Equal(t, "postgres://app:s3cret@db.example:5432/omni?sslmode=verify-full", c.Database.URL, "the original is untouched")

	require.Equal(t, "host=db password="+RedactedText+" user=app", RedactURL("host=db password=hunter2 user=app"))
	require.Equal(t, "host=db password="+RedactedText+" user=app", RedactURL("host=db password='hunter 2' user=app"))
}

func TestPathsNameEnvironmentVariables(t *testing.T) {
	t.Parallel()
	var names []string
	for _, p := range Paths() {
		names = append(names, p[0]+"="+p[1])
	}
	joined := strings.Join(names, "\n")
	require.Contains(t, joined, "database.url=OMNIBRIDGE_DATABASE_URL")
	require.Contains(t, joined, "log.level=OMNIBRIDGE_LOG_LEVEL")
}

// TestFieldErrorsNameTheirSection checks that every section's invalid field
// comes out as a *FieldError named by its full path.
func TestFieldErrorsNameTheirSection(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
database:
  max_conns: -3
services:
  hook_receiver:
    addr: nohostport
    batch:
      max_size: 99999
  workflow_coordinator:
    batch_size: -1
  model_metrics:
    max_page_size: -1
`)
	_, err := Load(Source{File: file, Env: env(nil)})
	require.Error(t, err)
	fields := map[string]bool{}
	var walk func(error)
	walk = func(e error) {
		switch u := e.(type) {
		case *FieldError:
			fields[u.Field] = true
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	for _, want := range []string{"database.max_conns", "services.hook_receiver.addr",
		"services.hook_receiver.batch.max_size", "services.workflow_coordinator.batch_size",
		"services.model_metrics.max_page_size"} {
		require.True(t, fields[want], "%s not among %v", want, fields)
	}
}
