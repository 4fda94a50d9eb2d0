package pgclient_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/pgembed"
)

// Passwords of the roles of the TLS cluster.
const (
	scramPassword = "scram-Secret-1"
	md5Password   = "md5-Secret-2"
	plainPassword = "plain-Secret-3"
)

// newTLSCluster starts a TLS server where TLS connections from 127.0.0.1 of
// scram_user, md5_user and plain_user authenticate with SCRAM, MD5 and a
// cleartext password (rotating, created by a test, with SCRAM), and every other user (the superuser among them) with
// a client certificate.
func newTLSCluster(t *testing.T) *pgembed.Cluster {
	t.Helper()
	c := testdb.NewCluster(t, pgembed.Config{
		TLS: &pgembed.TLSConfig{ClientCertAuth: true},
		HBA: []string{
			"hostssl all scram_user 127.0.0.1/32 scram-sha-256",
			"hostssl all md5_user 127.0.0.1/32 md5",
			"hostssl all plain_user 127.0.0.1/32 password",
			"hostssl all rotating 127.0.0.1/32 scram-sha-256",
		},
	})
	su := pgConnect(t, c.SocketURL("postgres"))
	_, err := su.Exec(testCtx(t), `
		CREATE ROLE scram_user LOGIN PASSWORD '`+scramPassword+`';
		SET password_encryption = 'md5';
		CREATE ROLE md5_user LOGIN PASSWORD '`+md5Password+`';
		CREATE ROLE plain_user LOGIN PASSWORD '`+plainPassword+`';`)
	require.NoError(t, err)
	return c
}

// tlsURL is a URL to c on 127.0.0.1 for user (password optional), with no
// parameters: the tests set TLS through Config.TLS.
func tlsURL(t *testing.T, c *pgembed.Cluster, user, password string) string {
	t.Helper()
	u := mustParseURL(t, withUser(t, withHostPort(t, c.URL("postgres"), "127.0.0.1", strconv.Itoa(c.Port())), user, password))
	u.RawQuery = ""
	return u.String()
}

// tlsOpen opens a client on url with tls, and returns the client (nil on
// error), the security events raised and the error.
func tlsOpen(t *testing.T, url string, tls pgclient.TLSConfig, tweak func(*pgclient.Config)) (*pgclient.Client, *eventLog, error) {
	t.Helper()
	var events eventLog
	cfg := fastConfig(url)
	cfg.ServiceName = serviceName(t)
	cfg.MinConns = 1
	cfg.TLS = tls
	cfg.Retry.ConnectRetries = -1
	events.hook(&cfg)
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := pgclient.Open(testCtx(t), cfg)
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, &events, err
}

// sslInfo returns the TLS version and cipher of the client's connection.
func sslInfo(t *testing.T, c *pgclient.Client) (version, cipher string) {
	t.Helper()
	require.NoError(t, c.QueryRow(testCtx(t),
		"SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl").Scan(&version, &cipher))
	return version, cipher
}

func TestTLS(t *testing.T) {
	t.Parallel()
	cl := newTLSCluster(t)
	t.Run("accepted", func(t *testing.T) { t.Parallel(); testTLSAccepted(t, cl) })
	t.Run("refused", func(t *testing.T) { t.Parallel(); testTLSRefusals(t, cl) })
	t.Run("authentication failure event", func(t *testing.T) { t.Parallel(); testAuthFailureEvent(t, cl) })
}

func testTLSAccepted(t *testing.T, cl *pgembed.Cluster) {
	files := cl.TLSFiles()
	verifyFull := pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull, RootCert: files.CACert}
	url := tlsURL(t, cl, "scram_user", scramPassword)

	t.Run("verify-full by address", func(t *testing.T) {
		t.Parallel()
		c, _, err := tlsOpen(t, url, verifyFull, nil)
		require.NoError(t, err)
		version, _ := sslInfo(t, c)
		require.Equal(t, "TLSv1.3", version)
		require.NoError(t, c.Config().CheckProduction())
	})
	t.Run("verify-full by host name, TLS 1.3 required", func(t *testing.T) {
		t.Parallel()
		tls := verifyFull
		tls.MinVersion = "1.3"
		c, _, err := tlsOpen(t, withHostPort(t, url, "localhost", strconv.Itoa(cl.Port())), tls, nil)
		require.NoError(t, err)
		version, _ := sslInfo(t, c)
		require.Equal(t, "TLSv1.3", version)
	})
	t.Run("SCRAM with channel binding and require_auth", func(t *testing.T) {
		t.Parallel()
		_, _, err := tlsOpen(t, url, verifyFull, func(cfg *pgclient.Config) {
			cfg.RequireAuth = "scram-sha-256"
			cfg.ChannelBinding = "require"
		})
		require.NoError(t, err)
	})
	t.Run("the same from URL parameters", func(t *testing.T) {
		t.Parallel()
		u := url + "?sslmode=verify-full&sslrootcert=" + files.CACert + "&require_auth=scram-sha-256&channel_binding=require"
		c, _, err := tlsOpen(t, u, pgclient.TLSConfig{}, nil)
		require.NoError(t, err)
		require.Equal(t, pgclient.TLSModeVerifyFull, c.Config().TLS.Mode)
	})
	t.Run("client certificate authentication", func(t *testing.T) {
		t.Parallel()
		tls := verifyFull
		tls.ClientCert, tls.ClientKey = files.ClientCert, files.ClientKey
		c, _, err := tlsOpen(t, tlsURL(t, cl, cl.User(), ""), tls, nil)
		require.NoError(t, err)
		var dn string
		require.NoError(t, c.QueryRow(testCtx(t), "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&dn))
		require.Contains(t, dn, "CN="+cl.User())

		_, events, err := tlsOpen(t, tlsURL(t, cl, cl.User(), ""), verifyFull, nil)
		require.ErrorContains(t, err, "certificate", "no client certificate: refused")
		requireEvents(t, events, pgclient.SecurityEventAuthFailed, 1)
	})
}

func testTLSRefusals(t *testing.T, cl *pgembed.Cluster) {
	files := cl.TLSFiles()
	verifyFull := pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull, RootCert: files.CACert}
	url := tlsURL(t, cl, "scram_user", scramPassword)

	for _, tc := range []struct {
		name   string
		url    string
		tls    pgclient.TLSConfig
		tweak  func(*pgclient.Config)
		want   string // in the error
		event  string
		secret string // must not appear anywhere
	}{
		{
			name: "wrong host name", url: url,
			tls:  pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull, RootCert: files.CACert, ServerName: "db.example.com"},
			want: "not db.example.com", event: pgclient.SecurityEventTLSFailed,
		},
		{
			name: "unknown certificate authority", url: url,
			tls:  pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull, RootCert: otherCA(t)},
			want: "unknown authority", event: pgclient.SecurityEventTLSFailed,
		},
		{
			name: "unknown certificate authority under verify-ca", url: url,
			tls:  pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyCA, RootCert: otherCA(t)},
			want: "unknown authority", event: pgclient.SecurityEventTLSFailed,
		},
		{
			name: "md5 when SCRAM is required", url: tlsURL(t, cl, "md5_user", md5Password), tls: verifyFull,
			tweak: func(c *pgclient.Config) { c.RequireAuth = "scram-sha-256" },
			want:  "server requested md5 authentication", event: pgclient.SecurityEventAuthFailed, secret: md5Password,
		},
		{
			name: "cleartext password when SCRAM is required", url: tlsURL(t, cl, "plain_user", plainPassword), tls: verifyFull,
			tweak: func(c *pgclient.Config) { c.RequireAuth = "scram-sha-256" },
			want:  "server requested password authentication", event: pgclient.SecurityEventAuthFailed, secret: plainPassword,
		},
		{
			name: "md5 when channel binding is required", url: tlsURL(t, cl, "md5_user", md5Password), tls: verifyFull,
			tweak: func(c *pgclient.Config) { c.ChannelBinding = "require" },
			want:  "channel binding", event: pgclient.SecurityEventAuthFailed, secret: md5Password,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, events, err := tlsOpen(t, tc.url, tc.tls, tc.tweak)
			require.ErrorContains(t, err, tc.want)
			require.True(t, pgclient.IsPermanent(err), "never retried: %v", err)
			got := requireEvents(t, events, tc.event, 1)
			require.Len(t, events.securityEvents(), 1, "one event per refused connection")
			if tc.secret != "" {
				require.NotContains(t, err.Error(), tc.secret)
				b, _ := json.Marshal(got)
				require.NotContains(t, string(b), tc.secret)
			}
		})
	}

	t.Run("the same servers without the requirement", func(t *testing.T) {
		t.Parallel()
		// md5 and cleartext work when not refused: the refusals above come
		// from require_auth and channel binding, not from the server.
		for _, u := range []string{tlsURL(t, cl, "md5_user", md5Password), tlsURL(t, cl, "plain_user", plainPassword)} {
			_, _, err := tlsOpen(t, u, verifyFull, nil)
			require.NoError(t, err)
		}
	})
}

func TestTLSOldServer(t *testing.T) {
	t.Parallel()
	cl := testdb.NewCluster(t, pgembed.Config{
		TLS: &pgembed.TLSConfig{HostSSLOnly: true, MaxVersion: "TLSv1.2", ExpiredServerCert: true},
	})
	files := cl.TLSFiles()
	url := tlsURL(t, cl, cl.User(), "")

	t.Run("expired certificate", func(t *testing.T) {
		t.Parallel()
		_, events, err := tlsOpen(t, url, pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull, RootCert: files.CACert}, nil)
		require.ErrorContains(t, err, "expired")
		requireEvents(t, events, pgclient.SecurityEventTLSFailed, 1)
	})
	t.Run("TLS 1.2 server, TLS 1.3 required", func(t *testing.T) {
		t.Parallel()
		_, events, err := tlsOpen(t, url, pgclient.TLSConfig{Mode: pgclient.TLSModeRequire, MinVersion: "1.3"}, nil)
		require.ErrorContains(t, err, "protocol version")
		requireEvents(t, events, pgclient.SecurityEventTLSFailed, 1)
	})
	t.Run("TLS 1.2 with the default cipher suites", func(t *testing.T) {
		t.Parallel()
		c, _, err := tlsOpen(t, url, pgclient.TLSConfig{Mode: pgclient.TLSModeRequire}, nil)
		require.NoError(t, err)
		version, cipher := sslInfo(t, c)
		require.Equal(t, "TLSv1.2", version)
		require.True(t, strings.HasPrefix(cipher, "ECDHE-") && (strings.Contains(cipher, "GCM") || strings.Contains(cipher, "CHACHA20")), cipher)
	})
	t.Run("no TLS to a hostssl-only server", func(t *testing.T) {
		t.Parallel()
		_, events, err := tlsOpen(t, url, pgclient.TLSConfig{Mode: pgclient.TLSModeDisable}, nil)
		require.ErrorContains(t, err, "no encryption")
		requireEvents(t, events, pgclient.SecurityEventAuthFailed, 1)
	})
}

func TestCheckProduction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		tls pgclient.TLSConfig
		ok  bool
	}{
		{"postgres://app@db/x?sslmode=verify-full", pgclient.TLSConfig{}, true},
		{"postgres://app@db/x", pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull}, true},
		{"postgres://app@db/x", pgclient.TLSConfig{}, false},
		{"postgres://app@db/x?sslmode=verify-ca", pgclient.TLSConfig{}, false},
		{"postgres://app@db/x?sslmode=verify-full", pgclient.TLSConfig{Mode: pgclient.TLSModeRequire}, false},
		{"host=/var/run/postgresql user=app", pgclient.TLSConfig{}, true},
	} {
		err := pgclient.Config{URL: tc.url, TLS: tc.tls}.WithDefaults().CheckProduction()
		if tc.ok {
			require.NoError(t, err, tc.url)
		} else {
			require.ErrorContains(t, err, "production requires verify-full", tc.url)
		}
	}
}

// otherCA writes a CA certificate that signed nothing the servers present.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return path
}
