package kafka

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/omnibridge/omnibridge/internal/fielderr"
)

// Defaults for Config. WithDefaults fills these into unset fields.
const (
	DefaultTopic              = "omnibridge.hook-events"
	DefaultClientID           = "omnibridge"
	DefaultDeliveryTimeout    = 30 * time.Second
	DefaultRequestTimeout     = 10 * time.Second
	DefaultDialTimeout        = 5 * time.Second
	DefaultLinger             = 5 * time.Millisecond
	DefaultMaxBufferedRecords = 10_000
	DefaultCompression        = CompressionSnappy
	DefaultTLSMinVersion      = "1.2"
)

// Compression codecs accepted by Config.Compression.
const (
	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionLZ4    = "lz4"
	CompressionZstd   = "zstd"
)

// SASL mechanisms accepted by SASLConfig.Mechanism. The empty string means no
// SASL authentication.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// maxTopicLen is Kafka's limit on a topic name's length.
const maxTopicLen = 249

// Config configures the connection to Kafka and the producer. It is embedded
// in the omnibridge configuration under `kafka:`; the zero value plus
// WithDefaults is a valid configuration for everything but the broker list.
type Config struct {
	// Brokers are the bootstrap brokers as host:port (a missing port means
	// 9092). Required outside `omnibridge dev`, which starts an in-process
	// broker and fills this in. No default.
	Brokers []string `yaml:"brokers"`

	// Topic receives the hook events. It must already exist: the producer
	// never creates topics. Defaults to "omnibridge.hook-events".
	Topic string `yaml:"topic"`

	// ClientID identifies this client in broker logs, quotas and ACL audit
	// records. Defaults to "omnibridge".
	ClientID string `yaml:"client_id"`

	// DeliveryTimeout bounds how long one record may take to be acknowledged,
	// including the client's internal retries, and so how long Publish can
	// take. A record still unacknowledged then fails with ErrDeliveryTimeout
	// and may or may not have been written (at-least-once: the caller
	// publishes it again). Defaults to 30s.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`

	// RequestTimeout is how long a broker may take to answer one request. It
	// is sent in produce requests, and a connection whose answer takes longer
	// than RequestTimeout on top of that is closed and the request retried.
	// Defaults to 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`

	// DialTimeout bounds opening one connection to a broker, including the
	// TLS handshake. Defaults to 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`

	// Linger is how long a partition's batch may wait for more records
	// before it is sent. Publish sends its records as soon as it has handed
	// them all to the client, so linger only lets the records of one call
	// (and of concurrent calls) gather into larger batches meanwhile. Set a
	// negative value (for example -1ms) to never wait. Defaults to 5ms.
	Linger time.Duration `yaml:"linger"`

	// MaxBufferedRecords bounds the records buffered in the client and not
	// yet acknowledged; Publish blocks (bounded by its context and
	// DeliveryTimeout) while the buffer is full. Defaults to 10000.
	MaxBufferedRecords int `yaml:"max_buffered_records"`

	// Compression is the codec for record batches: none, gzip, snappy, lz4 or
	// zstd. A batch that does not shrink is sent uncompressed. Defaults to
	// "snappy".
	Compression string `yaml:"compression"`

	// TLS configures encryption and client certificates. Off by default.
	TLS TLSConfig `yaml:"tls"`

	// SASL configures authentication. Off by default.
	SASL SASLConfig `yaml:"sasl"`
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on. Defaults to false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the certificate authorities that sign the
	// brokers' certificates. Defaults to the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile is the PEM client certificate for mutual TLS; it needs
	// KeyFile. Defaults to none.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Defaults to none.
	KeyFile string `yaml:"key_file"`
	// ServerName overrides the host name verified in the brokers'
	// certificates. Defaults to the host of the address being dialed.
	ServerName string `yaml:"server_name"`
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	// Defaults to "1.2".
	MinVersion string `yaml:"min_version"`
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	// Mechanism is "", plain, scram-sha-256 or scram-sha-512 (case does not
	// matter). Empty means no authentication. PLAIN sends the password as is,
	// so use it only with TLS. Defaults to "".
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user. Required with a mechanism.
	Username string `yaml:"username"`
	// Password is the SASL password. Required with a mechanism. Redacted
	// when the configuration is printed.
	Password string `yaml:"password" secret:"true"`
}

// WithDefaults returns a copy of c with every unset field given its default.
// Durations and counts that are zero count as unset.
func (c Config) WithDefaults() Config {
	c.Topic = cmp.Or(c.Topic, DefaultTopic)
	c.ClientID = cmp.Or(c.ClientID, DefaultClientID)
	c.DeliveryTimeout = cmp.Or(c.DeliveryTimeout, DefaultDeliveryTimeout)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.Linger = cmp.Or(c.Linger, DefaultLinger)
	c.MaxBufferedRecords = cmp.Or(c.MaxBufferedRecords, DefaultMaxBufferedRecords)
	c.Compression = strings.ToLower(cmp.Or(c.Compression, DefaultCompression))
	c.TLS.MinVersion = cmp.Or(c.TLS.MinVersion, DefaultTLSMinVersion)
	c.SASL.Mechanism = strings.ToLower(c.SASL.Mechanism)
	return c
}

// FieldError names an invalid configuration field (its YAML path within the
// kafka section) and its value.
// Its Err is the underlying cause, such as the error opening a TLS file.
type FieldError = fielderr.Error

func fieldError(field string, value any, reason string) error {
	return fielderr.New(field, value, reason)
}

// Validate reports every invalid field at once (joined with errors.Join),
// each a *FieldError naming the field and its value; secrets are never
// echoed. Call it on the result of WithDefaults. An empty Brokers list is
// valid here because `omnibridge dev` fills it in; NewProducer, Tail and
// ReadAll refuse it with ErrNoBrokers. Validate checks that the TLS files
// exist and are readable.
func (c Config) Validate() error {
	var errs []error
	for i, b := range c.Brokers {
		if err := validateBroker(b); err != nil {
			errs = append(errs, fieldError(fmt.Sprintf("brokers[%d]", i), b, err.Error()))
		}
	}
	if err := validateTopic(c.Topic); err != nil {
		errs = append(errs, fieldError("topic", c.Topic, err.Error()))
	}
	if c.ClientID == "" {
		errs = append(errs, fieldError("client_id", c.ClientID, "must not be empty"))
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"delivery_timeout", c.DeliveryTimeout},
		{"request_timeout", c.RequestTimeout},
		{"dial_timeout", c.DialTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			errs = append(errs, fieldError(p.name, p.d, "must be positive"))
		}
	}
	if c.MaxBufferedRecords < 0 {
		errs = append(errs, fieldError("max_buffered_records", c.MaxBufferedRecords, "must be positive"))
	}
	if _, err := codec(c.Compression); err != nil {
		errs = append(errs, fieldError("compression", c.Compression, err.Error()))
	}
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.SASL.validate()...)
	return errors.Join(errs...)
}

func validateBroker(b string) error {
	if b == "" {
		return errors.New("must not be empty")
	}
	host, port := b, ""
	if h, p, err := net.SplitHostPort(b); err == nil {
		host, port = h, p
	} else if strings.Contains(b, ":") && !strings.HasPrefix(b, "[") {
		// Neither host:port nor a bare host; a bare IPv6 address needs brackets.
		return errors.New("must be host:port or host (IPv6 in brackets)")
	}
	if host == "" {
		return errors.New("host must not be empty")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("port must be a number from 1 to 65535")
		}
	}
	return nil
}

func validateTopic(t string) error {
	switch {
	case t == "":
		return errors.New("must not be empty")
	case t == "." || t == "..":
		return errors.New(`must not be "." or ".."`)
	case len(t) > maxTopicLen:
		return fmt.Errorf("must be at most %d characters", maxTopicLen)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return errors.New("may contain only ASCII letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

func (t TLSConfig) validate() []error {
	var errs []error
	if _, err := tlsVersion(t.MinVersion); err != nil {
		errs = append(errs, fieldError("tls.min_version", t.MinVersion, err.Error()))
	}
	files := []struct{ name, path string }{
		{"tls.ca_file", t.CAFile},
		{"tls.cert_file", t.CertFile},
		{"tls.key_file", t.KeyFile},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if !t.Enabled {
			errs = append(errs, fieldError(f.name, f.path, "is set but tls.enabled is false (set tls.enabled: true)"))
			continue
		}
		if err := readable(f.path); err != nil {
			errs = append(errs, &FieldError{Field: f.name, Value: f.path, Reason: err.Error(), Err: err})
		}
	}
	if t.ServerName != "" && !t.Enabled {
		errs = append(errs, fieldError("tls.server_name", t.ServerName, "is set but tls.enabled is false (set tls.enabled: true)"))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			errs = append(errs, fieldError("tls.cert_file", t.CertFile, "is required with tls.key_file"))
		} else {
			errs = append(errs, fieldError("tls.key_file", t.KeyFile, "is required with tls.cert_file"))
		}
	}
	return errs
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	if st.IsDir() {
		return errors.New("is a directory, not a PEM file")
	}
	return nil
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	default:
		return 0, errors.New(`must be "1.2" or "1.3"`)
	}
}

func (s SASLConfig) validate() []error {
	var errs []error
	switch strings.ToLower(s.Mechanism) {
	case "":
		if s.Username != "" {
			errs = append(errs, fieldError("sasl.username", s.Username, "is set but sasl.mechanism is empty (set plain, scram-sha-256 or scram-sha-512)"))
		}
		if s.Password != "" {
			errs = append(errs, fieldError("sasl.password", redacted, "is set but sasl.mechanism is empty (set plain, scram-sha-256 or scram-sha-512)"))
		}
		return errs
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		errs = append(errs, fieldError("sasl.mechanism", s.Mechanism, "must be empty, plain, scram-sha-256 or scram-sha-512"))
	}
	if s.Username == "" {
		errs = append(errs, fieldError("sasl.username", s.Username, "is required with sasl.mechanism"))
	}
	if s.Password == "" {
		errs = append(errs, fieldError("sasl.password", s.Password, "is required with sasl.mechanism"))
	}
	return errs
}

// redacted stands in for a secret in error messages.
const redacted = "REDACTED"
