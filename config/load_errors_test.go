package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// fieldErrors returns the *FieldError values inside err by field, and the
// number of errors joined in it.
func fieldErrors(err error) (map[string]*FieldError, int) {
	fields := map[string]*FieldError{}
	n := 0
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if fe, ok := e.(*FieldError); ok {
			fields[fe.Field] = fe
			n++
			return
		}
		if u := errors.Unwrap(e); u != nil {
			walk(u)
			return
		}
		n++
	}
	walk(err)
	return fields, n
}

// TestParseErrorsReportedWithValidationErrors is the report: a value that does
// not parse used to hide every validation error until it was fixed.
func TestParseErrorsReportedWithValidationErrors(t *testing.T) {
	t.Parallel()
	_, err := Load(Source{Env: env(map[string]string{
		"OMNIBRIDGE_DATABASE_MAX_CONNS": "abc",
		"OMNIBRIDGE_LOG_LEVEL":          "verbose",
	})})
	require.Error(t, err)
	require.ErrorContains(t, err, `database.max_conns: invalid value "abc": not an integer (from OMNIBRIDGE_DATABASE_MAX_CONNS)`)
	require.ErrorContains(t, err, `log.level: invalid value "verbose"`)
	fields, _ := fieldErrors(err)
	require.Contains(t, fields, "database.max_conns")
	require.Contains(t, fields, "log.level")
}

// TestEveryEnvironmentParseErrorAtOnce checks that every kind of value that
// does not parse is reported, each by its full path.
func TestEveryEnvironmentParseErrorAtOnce(t *testing.T) {
	t.Parallel()
	_, err := Load(Source{Env: env(map[string]string{
		"OMNIBRIDGE_DATABASE_MAX_CONNS":                       "abc",
		"OMNIBRIDGE_DATABASE_MIN_CONNS":                       "99999999999",
		"OMNIBRIDGE_DATABASE_UTILIZATION_WARN":                "high",
		"OMNIBRIDGE_RETENTION_INTERVAL":                       "1 hour",
		"OMNIBRIDGE_KAFKA_TLS_ENABLED":                        "maybe",
		"OMNIBRIDGE_SERVICES_HOOK_RECEIVER_BATCH_MAX_SIZE":    "many",
		"OMNIBRIDGE_SERVICES_WORKFLOW_COORDINATOR_BATCH_SIZE": "-1",
	})})
	require.Error(t, err)
	fields, _ := fieldErrors(err)
	for field, reason := range map[string]string{
		"database.max_conns":                    "not an integer (from OMNIBRIDGE_DATABASE_MAX_CONNS)",
		"database.min_conns":                    "out of range for a 32-bit integer (from OMNIBRIDGE_DATABASE_MIN_CONNS)",
		"database.utilization_warn":             "not a number (from OMNIBRIDGE_DATABASE_UTILIZATION_WARN)",
		"retention.interval":                    "not a duration (e.g. 30s, 5m) (from OMNIBRIDGE_RETENTION_INTERVAL)",
		"kafka.tls.enabled":                     "not a boolean (true/false) (from OMNIBRIDGE_KAFKA_TLS_ENABLED)",
		"services.hook_receiver.batch.max_size": "not an integer (from OMNIBRIDGE_SERVICES_HOOK_RECEIVER_BATCH_MAX_SIZE)",
	} {
		require.Contains(t, fields, field)
		require.Equal(t, reason, fields[field].Reason, field)
	}
	// A value that parses but is invalid is still validated.
	require.Contains(t, fields, "services.workflow_coordinator.batch_size")
}

// TestFileParseErrorsNameTheirPath checks that a file's values of the wrong
// type are reported together, each by its full path and line, with its
// unknown keys and the validation errors of the rest.
func TestFileParseErrorsNameTheirPath(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `log:
  level: loud
  levle: debug
database:
  max_conns: abc
  conn_max_age: 30
  tls: nope
services:
  hook_receiver:
    batch:
      max_size: [1, 2]
    sources:
      - name: gh
        verifier: github
        secrets: ["0123456789abcdef0123"]
        tolerance: {a: b}
kafka:
  brokers: {x: y}
`)
	_, err := Load(Source{File: file, Env: env(nil)})
	require.Error(t, err)
	fields, _ := fieldErrors(err)
	for field, want := range map[string]string{
		"database.max_conns":                          `database.max_conns: invalid value "abc": not an integer (` + file + `:5)`,
		"database.conn_max_age":                       `database.conn_max_age: invalid value "30": not a duration (e.g. 30s, 5m) (` + file + `:6)`,
		"database.tls":                                `database.tls: invalid value "nope": not a mapping (` + file + `:7)`,
		"services.hook_receiver.batch.max_size":       `services.hook_receiver.batch.max_size: invalid value "[1, 2]": not an integer (` + file + `:11)`,
		"services.hook_receiver.sources[0].tolerance": `services.hook_receiver.sources[0].tolerance: invalid value "{a: b}": not a duration (e.g. 30s, 5m) (` + file + `:16)`,
		"kafka.brokers":                               `kafka.brokers: invalid value "{x: y}": not a list of strings (` + file + `:18)`,
	} {
		require.Contains(t, fields, field)
		require.Equal(t, want, fields[field].Error())
	}
	require.ErrorContains(t, err, "log.levle: unknown setting ("+file+":3)")
	require.ErrorContains(t, err, `log.level: invalid value "loud"`)
	require.NotContains(t, err.Error(), "yaml: unmarshal errors", "every error is placed by its path")
}

// TestParseErrorMasksOnlyItsOwnValidation checks that a field whose value did
// not parse is reported once, by its parse error, not also by validation
// errors about the value it was left with, while other fields are still
// validated.
func TestParseErrorMasksOnlyItsOwnValidation(t *testing.T) {
	t.Parallel()

	// min_conns keeps its default of 5, above the file's max_conns of 3.
	file := writeFile(t, "database:\n  max_conns: 3\n")
	_, err := Load(Source{File: file, Env: env(map[string]string{
		"OMNIBRIDGE_DATABASE_MIN_CONNS": "two",
		"OMNIBRIDGE_LOG_FORMAT":         "xml",
	})})
	require.Error(t, err)
	fields, n := fieldErrors(err)
	require.Equal(t, "not an integer (from OMNIBRIDGE_DATABASE_MIN_CONNS)", fields["database.min_conns"].Reason)
	require.Contains(t, fields, "log.format")
	require.Equal(t, 2, n, "%v", err)

	// max_conns keeps its default of 25, below the file's min_conns of 40:
	// the check of min_conns against it names max_conns.
	file = writeFile(t, "database:\n  min_conns: 40\n")
	_, err = Load(Source{File: file, Env: env(map[string]string{
		"OMNIBRIDGE_DATABASE_MAX_CONNS": "thirty",
		"OMNIBRIDGE_LOG_FORMAT":         "xml",
	})})
	require.Error(t, err)
	fields, n = fieldErrors(err)
	require.Contains(t, fields, "database.max_conns")
	require.Contains(t, fields, "log.format")
	require.Equal(t, 2, n, "%v", err)

	// A source's secrets of the wrong type: not also "needs a secret".
	file = writeFile(t, `
services:
  hook_receiver:
    sources:
      - name: gh
        verifier: github
        secrets: {a: b}
`)
	_, err = Load(Source{File: file, Env: env(nil)})
	require.Error(t, err)
	fields, n = fieldErrors(err)
	require.Contains(t, fields, "services.hook_receiver.sources[0].secrets")
	require.Equal(t, 1, n, "%v", err)

	// A later source that sets the field validly makes it validated again.
	file = writeFile(t, "database:\n  max_conns: abc\n")
	_, err = Load(Source{File: file, Env: env(map[string]string{"OMNIBRIDGE_DATABASE_MAX_CONNS": "-3"})})
	require.Error(t, err)
	require.ErrorContains(t, err, `database.max_conns: invalid value "abc": not an integer`)
	require.ErrorContains(t, err, `database.max_conns: invalid value "-3": must be at least 1`)
}

// TestUnknownFlagReportedWithOtherErrors checks that an unknown flag no longer
// hides the rest.
func TestUnknownFlagReportedWithOtherErrors(t *testing.T) {
	t.Parallel()
	_, err := Load(Source{Env: env(map[string]string{"OMNIBRIDGE_LOG_LEVEL": "loud"}),
		Flags: map[string]string{"no.such": "x", "log.format": "xml"}})
	require.ErrorContains(t, err, `unknown setting "no.such"`)
	require.ErrorContains(t, err, `log.level: invalid value "loud"`)
	require.ErrorContains(t, err, `log.format: invalid value "xml"`)
}

// TestFileAliasesAndMergeKeys checks that the file's errors are placed by path
// through YAML aliases and merge keys.
func TestFileAliasesAndMergeKeys(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
services:
  hook_receiver:
    shutdown_timeout: &bad soon
  workflow_coordinator:
    shutdown_timeout: *bad
    retry: &retry
      max_attempts: lots
  model_metrics:
    <<: {max_page_size: huge}
`)
	_, err := Load(Source{File: file, Env: env(nil)})
	require.Error(t, err)
	fields, _ := fieldErrors(err)
	for _, want := range []string{
		"services.hook_receiver.shutdown_timeout", "services.workflow_coordinator.shutdown_timeout",
		"services.workflow_coordinator.retry.max_attempts", "services.model_metrics.max_page_size",
	} {
		require.Contains(t, fields, want)
	}
	require.NotContains(t, err.Error(), "yaml: unmarshal errors", "every error is placed by its path")
}

// TestParseErrorsShowConnectionStringsRedacted: a connection string that
// does not parse as its field's type is shown redacted in the error.
func TestParseErrorsShowConnectionStringsRedacted(t *testing.T) {
	_, err := Load(Source{Env: env(map[string]string{
		"OMNIBRIDGE_DATABASE_MAX_CONNS": "postgres://u:hunter2secret@db/x",
	})})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2secret")
	require.Contains(t, err.Error(), "database.max_conns")
}
