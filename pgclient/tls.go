package pgclient

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omnibridge/omnibridge/internal/connstr"
)

// TLS modes accepted by TLSConfig.Mode: libpq's sslmode values, without
// "allow" and "prefer", which fall back to an unencrypted connection without
// telling anyone.
const (
	// TLSModeDisable connects without TLS.
	TLSModeDisable = "disable"
	// TLSModeRequire encrypts but does not check the server's certificate
	// (unless a root certificate is given: then it is checked as in
	// verify-ca, as libpq does). It protects against eavesdropping, not
	// against an impostor. The default.
	TLSModeRequire = "require"
	// TLSModeVerifyCA checks that the server's certificate is signed by the
	// root certificate, but not which host it names.
	TLSModeVerifyCA = "verify-ca"
	// TLSModeVerifyFull checks the certificate chain and that the
	// certificate names the host (or TLSConfig.ServerName). The only mode
	// CheckProduction accepts.
	TLSModeVerifyFull = "verify-full"
)

// Defaults of TLSConfig.
const (
	DefaultTLSMode       = TLSModeRequire
	DefaultTLSMinVersion = "1.2"
)

// DefaultTLSCipherSuites are the TLS 1.2 cipher suites offered by default:
// ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only, as ADR-016
// asks (its DHE suites are not implemented by Go). TLS 1.3 suites are not
// configurable in Go: it always offers its three AEAD suites.
var DefaultTLSCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// TLSConfig configures TLS to the server. Each field left empty is taken
// from the connection URL's libpq parameter (named below), then from that
// parameter's PG* environment variable, then from the default. The client
// builds pgx's tls.Config from the result: one per host of a multi-host URL,
// and never a plaintext fallback. Unix-socket hosts never use TLS.
type TLSConfig struct {
	// Mode is disable, require, verify-ca or verify-full (sslmode). "allow"
	// and "prefer" are refused. Defaults to "require", or to "verify-full"
	// when RootCert is "system".
	Mode string `yaml:"mode"`

	// RootCert is a PEM file of the certificate authorities that sign the
	// server's certificate, or "system" for the system's (sslrootcert).
	// Defaults to none: the system's authorities are used by verify-full and
	// verify-ca.
	RootCert string `yaml:"root_cert"`

	// ClientCert and ClientKey are the PEM files of a client certificate and
	// its unencrypted private key, for servers that authenticate clients by
	// certificate (sslcert, sslkey). Both or neither. Defaults to none.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`

	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3"
	// (ssl_min_protocol_version; "TLSv1.2" and "TLSv1.3" are accepted too).
	// Defaults to "1.2".
	MinVersion string `yaml:"min_version"`

	// MaxVersion is the highest TLS version offered: "1.2" or "1.3"
	// (ssl_max_protocol_version). Defaults to none: Go's highest, TLS 1.3.
	MaxVersion string `yaml:"max_version"`

	// CipherSuites are the TLS 1.2 cipher suites offered, by their Go names
	// (crypto/tls). Insecure suites are refused. Defaults to
	// DefaultTLSCipherSuites. Go chooses the TLS 1.3 suites itself.
	CipherSuites []string `yaml:"cipher_suites"`

	// ServerName is the name the server's certificate must carry under
	// verify-full, and the name sent in SNI. Defaults to the host being
	// connected to.
	ServerName string `yaml:"server_name"`
}

// WithDefaults returns a copy of t with its empty fields filled from
// connString's parameters, the environment and the defaults. A connection
// string that cannot be parsed leaves the fields to the defaults (Validate
// of the whole Config reports it).
func (t TLSConfig) WithDefaults(connString string) TLSConfig {
	settings, err := connStringSettings(connString)
	if err != nil {
		settings = map[string]string{}
	}
	t.RootCert = cmp.Or(t.RootCert, connSetting(settings, "sslrootcert"))
	t.ClientCert = cmp.Or(t.ClientCert, connSetting(settings, "sslcert"))
	t.ClientKey = cmp.Or(t.ClientKey, connSetting(settings, "sslkey"))
	mode := DefaultTLSMode
	if t.RootCert == "system" {
		mode = TLSModeVerifyFull
	}
	t.Mode = cmp.Or(strings.ToLower(strings.TrimSpace(t.Mode)), connSetting(settings, "sslmode"), mode)
	t.MinVersion = cmp.Or(t.MinVersion, connSetting(settings, "ssl_min_protocol_version"), DefaultTLSMinVersion)
	t.MaxVersion = cmp.Or(t.MaxVersion, connSetting(settings, "ssl_max_protocol_version"))
	if len(t.CipherSuites) == 0 {
		t.CipherSuites = slices.Clone(DefaultTLSCipherSuites)
	}
	return t
}

// Validate reports every invalid field; field names are prefixed with
// "tls.". It reads the certificate files. Call it on the result of
// WithDefaults.
func (t TLSConfig) Validate() error {
	_, err := t.build()
	return err
}

// builtTLS is a TLSConfig with its files read and names resolved.
type builtTLS struct {
	mode       string
	roots      *x509.CertPool // nil: the system's
	certs      []tls.Certificate
	minVersion uint16
	maxVersion uint16 // 0: Go's maximum
	suites     []uint16
	serverName string
}

var tlsVersions = map[string]uint16{
	"1.2": tls.VersionTLS12, "tlsv1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13, "tlsv1.3": tls.VersionTLS13,
}

// build checks t and reads its files, reporting every problem at once.
func (t TLSConfig) build() (*builtTLS, error) {
	var errs []error
	bad := func(field string, value any, reason string) {
		errs = append(errs, configError("tls."+field, value, reason))
	}
	b := &builtTLS{mode: t.Mode, serverName: t.ServerName}
	switch t.Mode {
	case TLSModeDisable, TLSModeRequire, TLSModeVerifyCA, TLSModeVerifyFull:
	case "allow", "prefer":
		bad("mode", t.Mode, "allow and prefer silently fall back to an unencrypted connection and are not supported: use disable, require, verify-ca or verify-full")
	default:
		bad("mode", t.Mode, "must be disable, require, verify-ca or verify-full")
	}
	var ok bool
	if b.minVersion, ok = tlsVersions[strings.ToLower(t.MinVersion)]; !ok {
		bad("min_version", t.MinVersion, `must be "1.2" or "1.3"`)
	}
	if t.MaxVersion != "" {
		if b.maxVersion, ok = tlsVersions[strings.ToLower(t.MaxVersion)]; !ok {
			bad("max_version", t.MaxVersion, `must be "1.2" or "1.3", or empty`)
		} else if b.maxVersion < b.minVersion {
			bad("max_version", t.MaxVersion, fmt.Sprintf("must not be below min_version (%s)", t.MinVersion))
		}
	}
	for _, name := range t.CipherSuites {
		id, err := cipherSuite(name)
		if err != nil {
			bad("cipher_suites", name, err.Error())
			continue
		}
		b.suites = append(b.suites, id)
	}
	switch {
	case t.RootCert == "system":
		if t.Mode != TLSModeVerifyFull && t.Mode != TLSModeDisable {
			bad("root_cert", t.RootCert, "the system's authorities need mode verify-full (any public CA can sign a certificate for some other name)")
		}
	case t.RootCert != "":
		pem, err := os.ReadFile(t.RootCert)
		if err != nil {
			bad("root_cert", t.RootCert, fmt.Sprintf("cannot read: %v", err))
			break
		}
		b.roots = x509.NewCertPool()
		if !b.roots.AppendCertsFromPEM(pem) {
			bad("root_cert", t.RootCert, "holds no PEM certificate")
		}
	}
	switch {
	case (t.ClientCert == "") != (t.ClientKey == ""):
		bad("client_cert", t.ClientCert, "client_cert and client_key must be given together")
	case t.ClientCert != "":
		cert, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			bad("client_key", t.ClientKey, fmt.Sprintf("cannot load the client certificate and key (the key must be unencrypted PEM): %v", err))
			break
		}
		b.certs = []tls.Certificate{cert}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

// cipherSuite returns the id of a secure TLS 1.2 cipher suite.
func cipherSuite(name string) (uint16, error) {
	for _, s := range tls.CipherSuites() {
		if s.Name == name {
			if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
				return 0, errors.New("is a TLS 1.3 suite: Go chooses those itself")
			}
			return s.ID, nil
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if s.Name == name {
			return 0, errors.New("is an insecure cipher suite")
		}
	}
	return 0, errors.New("is not a cipher suite Go knows (use names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
}

// config returns the tls.Config for connecting to host, or nil for no TLS.
func (b *builtTLS) config(host string) *tls.Config {
	if b.mode == TLSModeDisable {
		return nil
	}
	c := &tls.Config{
		MinVersion:   b.minVersion,
		MaxVersion:   b.maxVersion,
		CipherSuites: b.suites,
		RootCAs:      b.roots,
		Certificates: b.certs,
		ServerName:   cmp.Or(b.serverName, host), // SNI; Go omits it for IP addresses
	}
	mode := b.mode
	if mode == TLSModeRequire && b.roots != nil {
		mode = TLSModeVerifyCA // libpq: require with a root certificate checks the chain
	}
	switch mode {
	case TLSModeRequire:
		c.InsecureSkipVerify = true
	case TLSModeVerifyCA:
		// The standard verification would check the host name too; check the
		// chain only, on every handshake (resumed ones included).
		c.InsecureSkipVerify = true
		roots := b.roots
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pgclient: the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
			return nil
		}
	}
	return c
}

// apply replaces the TLS configuration pgx derived from the connection
// string with b's: one attempt per host and port, in the URL's order, with
// no plaintext fallback (pgx adds one for sslmode=prefer, its default).
// Unix-socket hosts get no TLS. The ssl_*_protocol_version parameters, which
// pgx would send to the server as settings, are removed.
func (b *builtTLS) apply(cc *pgconn.Config) {
	delete(cc.RuntimeParams, "ssl_min_protocol_version")
	delete(cc.RuntimeParams, "ssl_max_protocol_version")
	type target struct {
		host string
		port uint16
	}
	seen := map[target]bool{}
	var hosts []target
	add := func(host string, port uint16) {
		t := target{host, port}
		if !seen[t] {
			seen[t] = true
			hosts = append(hosts, t)
		}
	}
	add(cc.Host, cc.Port)
	for _, f := range cc.Fallbacks {
		add(f.Host, f.Port)
	}
	tlsFor := func(t target) *tls.Config {
		if isUnixSocket(t.host, t.port) {
			return nil
		}
		c := b.config(t.host)
		if c != nil && cc.SSLNegotiation == "direct" {
			c.NextProtos = []string{"postgresql"}
		}
		return c
	}
	cc.TLSConfig = tlsFor(hosts[0])
	cc.Fallbacks = cc.Fallbacks[:0]
	for _, t := range hosts[1:] {
		cc.Fallbacks = append(cc.Fallbacks, &pgconn.FallbackConfig{Host: t.host, Port: t.port, TLSConfig: tlsFor(t)})
	}
}

func isUnixSocket(host string, port uint16) bool {
	network, _ := pgconn.NetworkAddress(host, port)
	return network == "unix"
}

// CheckProduction reports, when t (after WithDefaults) is not safe for
// production: anything weaker than verify-full to a TCP host of connString.
// Unix-socket hosts need no TLS. The service wiring calls it (through
// Config.CheckProduction) when the environment is production.
func (t TLSConfig) CheckProduction(connString string) error {
	if t.Mode == TLSModeVerifyFull {
		return nil
	}
	cc, err := pgconn.ParseConfig(connString)
	if err != nil {
		return configError("url", connstr.Redact(connString), err.Error())
	}
	hosts := []string{net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port))}
	tcp := !isUnixSocket(cc.Host, cc.Port)
	for _, f := range cc.Fallbacks {
		tcp = tcp || !isUnixSocket(f.Host, f.Port)
		hosts = append(hosts, net.JoinHostPort(f.Host, fmt.Sprint(f.Port)))
	}
	if !tcp {
		return nil
	}
	return configError("tls.mode", t.Mode, fmt.Sprintf(
		"production requires verify-full for %s (set tls.mode: verify-full and tls.root_cert, or sslmode=verify-full&sslrootcert=… in the URL)",
		strings.Join(slices.Compact(hosts), ", ")))
}

// authMethods are the method names of require_auth.
var authMethods = []string{"password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none"}

// validateRequireAuth checks a require_auth value as libpq does: a comma
// list of methods, all negated with "!" or none, without repeats.
func validateRequireAuth(v string) error {
	if v == "" {
		return nil
	}
	seen := map[string]bool{}
	negated := strings.HasPrefix(strings.TrimSpace(v), "!")
	for part := range strings.SplitSeq(v, ",") {
		m := strings.TrimSpace(part)
		neg := strings.HasPrefix(m, "!")
		m = strings.TrimPrefix(m, "!")
		switch {
		case neg != negated:
			return errors.New("negated and plain methods cannot be mixed")
		case !slices.Contains(authMethods, m):
			return fmt.Errorf("unknown method %q (known: %s)", m, strings.Join(authMethods, ", "))
		case seen[m]:
			return fmt.Errorf("method %q is given twice", m)
		}
		seen[m] = true
	}
	return nil
}
