package pgembed

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tlsURL builds a TLS connection URL to c on 127.0.0.1 with extra parameters.
func tlsURL(c *Cluster, params url.Values) string {
	u := url.URL{Scheme: "postgres", User: url.User(c.User()), Host: fmt.Sprintf("127.0.0.1:%d", c.Port()), Path: "/postgres", RawQuery: params.Encode()}
	return u.String()
}

func TestTLS(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{TLS: &TLSConfig{ClientCertAuth: true}})
	files := c.TLSFiles()
	require.NotNil(t, files)
	for _, p := range []string{files.CACert, files.CAKey, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey} {
		require.True(t, filepath.IsAbs(p), p)
		require.FileExists(t, p)
	}
	fi, err := os.Stat(files.ServerKey)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	withClientCert := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {files.CACert}, "sslcert": {files.ClientCert}, "sslkey": {files.ClientKey}}

	t.Run("verify-full with the generated CA and client certificate", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, tlsURL(c, withClientCert))
		require.Equal(t, "true", queryString(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
		require.Equal(t, "/O=pgembed/CN=postgres", queryString(t, conn, "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
		require.Equal(t, "postgres", queryString(t, conn, "SELECT current_user"))
	})

	t.Run("verify-full by host name", func(t *testing.T) {
		t.Parallel()
		u := tlsURL(c, withClientCert)
		u = replaceHost(t, u, "localhost")
		conn := connect(t, u)
		require.Equal(t, "true", queryString(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
	})

	t.Run("a wrong CA is rejected", func(t *testing.T) {
		t.Parallel()
		other := writeOtherCA(t)
		params := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {other}, "sslcert": {files.ClientCert}, "sslkey": {files.ClientKey}}
		err := tryConnect(tlsURL(c, params))
		require.ErrorContains(t, err, "certificate signed by unknown authority")
	})

	t.Run("TLS without a client certificate is refused", func(t *testing.T) {
		t.Parallel()
		err := tryConnect(tlsURL(c, url.Values{"sslmode": {"verify-full"}, "sslrootcert": {files.CACert}}))
		require.Error(t, err)
		require.ErrorContains(t, err, "certificate")
	})

	t.Run("non-TLS TCP still works without HostSSLOnly", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, c.URL("postgres"))
		require.Equal(t, "false", queryString(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
	})

	t.Run("certificates survive a restart", func(t *testing.T) {
		// Not parallel, so it runs before the parallel subtests resume: they
		// then also prove that TLS works after a restart.
		before, err := os.ReadFile(files.CACert)
		require.NoError(t, err)
		require.NoError(t, c.Restart(testContext(t), StopFast))
		after, err := os.ReadFile(files.CACert)
		require.NoError(t, err)
		require.Equal(t, before, after)
	})
}

func TestTLSHostSSLOnlyExpiredTLS12(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Config{TLS: &TLSConfig{HostSSLOnly: true, MaxVersion: "TLSv1.2", ExpiredServerCert: true}})
	files := c.TLSFiles()
	require.Empty(t, files.ClientCert, "no client certificate without ClientCertAuth")

	t.Run("non-TLS TCP is refused", func(t *testing.T) {
		t.Parallel()
		require.ErrorContains(t, tryConnect(c.URL("postgres")), "no encryption")
	})

	t.Run("the unix socket still works", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, c.SocketURL("postgres"))
		require.Equal(t, "postgres", queryString(t, conn, "SELECT current_user"))
	})

	t.Run("TLS is capped at 1.2", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, tlsURL(c, url.Values{"sslmode": {"require"}}))
		require.Equal(t, "TLSv1.2", queryString(t, conn, "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
	})

	t.Run("an expired server certificate fails verification", func(t *testing.T) {
		t.Parallel()
		err := tryConnect(tlsURL(c, url.Values{"sslmode": {"verify-full"}, "sslrootcert": {files.CACert}}))
		require.ErrorContains(t, err, "expired")
	})
}

// writeOtherCA writes a CA certificate unrelated to any cluster.
func writeOtherCA(t *testing.T) string {
	t.Helper()
	now := time.Now()
	ca, err := newCert(certSpec{subject: pkix.Name{CommonName: "other CA"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour), isCA: true}, nil)
	require.NoError(t, err)
	_, err = x509.ParseCertificate(ca.der)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "other-ca.crt")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}), 0o644))
	return path
}

func replaceHost(t *testing.T, raw, host string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	u.Host = host + ":" + u.Port()
	return u.String()
}
