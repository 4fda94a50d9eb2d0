package pgembed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles holds the absolute paths of the PEM files generated for a cluster
// with TLS. ClientCert and ClientKey are empty unless
// TLSConfig.ClientCertAuth was set.
type TLSFiles struct {
	CACert, CAKey, ServerCert, ServerKey, ClientCert, ClientKey string
}

// certValidity is how long generated certificates stay valid.
const certValidity = 10 * 365 * 24 * time.Hour

// generateTLS writes a fresh CA, a server certificate signed by it and, for
// ClientCertAuth, a client certificate for the superuser into the data
// directory, owned by the server user with private keys readable only by it.
func (c *Cluster) generateTLS() (*TLSFiles, error) {
	t := c.cfg.TLS
	dir := filepath.Join(c.dataDir, tlsDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgembed: create TLS directory: %w", err)
	}
	if err := c.id.chown(dir); err != nil {
		return nil, err
	}
	now := time.Now()
	ca, err := newCert(certSpec{
		subject:   pkix.Name{CommonName: "pgembed CA", Organization: []string{"pgembed"}},
		notBefore: now.Add(-time.Hour), notAfter: now.Add(certValidity),
		isCA: true,
	}, nil)
	if err != nil {
		return nil, err
	}
	serverSpec := certSpec{
		subject:   pkix.Name{CommonName: t.ServerNames[0], Organization: []string{"pgembed"}},
		notBefore: now.Add(-time.Hour), notAfter: now.Add(certValidity),
		names: t.ServerNames, usage: x509.ExtKeyUsageServerAuth,
	}
	if t.ExpiredServerCert {
		serverSpec.notBefore, serverSpec.notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	}
	server, err := newCert(serverSpec, ca)
	if err != nil {
		return nil, err
	}
	files := &TLSFiles{
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
	}
	errs := []error{ca.write(c, files.CACert, files.CAKey), server.write(c, files.ServerCert, files.ServerKey)}
	if t.ClientCertAuth {
		client, err := newCert(certSpec{
			subject:   pkix.Name{CommonName: c.cfg.User, Organization: []string{"pgembed"}},
			notBefore: now.Add(-time.Hour), notAfter: now.Add(certValidity),
			usage: x509.ExtKeyUsageClientAuth,
		}, ca)
		if err != nil {
			return nil, err
		}
		files.ClientCert, files.ClientKey = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
		errs = append(errs, client.write(c, files.ClientCert, files.ClientKey))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return files, nil
}

type certSpec struct {
	subject             pkix.Name
	notBefore, notAfter time.Time
	isCA                bool
	names               []string // DNS names or IP addresses
	usage               x509.ExtKeyUsage
}

type keyPair struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

// newCert creates an ECDSA P-256 certificate signed by parent, or self-signed
// when parent is nil.
func newCert(spec certSpec, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pgembed: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pgembed: generate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               spec.subject,
		NotBefore:             spec.notBefore,
		NotAfter:              spec.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  spec.isCA,
	}
	if spec.isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		tmpl.MaxPathLenZero = true
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{spec.usage}
	}
	for _, n := range spec.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	signer, issuer := key, tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("pgembed: create certificate %q: %w", spec.subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pgembed: parse certificate %q: %w", spec.subject.CommonName, err)
	}
	return &keyPair{cert: cert, der: der, key: key}, nil
}

// write stores the certificate (0644) and the PKCS#8 key (0600) as PEM.
func (k *keyPair) write(c *Cluster, certPath, keyPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return fmt.Errorf("pgembed: encode key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// Remove first: WriteFile keeps the mode of an existing file.
	_ = os.Remove(certPath)
	_ = os.Remove(keyPath)
	return errors.Join(c.writeFile(certPath, certPEM, 0o644), c.writeFile(keyPath, keyPEM, 0o600))
}
