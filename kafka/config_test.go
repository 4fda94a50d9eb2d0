package kafka

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.Equal(t, DefaultTopic, c.Topic)
	require.Equal(t, DefaultClientID, c.ClientID)
	require.Equal(t, 30*time.Second, c.DeliveryTimeout)
	require.Equal(t, DefaultRequestTimeout, c.RequestTimeout)
	require.Equal(t, DefaultDialTimeout, c.DialTimeout)
	require.Equal(t, DefaultLinger, c.Linger)
	require.Equal(t, DefaultMaxBufferedRecords, c.MaxBufferedRecords)
	require.Equal(t, DefaultCompression, c.Compression)
	require.Equal(t, "1.2", c.TLS.MinVersion)
	require.NoError(t, c.Validate(), "defaults are valid (brokers come later)")

	set := Config{Topic: "t", Linger: -time.Millisecond, Compression: "ZSTD", SASL: SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}}.WithDefaults()
	require.Equal(t, "t", set.Topic)
	require.Equal(t, -time.Millisecond, set.Linger, "a negative linger (no waiting) is kept")
	require.Equal(t, CompressionZstd, set.Compression)
	require.Equal(t, SASLScramSHA512, set.SASL.Mechanism)
	require.NoError(t, set.Validate())
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := Config{
		Brokers:            []string{"kafka-1:9092", "", "kafka-2:99999", "::1", "[::1]:9093", "host:port"},
		Topic:              "bad topic!",
		DeliveryTimeout:    -time.Second,
		RequestTimeout:     -1,
		DialTimeout:        -1,
		MaxBufferedRecords: -5,
		Compression:        "brotli",
		TLS: TLSConfig{
			Enabled:    true,
			CAFile:     filepath.Join(dir, "missing-ca.pem"),
			CertFile:   dir, // a directory
			MinVersion: "1.1",
		},
		SASL: SASLConfig{Mechanism: "gssapi", Password: "hunter2"},
	}.WithDefaults()
	err := c.Validate()
	require.Error(t, err)

	fields := map[string]string{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		require.True(t, errors.As(e, &fe), "%v is not a *FieldError", e)
		fields[fe.Field] = fe.Error()
	}
	for _, want := range []string{
		"brokers[1]", "brokers[2]", "brokers[3]", "brokers[5]",
		"topic", "delivery_timeout", "request_timeout", "dial_timeout",
		"max_buffered_records", "compression",
		"tls.ca_file", "tls.cert_file", "tls.key_file", "tls.min_version",
		"sasl.mechanism", "sasl.username",
	} {
		require.Contains(t, fields, want)
	}
	require.NotContains(t, fields, "brokers[0]")
	require.NotContains(t, fields, "brokers[4]")
	require.Contains(t, fields["tls.ca_file"], "missing-ca.pem")
	require.Contains(t, fields["compression"], `"brotli"`)
	require.NotContains(t, err.Error(), "hunter2", "secrets are never echoed")
}

func TestConfigValidateCrossFieldRules(t *testing.T) {
	t.Parallel()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("x"), 0o600))
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"tls file without tls", Config{TLS: TLSConfig{CAFile: ca}}, "tls.ca_file"},
		{"server name without tls", Config{TLS: TLSConfig{ServerName: "kafka"}}, "tls.server_name"},
		{"key without cert", Config{TLS: TLSConfig{Enabled: true, KeyFile: ca}}, "tls.cert_file"},
		{"user without mechanism", Config{SASL: SASLConfig{Username: "u"}}, "sasl.username"},
		{"password without mechanism", Config{SASL: SASLConfig{Password: "p"}}, "sasl.password"},
		{"mechanism without password", Config{SASL: SASLConfig{Mechanism: "plain", Username: "u"}}, "sasl.password"},
		{"topic too long", Config{Topic: strings.Repeat("a", 250)}, "topic"},
		{"topic dot", Config{Topic: ".."}, "topic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.WithDefaults().Validate()
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "got %v", err)
			require.Equal(t, tc.field, fe.Field, "%v", err)
		})
	}
}

func TestTLSMissingCAFileIsClear(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope", "ca.pem")
	cfg := Config{Brokers: []string{"127.0.0.1:9092"}, TLS: TLSConfig{Enabled: true, CAFile: missing}}
	_, err := NewProducer(testContext(t), cfg, nil, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "tls.ca_file")
	require.Contains(t, err.Error(), missing)
	require.ErrorIs(t, err, os.ErrNotExist)

	// A file that holds no certificate passes Validate (it exists) and is
	// refused when loaded.
	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("not a certificate\n"), 0o600))
	cfg.TLS.CAFile = empty
	_, err = NewProducer(testContext(t), cfg, nil, nil)
	require.ErrorContains(t, err, "holds no PEM certificate")
}
