package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedactURLHidesEverySecret covers every place a PostgreSQL connection
// string can carry a secret, in both forms, and checks that the rest of the
// string stays as written.
func TestRedactURLHidesEverySecret(t *testing.T) {
	t.Parallel()
	const R = RedactedText
	for _, tc := range []struct{ in, want string }{
		// URL form: the user information's password.
		{"postgres://app:s3cret@db:5432/omni?sslmode=verify-full", "postgres://app:" + R + "@db:5432/omni?sslmode=verify-full"},
		// Query parameters, alone and together with the user information.
		{"postgres://app@db.internal:5432/omnibridge?password=hunter2secret", "postgres://app@db.internal:5432/omnibridge?password=" + R},
		{"postgres://app:first@db/omni?password=second&sslmode=require", "postgres://app:" + R + "@db/omni?password=" + R + "&sslmode=require"},
		{"postgresql://db/omni?sslmode=verify-full&sslpassword=keypass&application_name=me", "postgresql://db/omni?sslmode=verify-full&sslpassword=" + R + "&application_name=me"},
		// Any letter case, and percent-encoded names.
		{"postgres://db/omni?PASSWORD=a&Password=b&SSLPassword=c", "postgres://db/omni?PASSWORD=" + R + "&Password=" + R + "&SSLPassword=" + R},
		{"postgres://db/omni?pass%77ord=a&%73slpassword=b", "postgres://db/omni?pass%77ord=" + R + "&%73slpassword=" + R},
		{"POSTGRES://u:pw@db/omni", "POSTGRES://u:" + R + "@db/omni"},
		// Repeated parameters: every occurrence.
		{"postgres://db/omni?password=a&password=b", "postgres://db/omni?password=" + R + "&password=" + R},
		// libpq's multi-host URLs and IPv6 addresses, which net/url rejects.
		{"postgres://u:pw@h1:5432,h2:5433/omni?password=q", "postgres://u:" + R + "@h1:5432,h2:5433/omni?password=" + R},
		{"postgres://u:pw@[::1]:5432/omni", "postgres://u:" + R + "@[::1]:5432/omni"},
		// Passwords with unencoded delimiters, read differently by libpq and
		// net/url: the whole of it is hidden.
		{"postgres://u:p@ss@db/omni", "postgres://u:" + R + "@db/omni"},
		{"postgres://u:pa?ss#x@db/omni", "postgres://u:" + R + "@db/omni"},
		{"postgres://u:pa/ss@db/omni", "postgres://u:" + R + "@db/omni"},
		{"postgres://u:sec:ret@db/omni", "postgres://u:" + R + "@db/omni"},
		{"postgres://db/omni?password=a?b&x=1", "postgres://db/omni?password=" + R + "&x=1"},
		// An '@' in a query value is no password.
		{"postgres://db:5432/omni?application_name=me@corp", "postgres://db:5432/omni?application_name=me@corp"},
		// Keyword/value form: quoted, with escapes, spaced, unquoted with an
		// escaped space, any case, unterminated.
		{"host=db password=hunter2 user=app", "host=db password=" + R + " user=app"},
		{"host=db password='hunter 2' user=app", "host=db password=" + R + " user=app"},
		{`host=db password='it\'s a \\ secret' sslpassword='k p' user=app`, "host=db password=" + R + " sslpassword=" + R + " user=app"},
		{"host=db password = 'x y' user=app", "host=db password = " + R + " user=app"},
		{`host=db password=a\ b user=app`, "host=db password=" + R + " user=app"},
		{"host=db PASSWORD=x sslPassword=y", "host=db PASSWORD=" + R + " sslPassword=" + R},
		{"host=db password='never closed user=app", "host=db password=" + R},
		// Not connection strings: unchanged.
		{"", ""},
		{":8080", ":8080"},
		{"sha256=", "sha256="},
		{"X-Signature", "X-Signature"},
		{"must be debug, info, warn or error", "must be debug, info, warn or error"},
		{"postgres://app@db:5432/omni?sslmode=require", "postgres://app@db:5432/omni?sslmode=require"},
	} {
		require.Equal(t, tc.want, RedactURL(tc.in), "RedactURL(%q)", tc.in)
	}
}

// TestConfigPrintHidesEverySecret fills every secret-bearing field, each
// connection string with secrets in every position, and checks that the
// printed configuration holds none of them.
func TestConfigPrintHidesEverySecret(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
database:
  url: postgres://app:hunter2-userinfo@db.internal:5432/omni?password=hunter2-query&sslpassword=hunter2-sslquery
services:
  hook_receiver:
    database:
      url: "host=db password='hunter2 kv' sslpassword=hunter2-kvssl user=app"
    sources:
      - name: gh
        verifier: github
        secrets: ["hunter2-webhook-0123456789"]
  workflow_coordinator:
    listen_url: postgres://l@db/omni?PASSWORD=hunter2-listen
  model_metrics:
    token: hunter2-token-0123456789
kafka:
  brokers: [localhost:9092]
  sasl:
    mechanism: plain
    username: u
    password: hunter2-kafka
`)
	c, err := Load(Source{File: file, Env: env(nil)})
	require.NoError(t, err)
	out, err := c.YAML()
	require.NoError(t, err)
	printed := string(out)
	require.NotContains(t, printed, "hunter2")
	for _, want := range []string{
		"url: postgres://app:REDACTED@db.internal:5432/omni?password=REDACTED&sslpassword=REDACTED",
		"url: host=db password=REDACTED sslpassword=REDACTED user=app",
		"listen_url: postgres://l@db/omni?PASSWORD=REDACTED",
		"token: REDACTED",
		"password: REDACTED",
		"- REDACTED",
	} {
		require.Contains(t, printed, want)
	}
}

// TestInvalidConnectionStringErrorsHideSecrets checks that an invalid
// connection string named in an error is redacted the way config print
// redacts it.
func TestInvalidConnectionStringErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"host=db PASSWORD=secret-kv port=notaport",
		"host=db sslpassword='secret kv' port=notaport",
		"postgres://u@db:5432/omni?PASSWORD=secret-query&port=x",
		"postgres://u:secret-pass/word@db/omni",
	} {
		_, err := Load(Source{Env: env(map[string]string{"OMNIBRIDGE_DATABASE_URL": url})})
		require.Error(t, err, url)
		require.Contains(t, err.Error(), "database.url", url)
		require.NotContains(t, err.Error(), "secret", url)
	}
}

// TestParseErrorsHideSecrets checks that a secret of the wrong type, or under
// a misspelt key, is not repeated in the error.
func TestParseErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
kafka:
  sasl:
    password: [hunter2-kafka]
    pasword: hunter2-typo
services:
  hook_receiver:
    sources:
      - name: gh
        verifier: github
        secrets: hunter2-webhook-0123456789
  model_metrics:
    token: {x: hunter2-token}
`)
	_, err := Load(Source{File: file, Env: env(nil)})
	require.Error(t, err)
	msg := err.Error()
	require.NotContains(t, msg, "hunter")
	require.NotContains(t, strings.ToLower(msg), "hunte")
	for _, want := range []string{
		`kafka.sasl.password: invalid value "REDACTED"`,
		"kafka.sasl.pasword: unknown setting",
		`services.hook_receiver.sources[0].secrets: invalid value "REDACTED"`,
		`services.model_metrics.token: invalid value "REDACTED"`,
	} {
		require.Contains(t, msg, want)
	}
}
