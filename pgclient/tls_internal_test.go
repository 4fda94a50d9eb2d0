package pgclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestConnStringSettings(t *testing.T) {
	t.Parallel()
	s, err := connStringSettings("postgres://u:p@h1:5432,h2:5433/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem#frag")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"sslmode": "verify-full", "sslrootcert": "/tmp/ca.pem"}, s)

	s, err = connStringSettings(`host=db user=app  sslmode = require sslrootcert='/path/with space/ca\'s.pem' password=a\ b`)
	require.NoError(t, err)
	require.Equal(t, "require", s["sslmode"])
	require.Equal(t, "/path/with space/ca's.pem", s["sslrootcert"])
	require.Equal(t, "a b", s["password"])

	for _, bad := range []string{"host", "host='db", "=x"} {
		_, err := connStringSettings(bad)
		require.Error(t, err, bad)
	}
}

func TestTLSConfigPrecedence(t *testing.T) {
	// Not parallel: sets environment variables.
	t.Setenv("PGSSLMODE", "verify-ca")
	t.Setenv("PGSSLROOTCERT", "/env/ca.pem")

	d := TLSConfig{}.WithDefaults("postgres://h/db")
	require.Equal(t, TLSModeVerifyCA, d.Mode, "from the environment")
	require.Equal(t, "/env/ca.pem", d.RootCert)
	require.Equal(t, "1.2", d.MinVersion)
	require.Equal(t, DefaultTLSCipherSuites, d.CipherSuites)

	d = TLSConfig{}.WithDefaults("postgres://h/db?sslmode=disable&ssl_min_protocol_version=TLSv1.3")
	require.Equal(t, TLSModeDisable, d.Mode, "the URL beats the environment")
	require.Equal(t, "TLSv1.3", d.MinVersion)

	d = TLSConfig{Mode: "Verify-Full", RootCert: "/cfg/ca.pem"}.WithDefaults("postgres://h/db?sslmode=disable")
	require.Equal(t, TLSModeVerifyFull, d.Mode, "the field beats the URL")
	require.Equal(t, "/cfg/ca.pem", d.RootCert)

	os.Unsetenv("PGSSLMODE")
	os.Unsetenv("PGSSLROOTCERT")
	require.Equal(t, TLSModeRequire, TLSConfig{}.WithDefaults("host=db").Mode, "never a silent plaintext fallback by default")
	require.Equal(t, TLSModeVerifyFull, TLSConfig{}.WithDefaults("host=db sslrootcert=system").Mode)
}

func TestTLSConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"prefer", "allow"} {
		err := TLSConfig{Mode: mode}.WithDefaults("").Validate()
		require.ErrorContains(t, err, "tls.mode")
		require.ErrorContains(t, err, "silently fall back")
	}
	err := TLSConfig{
		Mode:         "sometimes",
		MinVersion:   "1.1",
		MaxVersion:   "2",
		RootCert:     "/nonexistent/ca.pem",
		ClientCert:   "/nonexistent/client.crt",
		CipherSuites: []string{"TLS_RSA_WITH_RC4_128_SHA", "TLS_AES_128_GCM_SHA256", "TLS_NOPE"},
	}.WithDefaults("").Validate()
	for _, want := range []string{"tls.mode", "tls.min_version", "tls.max_version", "tls.root_cert", "tls.client_cert",
		"insecure cipher suite", "TLS 1.3 suite", "not a cipher suite Go knows"} {
		require.ErrorContains(t, err, want)
	}
	require.ErrorContains(t, TLSConfig{Mode: "require", RootCert: "system"}.WithDefaults("").Validate(), "need mode verify-full")
	require.ErrorContains(t, TLSConfig{MinVersion: "1.3", MaxVersion: "1.2"}.WithDefaults("").Validate(), "must not be below min_version")
}

func TestTLSConfigBuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey := writeTestCA(t, dir)
	cert, key := writeTestLeaf(t, dir, ca, caKey)

	b, err := TLSConfig{Mode: TLSModeVerifyFull, RootCert: filepath.Join(dir, "ca.pem"), ClientCert: cert, ClientKey: key, ServerName: "db.example"}.WithDefaults("").build()
	require.NoError(t, err)
	c := b.config("10.0.0.1")
	require.Equal(t, "db.example", c.ServerName)
	require.False(t, c.InsecureSkipVerify)
	require.Equal(t, uint16(tls.VersionTLS12), c.MinVersion)
	require.Len(t, c.CipherSuites, len(DefaultTLSCipherSuites))
	require.Len(t, c.Certificates, 1)

	b, err = TLSConfig{Mode: TLSModeRequire, RootCert: filepath.Join(dir, "ca.pem")}.WithDefaults("").build()
	require.NoError(t, err)
	c = b.config("db")
	require.True(t, c.InsecureSkipVerify)
	require.NotNil(t, c.VerifyConnection, "require with a root certificate checks the chain, as libpq does")

	b, err = TLSConfig{Mode: TLSModeRequire}.WithDefaults("").build()
	require.NoError(t, err)
	require.Nil(t, b.config("db").VerifyConnection)

	b, err = TLSConfig{Mode: TLSModeDisable}.WithDefaults("").build()
	require.NoError(t, err)
	require.Nil(t, b.config("db"))

	_, err = TLSConfig{ClientCert: cert}.WithDefaults("").build()
	require.ErrorContains(t, err, "client_cert and client_key must be given together")
}

func TestTLSApplyDropsPlaintextFallbacks(t *testing.T) {
	t.Parallel()
	// pgx's default sslmode (prefer) adds a plaintext attempt after each TLS
	// one; the client keeps one attempt per host, each with TLS.
	cc, err := pgconn.ParseConfig("postgres://u@h1:5432,h2:5433/db")
	require.NoError(t, err)
	require.Len(t, cc.Fallbacks, 3)
	b, err := TLSConfig{Mode: TLSModeVerifyFull}.WithDefaults("").build()
	require.NoError(t, err)
	b.apply(cc)
	require.Equal(t, "h1", cc.Host)
	require.Equal(t, "h1", cc.TLSConfig.ServerName)
	require.Len(t, cc.Fallbacks, 1)
	require.Equal(t, "h2", cc.Fallbacks[0].Host)
	require.Equal(t, uint16(5433), cc.Fallbacks[0].Port)
	require.Equal(t, "h2", cc.Fallbacks[0].TLSConfig.ServerName)

	cc, err = pgconn.ParseConfig("host=/tmp,db port=5432 user=u ssl_min_protocol_version=TLSv1.3")
	require.NoError(t, err)
	require.Contains(t, cc.RuntimeParams, "ssl_min_protocol_version", "pgx would send it to the server")
	b.apply(cc)
	require.NotContains(t, cc.RuntimeParams, "ssl_min_protocol_version")
	require.Nil(t, cc.TLSConfig, "no TLS on a unix socket")
	require.Len(t, cc.Fallbacks, 1)
	require.NotNil(t, cc.Fallbacks[0].TLSConfig)
}

func TestTLSCheckProduction(t *testing.T) {
	t.Parallel()
	ok := TLSConfig{Mode: TLSModeVerifyFull}
	require.NoError(t, ok.CheckProduction("postgres://u@db/x"))
	for _, mode := range []string{TLSModeDisable, TLSModeRequire, TLSModeVerifyCA} {
		err := TLSConfig{Mode: mode}.CheckProduction("postgres://u@db:5432,db2/x")
		require.ErrorContains(t, err, "production requires verify-full for db:5432, db2:5432", mode)
	}
	require.NoError(t, TLSConfig{Mode: TLSModeDisable}.CheckProduction("host=/var/run/postgresql user=u"), "a unix socket does not leave the host")
}

func TestValidateRequireAuth(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "scram-sha-256", "scram-sha-256,none", "!md5,!password"} {
		require.NoError(t, validateRequireAuth(ok), ok)
	}
	for _, bad := range []string{"scram", "md5,!password", "md5,md5"} {
		require.Error(t, validateRequireAuth(bad), bad)
	}
}

// writeTestCA writes a throwaway CA certificate to dir/ca.pem.
func writeTestCA(t *testing.T, dir string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return ca, key
}

// writeTestLeaf writes a client certificate signed by ca and its key.
func writeTestLeaf(t *testing.T, dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certPath, keyPath
}
