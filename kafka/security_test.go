package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	caPool                        *x509.CertPool
	server                        tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "omnibridge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	leaf := func(serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "omnibridge test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		kder, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}

	pki := testPKI{caPool: x509.NewCertPool()}
	pki.caPool.AddCert(ca)
	pki.caFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	scert, skey := leaf(2, x509.ExtKeyUsageServerAuth)
	pki.server, err = tls.X509KeyPair(scert, skey)
	require.NoError(t, err)
	ccert, ckey := leaf(3, x509.ExtKeyUsageClientAuth)
	pki.clientCert, pki.clientKey = write("client.pem", ccert), write("client-key.pem", ckey)
	return pki
}

func TestTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startBroker(t, WithClusterOptions(kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})))

	cfg := b.Config()
	cfg.DeliveryTimeout, cfg.DialTimeout, cfg.RequestTimeout = 2*time.Second, time.Second, time.Second
	cfg.TLS = TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey, MinVersion: "1.3"}
	require.NoError(t, cfg.Validate())
	p := newProducer(t, cfg)
	ctx := testContext(t)
	require.NoError(t, p.Ping(ctx))
	requireAllNil(t, p.Publish(ctx, messages(10, 3)))
	recs, err := ReadAll(ctx, cfg, 10)
	require.NoError(t, err)
	require.Len(t, recs, 10)

	t.Run("unknown CA", func(t *testing.T) {
		t.Parallel()
		bad := cfg
		bad.TLS.CAFile = "" // system roots do not know the test CA
		q := newProducer(t, bad)
		err := q.Ping(testContext(t))
		require.Error(t, err)
		require.True(t, IsBrokerWide(err), "%v", err)
	})
	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		bad := cfg
		bad.TLS.CertFile, bad.TLS.KeyFile = "", ""
		q := newProducer(t, bad)
		err := q.Ping(testContext(t))
		require.Error(t, err)
		require.True(t, IsBrokerWide(err), "%v", err)
	})
	t.Run("plaintext to a TLS broker", func(t *testing.T) {
		t.Parallel()
		bad := cfg
		bad.TLS = TLSConfig{}
		q := newProducer(t, bad)
		err := q.Ping(testContext(t))
		require.Error(t, err)
		require.True(t, IsBrokerWide(err), "%v", err)
	})
}

func TestSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []struct{ ours, kfake string }{
		{SASLPlain, "PLAIN"},
		{SASLScramSHA256, "SCRAM-SHA-256"},
		{SASLScramSHA512, "SCRAM-SHA-512"},
	} {
		t.Run(mech.ours, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, WithClusterOptions(kfake.EnableSASL(), kfake.Superuser(mech.kfake, "bridge", "s3cret")))
			cfg := b.Config()
			cfg.DeliveryTimeout, cfg.DialTimeout, cfg.RequestTimeout = 2*time.Second, time.Second, time.Second
			cfg.SASL = SASLConfig{Mechanism: mech.ours, Username: "bridge", Password: "s3cret"}
			p := newProducer(t, cfg)
			ctx := testContext(t)
			requireAllNil(t, p.Publish(ctx, messages(5, 5)))
			recs, err := ReadAll(ctx, cfg, 5)
			require.NoError(t, err)
			require.Len(t, recs, 5)

			bad := cfg
			bad.SASL.Password = "wrong"
			bad.DeliveryTimeout, bad.DialTimeout, bad.RequestTimeout = 2*time.Second, 2*time.Second, 2*time.Second
			q := newProducer(t, bad)
			err = q.Ping(ctx)
			// kfake drops the connection on a failed authentication
			// (a real broker answers SASL_AUTHENTICATION_FAILED first);
			// the client retries until Ping's deadline, and Ping names
			// the last connection error: that drop, or on a loaded
			// machine a redial that timed out.
			require.ErrorIs(t, err, context.DeadlineExceeded)
			var netErr net.Error
			require.True(t, errors.Is(err, io.EOF) || (errors.As(err, &netErr) && netErr.Timeout()), "%v", err)
			require.True(t, IsBrokerWide(err), "a bad password fails every record alike")
			for _, err := range q.Publish(ctx, messages(2, 2)) {
				require.Error(t, err)
				require.True(t, IsBrokerWide(err), "%v", err)
			}
		})
	}
}
